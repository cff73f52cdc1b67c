import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachedSequence } from '../model/cached-sequence.js';
import { Qwen2Model } from '../model/qwen2-model.js';
import { loadTinyModel, PassCountingBackend } from '../model/test-tiny-model.js';
import { maxAbsDiff } from '../testing/random.js';
import { DecodeBatcher } from './decode-batcher.js';

const backend = new PassCountingBackend();
let model: Qwen2Model;
beforeAll(async () => {
  model = await loadTinyModel(backend);
});
afterAll(() => model?.dispose());

const fresh = (ids: number[]): CachedSequence => {
  const c = new CachedSequence(model, model.createSequence(32));
  if (ids.length > 0) c.prefill(ids);
  return c;
};

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('DecodeBatcher', () => {
  it('runs a pass once every member has asked for its step; each gets the row a pass of its own gives', async () => {
    const batcher = new DecodeBatcher(backend, 32);
    const [a, b, soloA, soloB] = [fresh([5, 6, 7]), fresh([8]), fresh([5, 6, 7]), fresh([8])];
    const ma = batcher.join(a);
    const mb = batcher.join(b);
    backend.passes = [];
    // b joins with its first step; until then a is the batch.
    await ma.step([11]);
    expect(backend.passes).toEqual([1]);
    const pb = mb.step([13]);
    await tick();
    expect(backend.passes).toEqual([1]); // b waits for a's next step
    const [rowA, rowB] = await Promise.all([ma.step([12]), pb]);
    expect(backend.passes).toEqual([1, 2]);
    soloA.forward([11]);
    expect(maxAbsDiff(await backend.read(rowA.logits), await backend.read(soloA.forward([12])))).toBeLessThan(1e-5);
    expect(maxAbsDiff(await backend.read(rowB.logits), await backend.read(soloB.forward([13])))).toBeLessThan(1e-5);
    expect([a.length, b.length]).toEqual([5, 2]);
    // Each row's argmax, from one argmax of the pass.
    backend.argmaxCalls = 0;
    expect([await rowA.argmax(), await rowB.argmax()]).toEqual([(await backend.argmax(rowA.logits))[0], (await backend.argmax(rowB.logits))[0]]);
    expect(backend.argmaxCalls).toBe(3);
    // A member that leaves stops being waited for.
    backend.passes = [];
    const next = mb.step([14]);
    await tick();
    expect(backend.passes).toEqual([]);
    ma.leave();
    await next;
    expect(backend.passes).toEqual([1]);
    await expect(ma.step([1])).rejects.toThrow('step after leave');
    mb.leave();
    expect(batcher.size).toBe(0);
    for (const c of [a, b, soloA, soloB]) c.free();
  });

  it('feeds a long prompt a part per pass beside the others\' decoding steps, within the token budget', async () => {
    // The same weights with passes of at most 8 tokens.
    const small = new Qwen2Model(backend, model.config, model.weights, { maxChunk: 8 });
    const a = new CachedSequence(small, small.createSequence(32));
    a.prefill([5, 6, 7]);
    const b = new CachedSequence(small, small.createSequence(32));
    const prompt = Array.from({ length: 20 }, (_, i) => 30 + i);
    const batcher = new DecodeBatcher(backend, 8);
    const [ma, mb] = [batcher.join(a), batcher.join(b)];
    backend.passes = [];
    await ma.step([11]);
    const pb = mb.step(prompt);
    for (const id of [12, 13]) await ma.step([id]);
    const [rowA, rowB] = await Promise.all([ma.step([14]), pb]);
    // a's token first in every pass, b's prompt in the rest: 7, 7 and 6 tokens.
    expect(backend.passes).toEqual([1, 8, 8, 7]);
    expect([a.length, b.length]).toEqual([7, 20]);
    const soloA = fresh([5, 6, 7, 11, 12, 13]);
    expect(maxAbsDiff(await backend.read(rowA.logits), await backend.read(soloA.forward([14])))).toBeLessThan(1e-5);
    const soloB = fresh([]);
    expect(maxAbsDiff(await backend.read(rowB.logits), await backend.read(soloB.prefill(prompt)))).toBeLessThan(1e-5);
    ma.leave();
    mb.leave();
    for (const c of [a, b, soloA, soloB]) c.free();
  });

  it('rejects every step of a pass that fails, and the caches keep only what they held', async () => {
    const batcher = new DecodeBatcher(backend, 32);
    const [a, b] = [fresh([5, 6]), fresh([7])];
    const [ma, mb] = [batcher.join(a), batcher.join(b)];
    await ma.step([1]);
    const pb = mb.step([2]);
    await Promise.all([ma.step([3]), pb]);
    const both = [ma.step([4]), mb.step([10 ** 9])];
    await expect(both[0]).rejects.toThrow(/outside the vocabulary/);
    await expect(both[1]).rejects.toThrow(/outside the vocabulary/);
    expect([a.length, b.length]).toEqual([4, 2]);
    ma.leave();
    mb.leave();
    a.free();
    b.free();
  });
});
