// The device sampler's top-k cut-off (a radix select over probability bit patterns) and its top-p over
// the compacted kept tokens, on inputs the conformance suite's random logits do not reach: the full
// 151,936-token vocabulary (every digit of the select in play), many ties at the k-th value (core keeps
// them all), fewer finite logits than k, and all logits equal. Each draw must be the reference's.
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

  async function agree(name: string, logits: Float32Array, variants: Partial<SamplingParams>[]): Promise<void> {
    const rnd = new TestRandom(logits.length + variants.length);
    const [lc, lr] = [put(b, 1, V, logits), put(ref, 1, V, logits)];
    for (const v of variants) {
      for (let i = 0; i < 12; i++) {
        const params = { ...base, ...v, uniform: rnd.uniform() };
        expect(await b.sample(lc, params), `${name} ${JSON.stringify({ ...v, uniform: params.uniform })}`).toBe(await ref.sample(lr, params));
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
});
