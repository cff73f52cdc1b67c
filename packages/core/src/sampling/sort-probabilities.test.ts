import { describe, expect, it } from 'vitest';
import { SeededRandom } from './rng.js';
import { sortProbabilities } from './sort-probabilities.js';

describe('sortProbabilities', () => {
  it('sorts as the built-in sort does: softmax-like values, repeats, zeros, subnormals, large arrays', () => {
    const rng = new SeededRandom(5);
    for (const n of [0, 1, 100, 4096, 5000, 151936]) {
      const kinds = [
        () => Math.exp((rng.uniform() - 1) * 40),
        () => Math.floor(rng.uniform() * 7) / 64,
        () => (rng.uniform() < 0.1 ? 0 : rng.uniform() < 0.1 ? Number.MIN_VALUE * Math.floor(rng.uniform() * 100) : rng.uniform() * 1e-300),
      ];
      for (const kind of kinds) {
        const values = Float64Array.from({ length: n }, kind);
        const want = Float64Array.from(values).sort();
        expect(sortProbabilities(values)).toBe(values); // in place
        expect(values).toEqual(want);
      }
    }
  });
});
