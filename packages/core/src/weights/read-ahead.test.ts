import { describe, expect, it } from 'vitest';
import { ReadAhead } from './read-ahead.js';
import type { RangeReadable, TensorRead } from './read-host-weight.js';

/** A source whose reads wait until the test releases them, recording what was started and with which signal. */
function gatedSource(options: { ranges?: boolean; fail?: string } = {}) {
  const started: string[] = [];
  const signals: (AbortSignal | undefined)[] = [];
  const gates = new Map<string, () => void>();
  const bytesOf = (key: string) => new TextEncoder().encode(key);
  const wait = (key: string, signal?: AbortSignal) => new Promise<Uint8Array>((resolve, reject) => {
    started.push(key);
    signals.push(signal);
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    gates.set(key, () => (key === options.fail ? reject(new Error(`cannot read ${key}`)) : resolve(bytesOf(key))));
  });
  const src: RangeReadable = {
    read: (name, o) => wait(name, o?.signal),
    ...(options.ranges === false ? {} : { readRange: (name: string, offset: number, length: number, o?: { signal?: AbortSignal }) => wait(`${name}@${offset}+${length}`, o?.signal) }),
    readGgmlBlocks: (name, o) => wait(`${name}:blocks`, o?.signal),
  };
  const release = (key: string) => gates.get(key)!();
  return { src, started, signals, release, bytesOf };
}

const whole = (name: string, byteLength: number): TensorRead => ({ name, byteLength });
const range = (name: string, byteOffset: number, byteLength: number): TensorRead => ({ name, byteOffset, byteLength });
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('ReadAhead', () => {
  it('reads GGUF blocks ahead too, and gives them only to readGgmlBlocks', async () => {
    const { src, started, release, bytesOf } = gatedSource();
    const ahead = new ReadAhead(src, [whole('norm', 4), { name: 'q', byteLength: 10, blocks: true }, { name: 'k', byteLength: 10, blocks: true }], 30);
    // All three start at once: the blocks of q and k are on their way while norm converts.
    expect(started).toEqual(['norm', 'q:blocks', 'k:blocks']);
    release('norm');
    await ahead.read('norm');
    // A plain read of a tensor planned as blocks goes to the source (its values, not its blocks).
    void ahead.read('q').catch(() => {});
    expect(started.at(-1)).toBe('q');
    const q = ahead.readGgmlBlocks('q');
    release('q:blocks');
    expect(await q).toEqual(bytesOf('q:blocks'));
    ahead.dispose();
  });

  it('starts planned reads up to the byte budget, and more as the consumer takes them', async () => {
    const { src, started, release, bytesOf } = gatedSource();
    const reads = [whole('a', 10), range('b', 0, 10), range('b', 10, 10), whole('c', 10)];
    const ahead = new ReadAhead(src, reads, 25);
    expect(started).toEqual(['a', 'b@0+10']);
    const a = ahead.read('a');
    expect(started).toEqual(['a', 'b@0+10', 'b@10+10']);
    release('a');
    expect(await a).toEqual(bytesOf('a'));
    const b0 = ahead.readRange!('b', 0, 10);
    expect(started).toEqual(['a', 'b@0+10', 'b@10+10', 'c']);
    release('b@0+10');
    expect(await b0).toEqual(bytesOf('b@0+10'));
    ahead.dispose();
  });

  it('makes a read larger than the budget only when it is asked for, and reads nothing ahead with budget 0', async () => {
    const { src, started, release } = gatedSource();
    const ahead = new ReadAhead(src, [whole('small', 4), whole('huge', 100), whole('after', 4)], 50);
    expect(started).toEqual(['small']);
    const small = ahead.read('small');
    expect(started).toEqual(['small']);
    release('small');
    await small;
    const huge = ahead.read('huge');
    expect(started).toEqual(['small', 'huge', 'after']);
    release('huge');
    await huge;
    ahead.dispose();

    const none = gatedSource();
    const plain = new ReadAhead(none.src, [whole('a', 1), whole('b', 1)], 0);
    expect(none.started).toEqual([]);
    const a = plain.read('a');
    expect(none.started).toEqual(['a']);
    none.release('a');
    await a;
    plain.dispose();
  });

  it('caps the reads in flight at 8, however small', () => {
    const { src, started } = gatedSource();
    const ahead = new ReadAhead(src, Array.from({ length: 20 }, (_, i) => whole(`norm${i}`, 1)), 1 << 20);
    expect(started).toHaveLength(8);
    void ahead.read('norm0').catch(() => {});
    expect(started).toHaveLength(9);
    ahead.dispose();
  });

  it('sends a read out of the planned order straight to the source', async () => {
    const { src, started, release, bytesOf } = gatedSource();
    const ahead = new ReadAhead(src, [whole('a', 1)], 10);
    const other = ahead.readRange!('a', 0, 1);
    expect(started).toEqual(['a', 'a@0+1']);
    release('a@0+1');
    expect(await other).toEqual(bytesOf('a@0+1'));
    ahead.dispose();
  });

  it('offers readRange only when the source does (readers plan by it)', () => {
    expect(new ReadAhead(gatedSource({ ranges: false }).src, [], 10).readRange).toBeUndefined();
    expect(new ReadAhead(gatedSource().src, [], 10).readRange).toBeTypeOf('function');
  });

  it('reports a failed read when it is taken, and one never taken is not an unhandled rejection', async () => {
    const { src, release } = gatedSource({ fail: 'b' });
    const ahead = new ReadAhead(src, [whole('a', 1), whole('b', 1), whole('c', 1)], 10);
    release('b'); // fails before anyone asks for it
    await tick();
    const a = ahead.read('a');
    release('a');
    await a;
    await expect(ahead.read('b')).rejects.toThrow('cannot read b');
    ahead.dispose(); // 'c' is still in flight: aborted, and its rejection is handled
    await tick();
  });

  it('dispose aborts the reads in flight; the caller\'s signal aborts them with its reason', async () => {
    const first = gatedSource();
    const ahead = new ReadAhead(first.src, [whole('a', 1), whole('b', 1)], 10);
    expect(first.signals.map((s) => s!.aborted)).toEqual([false, false]);
    ahead.dispose();
    expect(first.signals.map((s) => s!.aborted)).toEqual([true, true]);

    const controller = new AbortController();
    const second = gatedSource();
    const linked = new ReadAhead(second.src, [whole('a', 1), whole('b', 1)], 10, controller.signal);
    const a = linked.read('a');
    controller.abort(new Error('user cancelled'));
    await expect(a).rejects.toThrow('user cancelled');
    await expect(linked.read('b')).rejects.toThrow('user cancelled');
    linked.dispose();
  });
});
