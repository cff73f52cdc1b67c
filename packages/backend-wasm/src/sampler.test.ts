import { sampleFromLogits, type SamplingParams } from '@qwen2-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmBackend, type WasmBackend } from './backend.js';
import { rng } from './test-helpers.js';

const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
const base: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: 0 };

/** Rows of logits shaped like what models give: peaked, flat, and with many exact ties. */
function rows(V: number, seed: number): Record<string, Float32Array> {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r());
  const peaked = Float32Array.from({ length: V }, () => 3 * normal());
  for (let i = 0; i < 5; i++) peaked[Math.floor(r() * V)] = 14 + i;
  return {
    peaked,
    flat: Float32Array.from({ length: V }, () => r() * 2 - 1),
    // A few distinct values: ties at every filter's cut.
    ties: Float32Array.from({ length: V }, () => Math.floor(r() * 6) - 3),
    // Far below the top: probabilities that underflow to 0.
    underflow: Float32Array.from({ length: V }, (_, i) => (i % 97 === 0 ? 0 : -200 - r() * 50)),
  };
}

describe('sampling in the kernel module', () => {
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads: 2 }); });
  afterAll(async () => { await backend.dispose(); });

  const upload = (l: Float32Array) => {
    const t = backend.alloc(1, l.length);
    backend.write(t, l);
    return t;
  };

  const history = { ids: Int32Array.from([3, 17, 500, 2047]), counts: Int32Array.from([1, 4, 2, 1]) };
  const variants: Partial<SamplingParams>[] = [
    {}, { temperature: 0.7 }, { temperature: 1.3, topK: 20 }, { topK: 1 }, { topK: 2047 }, { topP: 0.9 }, { topP: 0.5, temperature: 0.6 },
    { topK: 50, topP: 0.5 }, { minP: 0.1 }, { minP: 0.5, topP: 0.95 }, { presencePenalty: 1.5, frequencyPenalty: 0.5, history },
    { temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.05, history }, { temperature: 0.5, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, history },
  ];

  it('draws what core\'s sampleFromLogits draws, but where the uniform is within rounding of a boundary', async () => {
    const V = 2048 * 3 + 5; // blocks of four and a tail
    const r = rng(7);
    let draws = 0;
    let nearBoundary = 0;
    for (const [shape, l] of Object.entries(rows(V, 11))) {
      const t = upload(l);
      for (const v of variants) {
        for (let i = 0; i < 12; i++) {
          const params = { ...base, ...v, uniform: r() };
          const got = await backend.sample(t, params);
          const want = sampleFromLogits(l, params);
          if (shape !== 'ties') draws++;
          if (got === want) continue;
          // f32 probabilities move a boundary by rounding only: a uniform a hair away gives this draw, or,
          // among exactly tied tokens, a topP a hair away (top-p's count there rests on whether k / M
          // reaches topP, which float64 sums of equal probabilities can miss by an ulp).
          // (Tied rows meet the top-p case at every 50/50 split: counted apart.)
          if (shape !== 'ties') nearBoundary++;
          const around = new Set<number>();
          for (const u of [params.uniform - 1e-5, params.uniform, params.uniform + 1e-5]) {
            for (const p of params.topP < 1 ? [params.topP - 1e-9, params.topP, Math.min(1, params.topP + 1e-9)] : [1]) {
              if (u >= 0 && u < 1) around.add(sampleFromLogits(l, { ...params, uniform: u, topP: p }));
            }
          }
          expect([...around], `${shape} ${JSON.stringify({ ...v, history: undefined, uniform: params.uniform })}: drew ${got}, the reference ${want}`).toContain(got);
        }
      }
      // The logits are what the model left: the penalties worked on a copy.
      expect(await backend.read(t)).toEqual(l);
    }
    expect(nearBoundary / draws).toBeLessThan(0.01);
  });

  it('leaves greedy draws and rows holding NaN or infinities to the reference, with its exact results', async () => {
    const V = 1001;
    const r = rng(3);
    const l = Float32Array.from({ length: V }, () => r() * 4 - 2);
    const cases: [string, (x: Float32Array) => void][] = [
      ['NaN among the values', (x) => { x[10] = NaN; x[500] = NaN; }],
      ['a +Infinity', (x) => { x[77] = Infinity; }],
      ['-Infinity masks', (x) => { for (let i = 0; i < V; i += 2) x[i] = -Infinity; }],
      ['every value -Infinity', (x) => x.fill(-Infinity)],
      ['every value NaN but one', (x) => { x.fill(NaN); x[999] = 1; }],
    ];
    for (const [what, edit] of cases) {
      const x = l.slice();
      edit(x);
      const t = upload(x);
      for (const v of [{}, { topK: 5 }, { topP: 0.5 }, { minP: 0.2 }, { temperature: 0 }, { temperature: 0, repetitionPenalty: 1.5, history: { ids: Int32Array.from([77, 999]), counts: Int32Array.from([1, 1]) } }]) {
        for (const uniform of [0, 0.25, 0.999]) {
          const params = { ...base, ...v, uniform };
          expect(await backend.sample(t, params), `${what} ${JSON.stringify({ ...v, history: undefined })} ${uniform}`).toBe(sampleFromLogits(x, params));
        }
      }
    }
    const allNaN = upload(new Float32Array(V).fill(NaN));
    await expect(backend.sample(allNaN, base)).rejects.toThrow(/NaN/);
  });

  it('follows the probabilities: 4000 draws of a 5-token distribution land as often as they should', async () => {
    const t = upload(Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4), Math.log(10)]));
    const counts = new Array<number>(5).fill(0);
    const r = rng(5);
    for (let i = 0; i < 4000; i++) counts[await backend.sample(t, { ...base, uniform: r() })]!++;
    const want = [1, 2, 3, 4, 10].map((w) => (w / 20) * 4000);
    // Binomial standard deviations are at most 32 here: 5 of them is a failure, not noise.
    counts.forEach((c, i) => expect(Math.abs(c - want[i]!), `token ${i}: ${c} draws, expected about ${want[i]}`).toBeLessThan(160));
  });

  it('refuses bad parameters with the reference\'s messages', async () => {
    const t = upload(new Float32Array(64));
    await expect(backend.sample(t, { ...base, topP: 0 })).rejects.toThrow('sampling: topP must be in (0, 1], got 0');
    await expect(backend.sample(t, { ...base, temperature: -1 })).rejects.toThrow(/temperature/);
  });
});
