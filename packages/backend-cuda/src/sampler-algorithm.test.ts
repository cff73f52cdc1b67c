import { describe, expect, it } from 'vitest';
import { sampleFromLogits, type SamplingParams } from '@qwen2-ts/core';

// native/sampling.cu cannot run here (no GPU). This is a sequential transcription of its algorithm
// (same steps, same cut-off searches over the bit patterns of float64 probabilities, same tie rule),
// checked against core's reference sampler, so that at least the algorithm is proven; the kernel itself
// is checked by the conformance suite on a GPU (scripts/device-check.sh).

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
const keyOf = (p: number): bigint => {
  f64[0] = p;
  return u64[0]!;
};
const valueOf = (k: bigint): number => {
  u64[0] = k;
  return f64[0]!;
};
/** Smallest key in [lo, hi] for which pred holds (pred monotone), as search_key in the kernel. */
function searchKey(lo: bigint, hi: bigint, pred: (x: bigint) => boolean): bigint {
  while (lo < hi) {
    const mid = lo + (hi - lo) / 2n;
    if (pred(mid)) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}
const better = (v: number, i: number, bv: number, bi: number): boolean => !Number.isNaN(v) && (bi < 0 || v > bv || (v === bv && i < bi));

function kernelSample(logits: Float32Array, a: SamplingParams): number {
  const n = logits.length;
  const p = Float64Array.from(logits);
  for (let j = 0; j < a.history.ids.length; j++) {
    const id = a.history.ids[j]!, count = a.history.counts[j]!;
    if (id < 0 || id >= n || count <= 0) continue;
    let v = p[id]!;
    if (a.repetitionPenalty !== 1) v = v > 0 ? v / a.repetitionPenalty : v * a.repetitionPenalty;
    p[id] = v - (a.presencePenalty + a.frequencyPenalty * count);
  }
  let mx = -Infinity;
  for (const v of p) if (!Number.isNaN(v)) mx = Math.max(mx, v);
  if (a.temperature === 0 || mx === -Infinity) {
    let bv = 0, bi = -1;
    for (let i = 0; i < n; i++) if (better(p[i]!, i, bv, bi)) [bv, bi] = [p[i]!, i];
    return bi;
  }
  const invT = 1 / a.temperature;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Number.isNaN(p[i]!) ? 0 : Math.exp((p[i]! - mx) * invT);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) p[i]! /= sum;
  const maxKey = keyOf(1);
  if (a.topK > 0 && a.topK < n) {
    let kept = 0;
    for (const v of p) kept += v > 0 ? 1 : 0;
    if (kept > a.topK) {
      const kth = searchKey(1n, maxKey, (x) => {
        let c = 0;
        for (const v of p) c += keyOf(v) > x ? 1 : 0;
        return c < a.topK;
      });
      for (let i = 0; i < n; i++) if (keyOf(p[i]!) < kth) p[i] = 0;
    }
  }
  if (a.topP < 1) {
    let total = 0;
    for (const v of p) total += v;
    const mass = (x: bigint): number => {
      let m = 0;
      for (const v of p) if (keyOf(v) > x) m += v;
      return m;
    };
    const x0 = searchKey(1n, maxKey, (x) => mass(x) / total < a.topP);
    const above = mass(x0);
    const p0 = valueOf(x0);
    let ties = 0;
    for (const v of p) ties += keyOf(v) === x0 ? 1 : 0;
    let c = 0;
    for (let before = above; c < ties && before / total < a.topP; c++) before += p0;
    c = Math.max(c, 1);
    let rank = 0;
    for (let i = 0; i < n; i++) {
      const k = keyOf(p[i]!);
      if (k === x0) {
        if (rank >= c) p[i] = 0;
        rank++;
      } else if (k < x0) {
        p[i] = 0;
      }
    }
  }
  if (a.minP > 0) {
    let top = 0;
    for (const v of p) top = Math.max(top, v);
    for (let i = 0; i < n; i++) if (p[i]! < a.minP * top) p[i] = 0;
  }
  let total = 0;
  for (const v of p) total += v;
  const target = a.uniform * total;
  let cumulative = 0, last = -1;
  for (let i = 0; i < n; i++) {
    if (!(p[i]! > 0)) continue;
    last = i;
    cumulative += p[i]!;
    if (cumulative > target) return i;
  }
  return last;
}

/** Seeded uniform numbers (mulberry32). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the device sampler algorithm (native/sampling.cu, transcribed)', () => {
  const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
  const base: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: 0 };
  const variants: Partial<SamplingParams>[] = [
    { temperature: 0 }, { temperature: 0, repetitionPenalty: 1.3 }, {}, { temperature: 0.7 }, { temperature: 1.3, topK: 20 },
    { topP: 0.9 }, { topK: 50, topP: 0.5 }, { minP: 0.1 }, { topK: 1 }, { presencePenalty: 1.5, frequencyPenalty: 0.5 },
    { temperature: 0.5, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1 }, { topP: 0.3 }, { topP: 0.999, topK: 3 },
  ];

  it('chooses what sampleFromLogits chooses, on smooth and on heavily tied logits', () => {
    const rnd = random(42);
    let cases = 0;
    for (const tied of [false, true]) {
      for (let trial = 0; trial < 6; trial++) {
        const V = 300 + trial * 97;
        // Tied logits: a few distinct values, so top-k / top-p cut-offs fall inside runs of equal probabilities.
        const logits = Float32Array.from({ length: V }, () => (tied ? Math.floor(rnd() * 6) : (rnd() - 0.5) * 8));
        const history = { ids: Int32Array.of(3, 17, V - 1, 5), counts: Int32Array.of(1, 4, 2, 1) };
        for (const v of variants) {
          for (let i = 0; i < 6; i++) {
            const params: SamplingParams = { ...base, ...v, history: v.repetitionPenalty || v.presencePenalty ? history : none, uniform: rnd() };
            expect(kernelSample(logits, params), JSON.stringify({ tied, V, ...v, uniform: params.uniform })).toBe(sampleFromLogits(logits, params));
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(2 * 6 * variants.length * 6);
  });

  it('handles NaN and -Infinity logits like the reference', () => {
    const logits = Float32Array.of(NaN, -Infinity, 2, NaN, 2, -Infinity);
    for (const v of variants) {
      const params: SamplingParams = { ...base, ...v, uniform: 0.6 };
      expect(kernelSample(logits, params)).toBe(sampleFromLogits(logits, params));
    }
    const allNegInf = Float32Array.of(-Infinity, NaN, -Infinity);
    expect(kernelSample(allNegInf, { ...base, uniform: 0.3 })).toBe(sampleFromLogits(allNegInf, { ...base, uniform: 0.3 }));
  });
});
