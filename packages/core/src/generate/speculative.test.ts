import { describe, expect, it } from 'vitest';
import { nextGuesses, promptLookup, SpeculationSchedule, type Proposer } from './speculative.js';

describe('promptLookup', () => {
  it('continues the latest earlier occurrence of the last n-gram', () => {
    //            0  1  2  3  4  5  6  7  8  9
    const ctx = [1, 2, 3, 9, 1, 2, 3, 8, 7, 1, 2, 3];
    // "1 2 3" occurs at 0 and 4 before the end; the latest (4) is followed by 8 7 1 ...
    expect(promptLookup(ctx, 3, 3).tokens).toEqual([8, 7, 1]);
    // Past the context's end the match copies itself: 8 7 1 2 3 then again 8 7 1 2 3.
    expect(promptLookup(ctx, 7, 3).tokens).toEqual([8, 7, 1, 2, 3, 8, 7]);
  });

  it('continues a loop for as many tokens as asked (the match overlaps what it proposes)', () => {
    expect(promptLookup([9, 4, 4, 4, 4], 5, 3).tokens).toEqual([4, 4, 4, 4, 4]);
    expect(promptLookup([9, 1, 2, 1, 2, 1, 2], 5, 3).tokens).toEqual([1, 2, 1, 2, 1]);
  });

  it('prefers the longest n-gram that recurs, then shorter ones', () => {
    // "5 6" recurs nowhere, "6" does (followed by 4); with ngram 1 only the last token is looked up.
    expect(promptLookup([6, 4, 5, 6], 2, 2).tokens).toEqual([4, 5]);
    // "4 6" occurs at 0 (followed by 1) while "6" alone occurs later at 3 (followed by 2): the 2-gram wins.
    expect(promptLookup([4, 6, 1, 6, 2, 4, 6], 1, 2).tokens).toEqual([1]);
    expect(promptLookup([4, 6, 1, 6, 2, 4, 6], 1, 1).tokens).toEqual([2]);
  });

  it('reports the length of the n-gram that matched', () => {
    expect(promptLookup([1, 2, 3, 9, 1, 2, 3], 2, 3)).toEqual({ tokens: [9, 1], matched: 3 });
    expect(promptLookup([4, 6, 1, 6, 2, 4, 6], 1, 1)).toEqual({ tokens: [2], matched: 1 });
    expect(promptLookup([1, 2, 3], 2, 3)).toEqual({ tokens: [], matched: 0 });
  });

  it('proposes nothing when nothing recurs or the context is too short', () => {
    expect(promptLookup([1, 2, 3, 4], 5, 3).tokens).toEqual([]);
    expect(promptLookup([7], 5, 3).tokens).toEqual([]);
    expect(promptLookup([], 5, 3).tokens).toEqual([]);
    // A run of one token: the occurrence just before the end continues with that token, over and over.
    expect(promptLookup([5, 5, 5], 4, 3).tokens).toEqual([5, 5, 5, 5]);
  });
});

/**
 * Feeds a schedule the passes of a backend whose pass of T tokens costs cost(T) ms, where `accept(k)` of
 * k guesses are accepted. Returns each step's k and the tokens per ms against plain decoding's.
 */
function simulate(schedule: SpeculationSchedule, cost: (T: number) => number, accept: (k: number) => number, steps: number, plainMs = cost(1)): { ks: number[]; speedup: number } {
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
  return { ks, speedup: (tokens / ms) * plainMs };
}

/** Two CPU cores: a pass of T tokens costs about 1.4 + 0.5 (T - 2) passes of one (q4_0, bench/small-passes.mjs). */
const cpu = (T: number): number => (T === 1 ? 10 : 10 * (1.4 + 0.5 * (T - 2)));

describe('SpeculationSchedule', () => {
  it('measures a plain step first, then grows one pass size at a time while checks are cheap and accepted', () => {
    const s = new SpeculationSchedule(8);
    // GPU-like: a pass of T tokens costs what one of a single token does; every guess accepted.
    const { ks, speedup } = simulate(s, () => 10, (k) => k, 24);
    // Each size is timed twice before the next is tried; maxTokens caps it.
    expect(ks.slice(0, 8)).toEqual([0, 1, 1, 2, 2, 3, 3, 4]);
    expect(ks.slice(-8)).toEqual([8, 8, 8, 8, 8, 8, 8, 8]);
    expect(s.acceptance()).toBeGreaterThan(0.95);
    expect(speedup).toBeGreaterThan(4);
  });

  it('stops proposing where checks cost more than the accepted guesses save, and tries again now and then', () => {
    const s = new SpeculationSchedule(8);
    const { ks, speedup } = simulate(s, cpu, () => 0, 200);
    expect(ks[0]).toBe(0);
    // Tried (a size twice, to know its cost), then not while the estimate stays low.
    expect(ks.slice(3, 16).every((k) => k === 0)).toBe(true);
    expect(ks.every((k) => k <= 1)).toBe(true);
    // Then a probe of one guess every 15 or so steps (3% of the time), each refused again.
    const tries = ks.filter((k) => k > 0).length;
    expect(tries).toBeGreaterThanOrEqual(8);
    expect(tries).toBeLessThanOrEqual(16);
    expect(speedup).toBeGreaterThan(0.95);
  });

  it('resumes when the text turns repetitive, and recovers from passes timed slow', () => {
    const s = new SpeculationSchedule(8);
    simulate(s, cpu, () => 0, 100);
    const repetitive = simulate(s, cpu, (k) => k, 60);
    expect(repetitive.ks.slice(0, 20).some((k) => k > 0)).toBe(true);
    expect(repetitive.ks.slice(-20).every((k) => k === 8)).toBe(true);
    // The first two passes of two tokens take twice their time: the estimate is too high until a probe.
    let slow = 2;
    const { ks } = simulate(new SpeculationSchedule(8), (T) => (T === 2 && slow-- > 0 ? 2 * cpu(T) : cpu(T)), (k) => k, 80);
    expect(ks.slice(-20).every((k) => k === 8)).toBe(true);
  });

  it('costs little where checks are cheap but guesses always wrong', () => {
    const { speedup } = simulate(new SpeculationSchedule(4), (T) => (T === 1 ? 10 : 10.5 + T * 0.2), () => 0, 200);
    expect(speedup).toBeGreaterThan(0.95);
  });

  it('keeps proposing on a CPU when guesses are mostly right', () => {
    const s = new SpeculationSchedule(8);
    const { ks, speedup } = simulate(s, cpu, (k) => k, 40);
    // With every guess right, k guesses cost 1.4 + 0.5 (k - 1) passes and yield k + 1 tokens.
    expect(ks.slice(20).every((k) => k >= 3)).toBe(true);
    expect(speedup).toBeGreaterThan(1.5);
  });

  it('a slow first pass of each size (warming up) or slow passes now and then do not stop speculation', () => {
    const first = new Set<number>();
    const warming = (T: number): number => {
      if (T > 1 && !first.has(T)) {
        first.add(T);
        return cpu(T) * 5;
      }
      return cpu(T);
    };
    const warm = simulate(new SpeculationSchedule(8), warming, (k) => k, 60);
    expect(warm.ks.slice(-20).every((k) => k === 8)).toBe(true);
    expect(warm.speedup).toBeGreaterThan(1.2);
    let seed = 1;
    const busy = (T: number): number => {
      seed = (seed * 16807) % 2147483647;
      return cpu(T) * (seed / 2147483647 < 0.2 ? 2 : 1);
    };
    expect(simulate(new SpeculationSchedule(8), busy, (k) => k, 100, cpu(1)).speedup).toBeGreaterThan(1.3);
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

describe('acceptance per kind of guess', () => {
  it('stops proposing the kind that fails while another kind goes on', () => {
    const s = new SpeculationSchedule(4);
    for (const [T, ms] of [[1, 10], [2, 14], [3, 19]] as const) {
      s.recordPass(T, ms);
      s.recordPass(T, ms);
    }
    // One-token matches always refused, three-token matches always accepted (CPU-like costs).
    for (let i = 0; i < 10; i++) {
      s.recordCheck(2, 0, 1);
      s.recordCheck(2, 2, 3);
    }
    expect(s.next(4, 1)).toBe(0);
    expect(s.next(4, 3)).toBeGreaterThanOrEqual(2);
    expect(s.acceptance(1)).toBeLessThan(0.05);
    expect(s.acceptance(3)).toBeGreaterThan(0.95);
    // Never seen: the estimate over all kinds (here half the guesses were accepted).
    expect(s.acceptance(2)).toBeGreaterThan(0.4);
    expect(s.acceptance(2)).toBeLessThan(0.8);
  });
});

describe('nextGuesses', () => {
  const context = [5, 6, 7, 5, 6, 7, 5, 6];
  const measured = (): SpeculationSchedule => {
    const s = new SpeculationSchedule(8);
    for (let T = 1; T <= 9; T++) for (const _ of [1, 2]) s.recordPass(T, 10); // checks as cheap as plain steps
    return s;
  };

  it('asks a cheap proposer first, then cuts its guesses to what the schedule wants for their kind', async () => {
    const calls: number[] = [];
    const lookup: Proposer = { cheap: true, propose: (c, max) => { calls.push(max); const m = promptLookup(c, max, 3); return { tokens: m.tokens, kind: m.matched }; } };
    const g = await nextGuesses(lookup, measured(), context, 5, true);
    expect(calls).toEqual([5]);
    expect(g.kind).toBe(3);
    expect(g.tokens).toEqual([7, 5, 6, 7, 5]);
    // Limited by the room left.
    expect((await nextGuesses(lookup, measured(), context, 2, true)).tokens).toEqual([7, 5]);
    expect((await nextGuesses(lookup, measured(), context, 0, true)).tokens).toEqual([]);
  });

  it('asks a costly proposer only for as many as the schedule wants, and not at all for none', async () => {
    const calls: number[] = [];
    const draft: Proposer = { cheap: false, propose: (_c, max) => { calls.push(max); return { tokens: Array.from({ length: max }, (_, i) => i), kind: 0 }; } };
    const fresh = new SpeculationSchedule(8); // nothing measured: a plain step first
    expect((await nextGuesses(draft, fresh, context, 8, true)).tokens).toEqual([]);
    expect(calls).toEqual([]);
    const s = measured();
    const k = s.next(8);
    expect(k).toBeGreaterThan(0);
    expect((await nextGuesses(draft, s, context, 8, true)).tokens.length).toBe(k);
    expect(calls).toEqual([k]);
  });

  it('does not probe a costly proposer (a draft that has not guessed for a while must first catch up)', async () => {
    const calls: number[] = [];
    const draft: Proposer = { cheap: false, propose: (_c, max) => { calls.push(max); return { tokens: [1], kind: 0 }; } };
    const s = new SpeculationSchedule(8);
    for (const [T, ms] of [[1, 10], [2, 14]] as const) for (const _ of [1, 2]) s.recordPass(T, ms);
    s.recordProposal(1, 10); // a draft step as slow as the model's
    for (let i = 0; i < 10; i++) s.recordCheck(1, 0);
    for (let i = 0; i < 100; i++) {
      await nextGuesses(draft, s, context, 8, true);
      s.recordPass(1, 10);
    }
    expect(calls).toEqual([]);
    // Prompt lookup, as cheap, is probed when its guesses have failed as much.
    const t = new SpeculationSchedule(8);
    for (const [T, ms] of [[1, 10], [2, 14]] as const) for (const _ of [1, 2]) t.recordPass(T, ms);
    for (let i = 0; i < 10; i++) t.recordCheck(1, 0);
    const lookup: Proposer = { cheap: true, propose: () => ({ tokens: [1, 2], kind: 0 }) };
    let probes = 0;
    for (let i = 0; i < 100; i++) {
      const g = await nextGuesses(lookup, t, context, 8, true);
      if (g.tokens.length > 0) {
        probes++;
        t.recordPass(2, 14);
        t.recordCheck(1, 0);
      } else t.recordPass(1, 10);
    }
    expect(probes).toBeGreaterThan(2);
    expect(probes).toBeLessThan(12);
  });

  it('with adapt false proposes up to maxTokens every step', async () => {
    const draft: Proposer = { cheap: false, propose: (_c, max) => ({ tokens: Array.from({ length: max }, (_, i) => i), kind: 0 }) };
    expect((await nextGuesses(draft, new SpeculationSchedule(3), context, 10, false)).tokens).toEqual([0, 1, 2]);
  });
});
