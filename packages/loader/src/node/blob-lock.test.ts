import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withBlobLock } from './blob-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'qwen2-loader-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fast = { pollMs: 5, heartbeatMs: 20, staleMs: 200 };

describe('withBlobLock', () => {
  it('takes over a lock whose holder stopped touching it (a killed process)', async () => {
    const lock = join(dir, 'sub', 'stale.lock');
    await withBlobLock(lock, async () => false, async () => undefined, undefined, fast); // creates the folder
    writeFileSync(lock, '12345\n');
    const old = new Date(Date.now() - 10_000);
    utimesSync(lock, old, old);
    expect(await withBlobLock(lock, async () => false, async () => 'mine', undefined, fast)).toBe('mine');
    expect(existsSync(lock)).toBe(false);
  });

  it('waits for a live holder and skips the work when the holder produced the file', async () => {
    const lock = join(dir, 'live.lock');
    let produced = false;
    const order: string[] = [];
    const holder = withBlobLock(lock, async () => produced, async () => {
      order.push('holder starts');
      await new Promise((r) => setTimeout(r, 100));
      produced = true;
      order.push('holder done');
      return 'holder';
    }, undefined, fast);
    await new Promise((r) => setTimeout(r, 10));
    const waiter = withBlobLock(lock, async () => produced, async () => {
      order.push('waiter worked');
      return 'waiter';
    }, undefined, fast);
    expect(await Promise.all([holder, waiter])).toEqual(['holder', undefined]);
    expect(order).toEqual(['holder starts', 'holder done']);
  });

  it('stops waiting when aborted', async () => {
    const lock = join(dir, 'held.lock');
    writeFileSync(lock, 'x'); // fresh: not stale
    const controller = new AbortController();
    const waiting = withBlobLock(lock, async () => false, async () => 'never', controller.signal, { ...fast, staleMs: 60_000 });
    setTimeout(() => controller.abort(), 30);
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
  });
});
