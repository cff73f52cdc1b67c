import { describe, expect, it } from 'vitest';
import type { SamplingParams } from '../backend/types.js';
import { SeededRandom } from './rng.js';
import { kthLargestKept, sampleFromLogits } from './sample.js';
import { TokenHistory } from './history.js';

const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
const base: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: 0 };

/** Draws `n` samples and returns the observed frequency of each token. */
function frequencies(logits: number[], params: Partial<SamplingParams>, n: number, seed = 42): number[] {
  const rng = new SeededRandom(seed);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleFromLogits(logits, { ...base, ...params, uniform: rng.uniform() })]!++;
  return counts;
}

/** Softmax of logits / T restricted to `keep` (renormalized). */
function expected(logits: number[], T: number, keep: (i: number) => boolean = () => true): number[] {
  const e = logits.map((l, i) => (keep(i) ? Math.exp(l / T) : 0));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/**
 * Pearson's chi-square statistic of observed counts against expected probabilities. Tokens expected
 * to have zero probability must never be drawn.
 */
function chiSquare(counts: number[], probs: number[]): { stat: number; dof: number } {
  const n = counts.reduce((a, b) => a + b, 0);
  let stat = 0;
  let dof = -1;
  counts.forEach((c, i) => {
    if (probs[i] === 0) {
      expect(c, `token ${i} has probability 0 but was drawn ${c} times`).toBe(0);
      return;
    }
    const e = n * probs[i]!;
    stat += (c - e) ** 2 / e;
    dof++;
  });
  return { stat, dof };
}

/** The 99.9% quantile of chi-square with `dof` degrees of freedom (Wilson-Hilferty). */
function chiSquareCritical(dof: number): number {
  const z = 3.09;
  return dof * (1 - 2 / (9 * dof) + z * Math.sqrt(2 / (9 * dof))) ** 3;
}

function expectDistribution(counts: number[], probs: number[]): void {
  const { stat, dof } = chiSquare(counts, probs);
  if (dof > 0) expect(stat, `chi-square ${stat.toFixed(1)} with ${dof} dof`).toBeLessThan(chiSquareCritical(dof));
}

const logits = [2.0, 1.5, 1.0, 0.8, 0.3, 0.0, -0.5, -1.0, -2.0, 0.9];
const N = 20000;

describe('sampleFromLogits', () => {
  it('is greedy at temperature 0, first index on ties', () => {
    expect(sampleFromLogits(logits, { ...base, temperature: 0, uniform: 0.99 })).toBe(0);
    expect(sampleFromLogits([1, 3, 3], { ...base, temperature: 0 })).toBe(1);
  });
  it('follows softmax(logits / T) at several temperatures', () => {
    for (const T of [1, 0.5, 2]) expectDistribution(frequencies(logits, { temperature: T }, N), expected(logits, T));
  });
  it('top-k keeps the k most likely tokens, renormalized', () => {
    const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!);
    const kept = new Set(order.slice(0, 3));
    expectDistribution(frequencies(logits, { topK: 3 }, N), expected(logits, 1, (i) => kept.has(i)));
    expect(new Set(frequencies(logits, { topK: 1 }, 200).flatMap((c, i) => (c > 0 ? [i] : [])))).toEqual(new Set([0]));
  });
  it('top-k keeps every token tied with the k-th (as Hugging Face does)', () => {
    const counts = frequencies([1, 2, 2, 0], { topK: 2 }, 3000);
    expect(counts[0]).toBe(0);
    expect(counts[3]).toBe(0);
    const tied = frequencies([3, 2, 2, 0], { topK: 2 }, 3000);
    expect(tied[1]! > 0 && tied[2]! > 0).toBe(true);
  });
  it('top-p keeps the smallest prefix whose mass reaches p', () => {
    const p = expected(logits, 1);
    const order = [...logits.keys()].sort((a, b) => p[b]! - p[a]!);
    for (const topP of [0.5, 0.8, 0.95]) {
      const kept = new Set<number>();
      let mass = 0;
      for (const i of order) {
        if (kept.size > 0 && mass >= topP) break;
        kept.add(i);
        mass += p[i]!;
      }
      expectDistribution(frequencies(logits, { topP }, N), expected(logits, 1, (i) => kept.has(i)));
    }
    // A tiny p still keeps the top token.
    expect(frequencies(logits, { topP: 1e-9 }, 100)[0]).toBe(100);
  });
  it('min-p drops tokens below minP times the top probability', () => {
    const p = expected(logits, 1);
    const top = Math.max(...p);
    for (const minP of [0.2, 0.5]) {
      expectDistribution(frequencies(logits, { minP }, N), expected(logits, 1, (i) => p[i]! >= minP * top));
    }
  });
  it('applies top-k, then top-p on the renormalized rest, then min-p', () => {
    // After top-k 4 the kept probabilities (renormalized) decide top-p.
    const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 4);
    const p4 = expected(logits, 1, (i) => order.includes(i));
    const kept = new Set<number>();
    let mass = 0;
    for (const i of order) {
      if (kept.size > 0 && mass >= 0.7) break;
      kept.add(i);
      mass += p4[i]!;
    }
    expectDistribution(frequencies(logits, { topK: 4, topP: 0.7 }, N), expected(logits, 1, (i) => kept.has(i)));
  });
  it('repetition penalty divides positive and multiplies negative logits of seen tokens', () => {
    const l = [1.0, 1.0, -1.0, -1.0];
    const history = new TokenHistory([0, 2]).toParams();
    const want = expected([1 / 1.5, 1.0, -1.5, -1.0], 1);
    expectDistribution(frequencies(l, { repetitionPenalty: 1.5, history }, N), want);
    expect(sampleFromLogits([1.2, 1.0], { ...base, temperature: 0, repetitionPenalty: 1.5, history: new TokenHistory([0]).toParams() })).toBe(1);
  });
  it('presence and frequency penalties subtract once and per occurrence', () => {
    const l = [1, 1, 1];
    const history = new TokenHistory([0, 1, 1, 1]).toParams();
    const want = expected([1 - 0.5 - 0.2, 1 - 0.5 - 0.6, 1], 1);
    expectDistribution(frequencies(l, { presencePenalty: 0.5, frequencyPenalty: 0.2, history }, N), want);
  });
  it('is reproducible with a seed and differs across seeds', () => {
    const a = frequencies(logits, {}, 500, 7);
    const b = frequencies(logits, {}, 500, 7);
    const c = frequencies(logits, {}, 500, 8);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const r1 = new SeededRandom(123);
    const r2 = new SeededRandom(123);
    for (let i = 0; i < 100; i++) {
      const u = r1.uniform();
      expect(u).toBe(r2.uniform());
      expect(u >= 0 && u < 1).toBe(true);
    }
  });
  it('draws by inverse CDF in ascending id order', () => {
    // Probabilities 0.25 each: uniform u picks token floor(4u).
    for (const [u, id] of [[0, 0], [0.24, 0], [0.26, 1], [0.6, 2], [0.999, 3]] as const) {
      expect(sampleFromLogits([0, 0, 0, 0], { ...base, uniform: u })).toBe(id);
    }
  });
  it('rejects invalid parameters with a message naming them', () => {
    expect(() => sampleFromLogits(logits, { ...base, temperature: -1 })).toThrow(/temperature/);
    expect(() => sampleFromLogits(logits, { ...base, topP: 0 })).toThrow(/topP/);
    expect(() => sampleFromLogits(logits, { ...base, uniform: 1 })).toThrow(/uniform/);
    expect(() => sampleFromLogits([], base)).toThrow(/empty/);
  });
  it('handles a full 151936-token vocabulary quickly enough to generate with', () => {
    const rng = new SeededRandom(1);
    const big = Float32Array.from({ length: 151936 }, () => rng.uniform() * 10);
    const id = sampleFromLogits(big, { ...base, temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.1, history: new TokenHistory([1, 2, 3]).toParams(), uniform: 0.5 });
    expect(id).toBeGreaterThanOrEqual(0);
    const top = [...big.keys()].sort((a, b) => big[b]! - big[a]!).slice(0, 20);
    expect(top).toContain(id);
  });
});

describe('kthLargestKept (top-k threshold)', () => {
  it('is the k-th largest kept value, repeats counted, as sorting finds it', () => {
    const rng = new SeededRandom(9);
    for (const n of [1, 7, 100, 6000]) {
      for (let trial = 0; trial < 12; trial++) {
        // Few distinct values, so that ties are everywhere; some tokens not kept.
        const p = Float64Array.from({ length: n }, () => Math.floor(rng.uniform() * 9) / 8);
        const keep = Uint8Array.from({ length: n }, () => (rng.uniform() < 0.8 ? 1 : 0));
        const kept = Float64Array.from(p.filter((_, i) => keep[i] === 1)).sort();
        for (const k of [1, 2, 3, 20, 50, 4096, 4097, 5000]) {
          const want = kept.length <= k ? undefined : kept[kept.length - k];
          const got = kthLargestKept(p, keep, k);
          if (want === undefined) expect(got === undefined || got === kept[0]).toBe(true); // nothing dropped either way
          else expect(got, `n ${n} k ${k}`).toBe(want);
        }
      }
    }
  });
});
