import { describe, expect, it } from 'vitest';
import { promptLookup, SpeculationSchedule } from './speculative.js';

describe('promptLookup', () => {
  it('continues the latest earlier occurrence of the last n-gram', () => {
    //            0  1  2  3  4  5  6  7  8  9
    const ctx = [1, 2, 3, 9, 1, 2, 3, 8, 7, 1, 2, 3];
    // "1 2 3" occurs at 0 and 4 before the end; the latest (4) is followed by 8 7 1 ...
    expect(promptLookup(ctx, 3, 3)).toEqual([8, 7, 1]);
    // Past the context's end the match copies itself: 8 7 1 2 3 then again 8 7 1 2 3.
    expect(promptLookup(ctx, 7, 3)).toEqual([8, 7, 1, 2, 3, 8, 7]);
  });

  it('continues a loop for as many tokens as asked (the match overlaps what it proposes)', () => {
    expect(promptLookup([9, 4, 4, 4, 4], 5, 3)).toEqual([4, 4, 4, 4, 4]);
    expect(promptLookup([9, 1, 2, 1, 2, 1, 2], 5, 3)).toEqual([1, 2, 1, 2, 1]);
  });

  it('prefers the longest n-gram that recurs, then shorter ones', () => {
    // "5 6" recurs nowhere, "6" does (followed by 4); with ngram 1 only the last token is looked up.
    expect(promptLookup([6, 4, 5, 6], 2, 2)).toEqual([4, 5]);
    // "4 6" occurs at 0 (followed by 1) while "6" alone occurs later at 3 (followed by 2): the 2-gram wins.
    expect(promptLookup([4, 6, 1, 6, 2, 4, 6], 1, 2)).toEqual([1]);
    expect(promptLookup([4, 6, 1, 6, 2, 4, 6], 1, 1)).toEqual([2]);
  });

  it('proposes nothing when nothing recurs or the context is too short', () => {
    expect(promptLookup([1, 2, 3, 4], 5, 3)).toEqual([]);
    expect(promptLookup([7], 5, 3)).toEqual([]);
    expect(promptLookup([], 5, 3)).toEqual([]);
    // A run of one token: the occurrence just before the end continues with that token, over and over.
    expect(promptLookup([5, 5, 5], 4, 3)).toEqual([5, 5, 5, 5]);
  });
});

/**
 * Feeds a schedule the passes of a backend whose pass of T tokens costs cost(T) ms, where `accept(k)` of
 * k guesses are accepted. Returns each step's k and the tokens per ms against plain decoding's.
 */
function simulate(schedule: SpeculationSchedule, cost: (T: number) => number, accept: (k: number) => number, steps: number): { ks: number[]; speedup: number } {
  const ks: number[] = [];
  let ms = 0;
  let tokens = 0;
  for (let s = 0; s < steps; s++) {
    const k = schedule.next(64);
    ks.push(k);
    schedule.recordPass(k + 1, cost(k + 1));
    ms += cost(k + 1);
    const kept = k > 0 ? accept(k) : 0;
    tokens += kept + 1;
    if (k > 0) {
      schedule.recordProposal(k, 0.01 * k);
      schedule.recordCheck(k, kept);
    }
  }
  return { ks, speedup: tokens / ms / (1 / cost(1)) };
}

/** Two CPU cores: a pass of T tokens costs about 1.6 + 0.6 (T - 2) passes of one (bench/small-passes.mjs). */
const cpu = (T: number): number => (T === 1 ? 10 : 10 * (1.6 + 0.6 * (T - 2)));

describe('SpeculationSchedule', () => {
  it('measures a plain step first, then grows one pass size at a time while checks are cheap and accepted', () => {
    const s = new SpeculationSchedule(8);
    // GPU-like: a pass of T tokens costs what one of a single token does; every guess accepted.
    const { ks, speedup } = simulate(s, () => 10, (k) => k, 12);
    expect(ks).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8]); // maxTokens caps it
    expect(s.acceptance).toBeGreaterThan(0.95);
    expect(speedup).toBeGreaterThan(5);
  });

  it('stops proposing where checks cost more than the accepted guesses save, and tries again now and then', () => {
    const s = new SpeculationSchedule(8);
    const { ks, speedup } = simulate(s, cpu, () => 0, 200);
    expect(ks[0]).toBe(0);
    // Tried (one size larger while its cost is unknown), then not while the estimate stays low.
    expect(ks.slice(5, 20).every((k) => k === 0)).toBe(true);
    // Plain steps lead the estimate back to its prior: a try every 30 or so steps, each refused again.
    const tries = ks.filter((k) => k > 0).length;
    expect(tries).toBeGreaterThanOrEqual(4);
    expect(tries).toBeLessThanOrEqual(12);
    expect(speedup).toBeGreaterThan(0.95);
  });

  it('costs little where checks are cheap but guesses always wrong', () => {
    const { speedup } = simulate(new SpeculationSchedule(4), (T) => (T === 1 ? 10 : 10.5 + T * 0.2), () => 0, 200);
    expect(speedup).toBeGreaterThan(0.93);
  });

  it('keeps proposing on a CPU when guesses are mostly right', () => {
    const s = new SpeculationSchedule(8);
    const { ks, speedup } = simulate(s, cpu, (k) => k, 30);
    // With every guess right, k guesses cost 1.6 + 0.6 (k - 1) passes and yield k + 1 tokens.
    expect(ks.slice(10).every((k) => k >= 3)).toBe(true);
    expect(speedup).toBeGreaterThan(1.3);
  });

  it('proposes where half the guesses are right only if checks are cheap', () => {
    const half = (k: number): number => Math.floor(k / 2);
    expect(simulate(new SpeculationSchedule(8), () => 10, half, 100).speedup).toBeGreaterThan(1.3);
    expect(simulate(new SpeculationSchedule(8), cpu, half, 100).speedup).toBeGreaterThan(0.9);
  });

  it('never proposes more than the limit', () => {
    const s = new SpeculationSchedule(8);
    simulate(s, () => 10, (k) => k, 10);
    expect(s.next(2)).toBe(2);
    expect(s.next(0)).toBe(0);
  });
});
