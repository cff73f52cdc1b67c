import { describe, expect, it } from 'vitest';
import { sampleFromLogits, type SamplingParams } from '@qwen2-ts/core';

// A sequential transcription of native/sampling.cu's algorithm (its three kernels: the chunks'
// penalized logits and softmax partials, each chunk's candidates, then top-k, top-p and min-p over the
// gathered candidates and the draw), checked against core's reference sampler. The chunk size and the
// sorted top-p's limit are parameters, so that small vocabularies run many chunks and both top-p paths;
// the kernels themselves run on the emulated CUDA thread model (`test:kernels`) and on a GPU.

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
/** The k-th largest key of `p` (the kernel's radix select finds the same key). */
const kthLargestKey = (p: ArrayLike<number>, k: number): bigint => Array.from(p, keyOf).sort((x, y) => (x > y ? -1 : x < y ? 1 : 0))[k - 1]!;

interface Shape {
  /** Tokens per block of kernels 1 and 2 (1024 in the kernel). */
  chunk: number;
  /** Most kept tokens the sorted top-p takes (the draw block's 1024 threads in the kernel). */
  sortedLimit: number;
}

function kernelSample(logits: Float32Array, a: SamplingParams, { chunk, sortedLimit }: Shape): number {
  const n = logits.length;
  const chunks = Math.ceil(n / chunk);
  const range = (c: number): [number, number] => [c * chunk, Math.min(n, (c + 1) * chunk)];
  // Kernel 1: penalized logits, each chunk's max, sum of exp relative to it and greedy best.
  const v = Float64Array.from(logits);
  for (let j = 0; j < a.history.ids.length; j++) {
    const id = a.history.ids[j]!, count = a.history.counts[j]!;
    if (id < 0 || id >= n || count <= 0) continue;
    let x = v[id]!;
    if (a.repetitionPenalty !== 1) x = x > 0 ? x / a.repetitionPenalty : x * a.repetitionPenalty;
    v[id] = x - (a.presencePenalty + a.frequencyPenalty * count);
  }
  const invT = 1 / a.temperature;
  const part = Array.from({ length: chunks }, (_, c) => {
    const [lo, hi] = range(c);
    let m = -Infinity, bv = 0, bi = -1, e = 0;
    for (let i = lo; i < hi; i++) {
      if (!Number.isNaN(v[i]!)) m = Math.max(m, v[i]!);
      if (better(v[i]!, i, bv, bi)) [bv, bi] = [v[i]!, i];
    }
    if (a.temperature > 0 && m > -Infinity) for (let i = lo; i < hi; i++) if (!Number.isNaN(v[i]!)) e += Math.exp((v[i]! - m) * invT);
    return { m, e, bv, bi };
  });
  // Kernel 2: the softmax's max and sum from the chunks', each chunk's probabilities and candidates.
  const mx = Math.max(...part.map((q) => q.m));
  if (a.temperature === 0 || mx === -Infinity) {
    let bv = 0, bi = -1;
    for (const q of part) if (q.bi >= 0 && better(q.bv, q.bi, bv, bi)) [bv, bi] = [q.bv, q.bi];
    return bi;
  }
  let sum = 0;
  for (const q of part) if (q.m > -Infinity) sum += q.e * Math.exp((q.m - mx) * invT);
  const topK = a.topK > 0 && a.topK < n;
  let floor = 0;
  if (!topK && a.topP < 1) floor = (0.25 * (1 - a.topP)) / n;
  else if (!topK && a.minP > 0) floor = a.minP * (1 / sum);
  const cands: { p: number[]; id: number[]; mass: number; kept: number }[] = [];
  for (let c = 0; c < chunks; c++) {
    const [lo, hi] = range(c);
    const p = Array.from({ length: hi - lo }, (_, j) => (Number.isNaN(v[lo + j]!) ? 0 : Math.exp((v[lo + j]! - mx) * invT) / sum));
    const kept = p.filter((x) => x > 0).length;
    const cut = topK && kept > a.topK ? kthLargestKey(p, a.topK) : 1n;
    const take = p.map((x, j) => [x, lo + j] as const).filter(([x]) => x >= floor && keyOf(x) >= cut && x > 0);
    cands.push({ p: take.map(([x]) => x), id: take.map(([, i]) => i), mass: p.reduce((s, x) => s + x, 0), kept });
  }
  // Kernel 3. No filter: the chunk where the cumulative mass crosses uniform * total, then the token.
  if (!topK && a.topP === 1 && a.minP === 0) {
    const total = cands.reduce((s, c) => s + c.mass, 0);
    const target = a.uniform * total;
    let cum = 0;
    for (const c of cands) {
      if (cum + c.mass > target) {
        for (let j = 0; j < c.p.length; j++) if ((cum += c.p[j]!) > target) return c.id[j]!;
        return c.id[c.id.length - 1]!;
      }
      cum += c.mass;
    }
    return cands.filter((c) => c.id.length > 0).at(-1)!.id.at(-1)!;
  }
  // The candidates gathered in id order; the filters run over them.
  const p = cands.flatMap((c) => c.p);
  const ids = cands.flatMap((c) => c.id);
  let total = cands.reduce((s, c) => s + c.mass, 0);
  let count = cands.reduce((s, c) => s + c.kept, 0);
  if (topK && p.filter((x) => x > 0).length > a.topK) {
    const kth = kthLargestKey(p, a.topK);
    for (let i = 0; i < p.length; i++) if (keyOf(p[i]!) < kth) p[i] = 0;
  }
  const kept = p.filter((x) => x > 0).length;
  if (a.topP < 1 && kept <= sortedLimit) {
    // Sorted: the total from the smallest up (with top-k), the mass before each token from the largest down.
    const order = p.map((x, i) => i).filter((i) => p[i]! > 0).sort((i, j) => (p[j]! - p[i]! || i - j));
    if (topK) total = order.reduceRight((s, i) => s + p[i]!, 0);
    let before = 0, c = 0;
    while (c < order.length && !(c > 0 && before / total >= a.topP)) before += p[order[c++]!]!;
    for (const i of order.slice(c)) p[i] = 0;
  } else if (a.topP < 1) {
    if (topK) {
      total = p.reduce((s, x) => s + x, 0);
      count = kept;
    }
    const floorP = (0.5 * (1 - a.topP) * total) / count;
    const candidates = p.filter((x) => x > 0 && x >= floorP);
    const mass = (x: bigint): number => candidates.reduce((s, y) => (keyOf(y) > x ? s + y : s), 0);
    const x0 = searchKey(1n, keyOf(1), (x) => mass(x) / total < a.topP);
    const above = p.reduce((s, y) => (keyOf(y) > x0 ? s + y : s), 0);
    const p0 = valueOf(x0);
    const ties = p.filter((y) => keyOf(y) === x0).length;
    let c = 0;
    for (let before = above; c < ties && before / total < a.topP; c++) before += p0;
    c = Math.max(c, 1);
    let rank = 0;
    for (let i = 0; i < p.length; i++) {
      const k = keyOf(p[i]!);
      if (k === x0) {
        if (rank >= c) p[i] = 0;
        rank++;
      } else if (k < x0) p[i] = 0;
    }
  }
  if (a.minP > 0) {
    const top = Math.max(...p);
    for (let i = 0; i < p.length; i++) if (p[i]! < a.minP * top) p[i] = 0;
  }
  const drawTotal = p.reduce((s, x) => s + x, 0);
  const target = a.uniform * drawTotal;
  let cumulative = 0, last = -1;
  for (let i = 0; i < p.length; i++) {
    if (!(p[i]! > 0)) continue;
    last = i;
    cumulative += p[i]!;
    if (cumulative > target) return ids[i]!;
  }
  return ids[last]!;
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
    { topP: 0.8, minP: 0.02 }, { temperature: 2, topP: 0.99 }, { topK: 200, topP: 0.9 },
  ];
  // One chunk, many chunks (the last partial), and a sorted top-p limit small enough that the bisection runs too.
  const shapes: Shape[] = [{ chunk: 1024, sortedLimit: 1024 }, { chunk: 64, sortedLimit: 1024 }, { chunk: 50, sortedLimit: 16 }];

  it('chooses what sampleFromLogits chooses, on smooth and on heavily tied logits', () => {
    const rnd = random(42);
    let cases = 0, boundary = 0;
    for (const shape of shapes) {
      for (const tied of [false, true]) {
        for (let trial = 0; trial < 6; trial++) {
          const V = 300 + trial * 97;
          // Tied logits: a few distinct values, so top-k / top-p cut-offs fall inside runs of equal probabilities.
          const logits = Float32Array.from({ length: V }, () => (tied ? Math.floor(rnd() * 6) : (rnd() - 0.5) * 8));
          const history = { ids: Int32Array.of(3, 17, V - 1, 5), counts: Int32Array.of(1, 4, 2, 1) };
          for (const v of variants) {
            for (let i = 0; i < 6; i++) {
              const params: SamplingParams = { ...base, ...v, history: v.repetitionPenalty || v.presencePenalty ? history : none, uniform: rnd() };
              const got = kernelSample(logits, params, shape), want = sampleFromLogits(logits, params);
              const what = JSON.stringify({ shape, tied, V, ...v, uniform: params.uniform });
              cases++;
              if (got === want) continue;
              // Several chunks sum the softmax in another order than the reference, so its probabilities
              // may differ in the last bit. That matters only where top-p's bound falls exactly on a
              // boundary inside a group of equal probabilities; the draw is then the reference's with
              // top_p a hair above or below (the emulated kernel test accepts the same).
              expect(tied && shape.chunk < V, what).toBe(true);
              expect([sampleFromLogits(logits, { ...params, topP: params.topP * (1 - 1e-12) }), sampleFromLogits(logits, { ...params, topP: params.topP * (1 + 1e-12) })], what).toContain(got);
              boundary++;
            }
          }
        }
      }
    }
    expect(cases).toBe(shapes.length * 2 * 6 * variants.length * 6);
    expect(boundary).toBeLessThan(cases / 200);
  });

  it('handles NaN and -Infinity logits like the reference', () => {
    const logits = Float32Array.of(NaN, -Infinity, 2, NaN, 2, -Infinity);
    for (const shape of [{ chunk: 1024, sortedLimit: 1024 }, { chunk: 2, sortedLimit: 1 }]) {
      for (const v of variants) {
        const params: SamplingParams = { ...base, ...v, uniform: 0.6 };
        expect(kernelSample(logits, params, shape)).toBe(sampleFromLogits(logits, params));
      }
      const allNegInf = Float32Array.of(-Infinity, NaN, -Infinity);
      expect(kernelSample(allNegInf, { ...base, uniform: 0.3 }, shape)).toBe(sampleFromLogits(allNegInf, { ...base, uniform: 0.3 }));
    }
  });
});
