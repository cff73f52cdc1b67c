import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { ContextOverflowError } from '../errors.js';
import { maxAbsDiff } from '../testing/random.js';
import { CachedSequence } from './cached-sequence.js';
import type { Qwen2Model } from './qwen2-model.js';
import { loadTinyModel } from './test-tiny-model.js';

const backend = new ReferenceBackend();
let model: Qwen2Model;
beforeAll(async () => {
  model = await loadTinyModel(backend);
});
afterAll(() => model?.dispose());

const prompt = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % 512);
/** What the cache says it holds (its private ids). */
const idsOf = (c: CachedSequence): number[] => (c as unknown as { ids: number[] }).ids;
/** Logits after `ids` from an empty sequence. */
async function fresh(ids: number[]): Promise<Float32Array> {
  const c = new CachedSequence(model, model.createSequence(64));
  try {
    return await backend.read(c.prefill(ids));
  } finally {
    c.free();
  }
}

describe('CachedSequence', () => {
  it('reuses the prefix a prompt shares with the cache and gives the logits of a fresh run', async () => {
    const c = new CachedSequence(model, model.createSequence(64));
    c.prefill(prompt);
    const longer = [...prompt, 7, 8, 9];
    expect(c.commonPrefix(longer)).toBe(20);
    const a = await backend.read(c.prefill(longer));
    expect(idsOf(c)).toEqual(longer);
    expect(maxAbsDiff(a, await fresh(longer))).toBe(0);
    // A prompt that branches off: positions from the branch on are replaced.
    const branched = [...prompt.slice(0, 10), 5, 6];
    const b = await backend.read(c.prefill(branched));
    expect(idsOf(c)).toEqual(branched);
    expect(maxAbsDiff(b, await fresh(branched))).toBe(0);
    // The same prompt again: its last token runs again to give its logits.
    expect(maxAbsDiff(await backend.read(c.prefill(branched)), b)).toBe(0);
    c.free();
  });

  it('keeps ids and positions together through truncation and passes of every kind', async () => {
    const c = new CachedSequence(model, model.createSequence(64));
    c.prefill(prompt);
    await c.forwardAll([1, 2, 3]);
    await c.forwardArgmax([4, 5]);
    await c.forwardRows([6], () => {});
    expect(idsOf(c)).toEqual([...prompt, 1, 2, 3, 4, 5, 6]);
    c.truncate(22);
    expect(c.length).toBe(22);
    expect(idsOf(c)).toEqual([...prompt, 1, 2]);
    c.free();
  });

  it('names a token fed from the device once the host has read it', async () => {
    const c = new CachedSequence(model, model.createSequence(64));
    const first = backend.argmaxOnDevice!(c.prefill(prompt));
    c.forwardOnDevice(first);
    expect(c.commonPrefix([...prompt, 0])).toBe(20); // not known yet: never matches
    const id = (await first.ids())[0]!;
    c.settle(id);
    expect(idsOf(c)).toEqual([...prompt, id]);
    expect(c.commonPrefix([...prompt, id])).toBe(21);
    c.free();
  });

  it('refuses what does not fit, and keeps what it held', async () => {
    const c = new CachedSequence(model, model.createSequence(24));
    expect(() => c.prefill([])).toThrow(RangeError);
    expect(() => c.prefill(Array.from({ length: 25 }, () => 1))).toThrow(ContextOverflowError);
    c.prefill(prompt);
    expect(() => c.forward([1, 2, 3, 4, 5])).toThrow(ContextOverflowError);
    await expect(c.forwardAll([1, 2, 3, 4, 5])).rejects.toThrow(ContextOverflowError);
    expect(idsOf(c)).toEqual(prompt);
    expect(c.length).toBe(20);
    c.free();
  });
});
