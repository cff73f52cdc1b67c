import { SeededRandom } from '../sampling/rng.js';

/** Seeded random data for the conformance tests, identical on every platform. */
export class TestRandom {
  private readonly rng: SeededRandom;
  constructor(seed: number) {
    this.rng = new SeededRandom(seed);
  }
  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.rng.uniform();
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.rng.uniform();
    const v = this.rng.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rng.uniform() * n);
  }
  /** `n` normal values times `scale` as f32. */
  normals(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }
}

/** Largest absolute difference between two arrays of the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Largest absolute value of an array. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Index of the first largest value. */
export function argmaxOf(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
