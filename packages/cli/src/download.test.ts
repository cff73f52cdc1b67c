/** `qwen2 download` against a loopback server that answers like the Hugging Face Hub. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync, MODELS } from './test/helpers.js';
import { FAKE_COMMIT, startFakeHub } from './test/fake-hub.js';

/** Runs the CLI without blocking this process (the fake Hub lives here). */
function run(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = cliAsync(args, { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end();
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('qwen2 download (built CLI)', () => {
  let hub: Awaited<ReturnType<typeof startFakeHub>>;
  const home = mkdtempSync(join(tmpdir(), 'qwen2-cli-download-'));
  let env: Record<string, string>;
  beforeAll(async () => {
    hub = await startFakeHub('test-org/tiny', join(MODELS, 'tiny-f32'));
    env = { HF_ENDPOINT: hub.endpoint, HF_HOME: home, HF_HUB_CACHE: join(home, 'hub') };
  });
  afterAll(async () => {
    await hub.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('fills the Hugging Face cache, reports each file, then finds it cached', async () => {
    const first = await run(['download', 'test-org/tiny'], env);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^test-org\/tiny@main: downloaded 2 file\(s\)/);
    // Without a terminal, one line per finished file instead of bars.
    expect(first.stderr).toMatch(/qwen2: downloaded config\.json/);
    expect(first.stderr).toMatch(/qwen2: downloaded model\.safetensors \(504\.7 kB\)/);
    const snapshot = join(home, 'hub', 'models--test-org--tiny', 'snapshots', FAKE_COMMIT);
    expect(existsSync(join(snapshot, 'model.safetensors'))).toBe(true);
    const gets = hub.requests.filter((r) => r.startsWith('GET')).length;
    const again = await run(['download', 'test-org/tiny'], env);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already in the cache/);
    expect(hub.requests.filter((r) => r.startsWith('GET')).length).toBe(gets);
  });

  it('a downloaded model then runs offline from the cache by its Hub id', async () => {
    const golden = JSON.parse(readFileSync(join(MODELS, 'tiny-f32', 'golden.json'), 'utf8')) as { sequences: { input_ids: number[]; last_logits: number[] }[] };
    const seq = golden.sequences[1]!;
    await run(['download', 'test-org/tiny'], env);
    const r = await run(['logits', '--model', 'test-org/tiny', '--backend', 'js', '--ids', seq.input_ids.join(',')], { ...env, HF_HUB_OFFLINE: '1' });
    expect(r.status, r.stderr).toBe(0);
    const logits = (JSON.parse(r.stdout) as { logits: number[] }).logits;
    expect(Math.max(...logits.map((x, i) => Math.abs(x - seq.last_logits[i]!)))).toBeLessThan(1e-3);
  });

  it('names an unknown repository, refuses a local folder and a bad --connections, in one line', async () => {
    const missing = await run(['download', 'test-org/nope'], env);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^qwen2: .*test-org\/nope/)]);
    const local = await run(['download', join(MODELS, 'tiny-f32')], env);
    expect(local.status).toBe(1);
    expect(local.stderr).toMatch(/is a local folder: there is nothing to download/);
    const zero = await run(['download', 'test-org/tiny', '--connections', '0'], env);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toMatch(/--connections must be an integer in 1\.\.64, got '0'/);
  });
});
