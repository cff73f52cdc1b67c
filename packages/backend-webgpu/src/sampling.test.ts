// The device sampler's top-k cut-off (a radix select over probability bit patterns) and its top-p over
// the compacted kept tokens, on inputs the conformance suite's random logits do not reach: the full
// 151,936-token vocabulary (every digit of the select in play, and the sampler's ~75 chunks), many ties
// at the k-th value (core keeps them all), fewer finite logits than k, all logits equal, penalties at
// chunk edges and a tail at top-p's floor. Each draw must be the reference's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBackend, type Backend, type SamplingParams } from '@qwen2-ts/core';
import { TestRandom } from '@qwen2-ts/core/testing';
import { webgpuBackend } from './backend.js';
import { put } from './test-support/compare.js';
import { primaryGpu } from './test-support/node-gpu.js';

const g = await primaryGpu();
const V = 151936;

describe.skipIf(!g.gpu)(`WebGPU sampling on ${g.gpu ? g.adapterName : 'no adapter'}`, () => {
  let b: Backend;
  const ref = new ReferenceBackend();
  beforeAll(async () => {
    b = await webgpuBackend({ gpu: g.gpu! });
  });
  afterAll(async () => {
    await b?.dispose();
    await ref.dispose();
  });

  const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
  const base: SamplingParams = { temperature: 0.8, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: 0 };

  /**
   * Each draw (12 uniforms per variant) must be the reference's. With `near`, where the kept tokens are
   * so many and so small (about 1e-5 of the mass each) that the f32 sums of the draw cannot place
   * `uniform * total` to the token, it must lie between the reference's draws at `uniform` -/+ 1e-4 (the
   * draw moves up the ids as `uniform` grows).
   */
  async function agree(name: string, logits: Float32Array, variants: Partial<SamplingParams>[], near = false): Promise<void> {
    const rnd = new TestRandom(logits.length + variants.length);
    const [lc, lr] = [put(b, 1, V, logits), put(ref, 1, V, logits)];
    for (const v of variants) {
      for (let i = 0; i < 12; i++) {
        const params = { ...base, ...v, uniform: rnd.uniform() };
        const got = await b.sample(lc, params);
        const what = `${name} ${JSON.stringify({ ...v, uniform: params.uniform })}`;
        if (!near) {
          expect(got, what).toBe(await ref.sample(lr, params));
          continue;
        }
        const lo = await ref.sample(lr, { ...params, uniform: Math.max(0, params.uniform - 1e-4) });
        const hi = await ref.sample(lr, { ...params, uniform: Math.min(1 - 2 ** -53, params.uniform + 1e-4) });
        expect(got >= lo && got <= hi, `${what}: ${got} not in [${lo}, ${hi}]`).toBe(true);
      }
    }
  }

  it('keeps every token tied with the k-th largest, at every k', async () => {
    // Logits on a grid of 0.25: thousands of tokens share each value, so most k fall inside a tie.
    const rnd = new TestRandom(5);
    const logits = Float32Array.from(rnd.normals(V, 2), (v) => Math.round(v * 4) / 4);
    await agree('ties', logits, [{ topK: 1 }, { topK: 40 }, { topK: 1000 }, { topK: 70000 }, { topK: V - 1 }, { topK: 40, temperature: 0.3 }]);
  });

  it('keeps everything finite when fewer than k tokens are, and all tokens when all are equal', async () => {
    const sparse = new Float32Array(V).fill(-Infinity);
    for (let i = 0; i < 30; i++) sparse[(i * 4987) % V] = i / 7;
    await agree('30 finite', sparse, [{ topK: 40 }, { topK: 30 }, { topK: 29 }]);
    await agree('all equal', new Float32Array(V).fill(1.5), [{ topK: 5 }]);
  });

  it('combines the radix top-k with top-p (over the tokens it keeps, compacted) and min-p on distinct logits', async () => {
    const logits = new TestRandom(9).normals(V, 3);
    await agree('distinct', logits, [
      { topK: 50, topP: 0.9 }, { topK: 20, topP: 0.8, temperature: 0.7 }, { topK: 200, minP: 0.05 },
      // No top-k: top-p's candidates are the tokens above its floor (most of them at temperature 1.5,
      // few at 0.3).
      { topP: 0.9 }, { topP: 0.3, temperature: 1.5 }, { topP: 0.95, temperature: 0.3 }, { topP: 0.99, temperature: 0.5 },
    ]);
  });

  it('works across the chunks of the vocabulary: plain draws, penalties at chunk edges and in order where ids repeat, a long tail top-p must reach', async () => {
    // No filter: the draw finds the chunk where the mass crosses, then the token inside it.
    await agree('plain', new TestRandom(11).normals(V, 2), [{}, { temperature: 1.5 }, { temperature: 0.4 }], true);
    // The largest logits sit at chunk edges (for chunks of 1024, 2048 or 4096) and the history penalizes
    // them: greedy must skip every one, and a draw must not see them.
    const edges = [0, 1023, 1024, 2047, 2048, 4095, 4096, 8191, 8192, V - 1];
    const peaks = new TestRandom(12).normals(V, 1);
    for (const [i, id] of edges.entries()) peaks[id] = 30 - i * 0.1;
    peaks[777] = 5;
    const history = { ids: Int32Array.from(edges), counts: Int32Array.from(edges, () => 1) };
    await agree('edges', peaks, [{ temperature: 0, presencePenalty: 40, history }, { temperature: 0.5, repetitionPenalty: 50, presencePenalty: 40, history }]);
    // A history whose id repeats is applied in order, once per entry, as core does (10 / 2 - 1 = 4, then
    // 4 / 2 - 3 = -1, below the runner-up's 0); the previous device token adds to its first entry.
    const repeated = new Float32Array(V).fill(-3);
    repeated[3000] = 10;
    repeated[9] = 0;
    const twice = { ids: Int32Array.of(3000, 5, 3000), counts: Int32Array.of(1, 1, 3) };
    await agree('repeated', repeated, [{ temperature: 0, repetitionPenalty: 2, frequencyPenalty: 1, history: twice }]);
    expect(await b.sample(put(b, 1, V, repeated), { ...base, temperature: 0, repetitionPenalty: 2, frequencyPenalty: 1, history: twice })).toBe(9);
    const peak = new Float32Array(V).fill(-3);
    peak[3000] = 50;
    // Counts 2 and 3: 10 / 2 - 2 = 3, 3 / 2 - 3 = -1.5, above the runner-up's -1.75 (1 and 4, or 2 and 4,
    // would end at -2 or -2.5, below it).
    const closer = repeated.slice();
    closer[9] = -1.75;
    const previous = b.argmaxOnDevice!(put(b, 1, V, peak));
    const afterPrevious = b.sampleOnDevice!(put(b, 1, V, closer), { ...base, temperature: 0, repetitionPenalty: 2, frequencyPenalty: 1, history: twice }, previous);
    expect(await ref.sample(put(ref, 1, V, closer), { ...base, temperature: 0, repetitionPenalty: 2, frequencyPenalty: 1, history: { ids: twice.ids, counts: Int32Array.of(2, 1, 3) } })).toBe(3000);
    expect(Array.from(await afterPrevious.ids())).toEqual([3000]);
    // One token far above a long flat tail (about 1e-5 of it each): the top holds about 40% of the mass,
    // so top-p 0.9 keeps tail tokens whose probability is near the least top-p can ever keep.
    const tail = Float32Array.from(new TestRandom(13).normals(V, 0.01), (v) => Math.log(1e-5) + v);
    tail[5000] = 0;
    await agree('tail', tail, [{ temperature: 1, topP: 0.9 }, { temperature: 1, topP: 0.5 }, { temperature: 1, topP: 0.9, minP: 1e-6 }], true);
  });
});
