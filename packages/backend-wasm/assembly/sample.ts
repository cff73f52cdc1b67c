// Sampling's passes over a row of logits (the vocabulary: 151,936 for Qwen2), for src/sampler.ts, which
// applies the penalties before and the filters on the few candidates after. One thread: a draw is a few
// passes over 600 KB, well under a millisecond, where the JavaScript reference (float64, Math.exp) took
// several.
import { expv } from './common';

/** Below this, e^z is taken as 0 (expv clamps there instead; f32's e^z is subnormal or 0 anyway). */
const EXP_FLOOR: f32 = -87.3;

/**
 * The largest of n floats at x, or NaN when any of them is NaN or infinite (the host then leaves the
 * draw to the reference, whose handling of those cases it does not repeat).
 */
export function sample_max(x: usize, n: i32): f32 {
  let mx = f32x4.splat(-Infinity);
  // 0 * v is +-0 for finite v and NaN for NaN and +-Infinity.
  let bad = f32x4.splat(0);
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    mx = f32x4.max(mx, v);
    bad = f32x4.add(bad, f32x4.mul(v, zero));
  }
  let m = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
  let b = f32x4.extract_lane(bad, 0) + f32x4.extract_lane(bad, 1) + f32x4.extract_lane(bad, 2) + f32x4.extract_lane(bad, 3);
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    m = max(m, v);
    b += v * 0;
  }
  return b != 0 || isNaN(b) ? NaN : m;
}

/**
 * e[i] = exp((x[i] - max) * invT) for n floats (0 where the exponent is below -87.3), and their sum in
 * f64 (two f64x2 chains). The largest logit gets exactly 1.
 */
export function sample_exp(x: usize, e: usize, n: i32, mx: f32, invT: f32): f64 {
  const vmax = f32x4.splat(mx), vinv = f32x4.splat(invT), floor = f32x4.splat(EXP_FLOOR), zero = f32x4.splat(0);
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const z = f32x4.mul(f32x4.sub(v128.load(x + off), vmax), vinv);
    const v = v128.bitselect(zero, expv(z), f32x4.lt(z, floor));
    v128.store(e + off, v);
    s0 = f64x2.add(s0, f64x2.promote_low_f32x4(v));
    s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
  }
  let sum = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1) + f64x2.extract_lane(s1, 0) + f64x2.extract_lane(s1, 1);
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const z = (load<f32>(x + off) - mx) * invT;
    const v: f32 = z < EXP_FLOOR ? 0 : f32x4.extract_lane(expv(f32x4.splat(z)), 0);
    store<f32>(e + off, v);
    sum += <f64>v;
  }
  return sum;
}

/**
 * The k-th largest of n floats at e (counting repeats; 0 < k < n), with a min-heap of the k largest so
 * far at `heap` (k floats). Once the heap is full, blocks of four none of which beats its minimum (most
 * of a vocabulary) cost one comparison.
 */
export function sample_kth(e: usize, n: i32, k: i32, heap: usize): f32 {
  let size = 0;
  let i = 0;
  for (; i < n; i++) {
    if (size == k && i + 4 <= n && (i & 3) == 0) {
      // Skip whole blocks below the heap's minimum.
      const floor = f32x4.splat(load<f32>(heap));
      while (i + 4 <= n && !v128.any_true(f32x4.gt(v128.load(e + (<usize>i << 2)), floor))) i += 4;
      if (i >= n) break;
    }
    const v = load<f32>(e + (<usize>i << 2));
    if (size < k) {
      let at = size++;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        const pv = load<f32>(heap + (<usize>parent << 2));
        if (pv <= v) break;
        store<f32>(heap + (<usize>at << 2), pv);
        at = parent;
      }
      store<f32>(heap + (<usize>at << 2), v);
    } else if (v > load<f32>(heap)) {
      let at = 0;
      for (;;) {
        let child = 2 * at + 1;
        if (child >= k) break;
        if (child + 1 < k && load<f32>(heap + (<usize>(child + 1) << 2)) < load<f32>(heap + (<usize>child << 2))) child++;
        const cv = load<f32>(heap + (<usize>child << 2));
        if (cv >= v) break;
        store<f32>(heap + (<usize>at << 2), cv);
        at = child;
      }
      store<f32>(heap + (<usize>at << 2), v);
    }
  }
  return load<f32>(heap);
}

/** The floats at e in [lo, hi) (lo > 0), in ascending id order, into `vals`; returns how many. */
export function sample_collect(e: usize, n: i32, lo: f32, hi: f32, vals: usize): i32 {
  const vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  let m = 0;
  for (let i = 0; i < n; i += 4) {
    if (i + 4 <= n) {
      const v = v128.load(e + (<usize>i << 2));
      if (!v128.any_true(v128.and(f32x4.ge(v, vlo), f32x4.lt(v, vhi)))) continue;
    }
    for (let j = i; j < min(i + 4, n); j++) {
      const x = load<f32>(e + (<usize>j << 2));
      if (x >= lo && x < hi) store<f32>(vals + (<usize>(m++) << 2), x);
    }
  }
  return m;
}

/** Buckets of {@link sample_histogram}: the top 16 bits of a positive f32 up to 1 (0x3f80 for 1.0). */
const BUCKETS = 16384;

/**
 * Per bucket of the floats at e above 0 (by their top 16 bits, which order positive floats), their sum
 * (f64, at `hist`) and count (i32, at hist + 8 * 16384). Values are at most 1 (the top token's).
 */
export function sample_histogram(e: usize, n: i32, hist: usize): void {
  const counts = hist + (<usize>BUCKETS << 3);
  memory.fill(hist, 0, <usize>BUCKETS * 12);
  for (let i = 0; i < n; i++) {
    const v = load<f32>(e + (<usize>i << 2));
    if (!(v > 0)) continue;
    const b = <usize>(reinterpret<u32>(v) >>> 16);
    store<f64>(hist + (b << 3), load<f64>(hist + (b << 3)) + <f64>v);
    store<i32>(counts + (b << 2), load<i32>(counts + (b << 2)) + 1);
  }
}

/** Whether the token of value v is kept: at least lo, and above thr or one of the first `ties` at thr. */
@inline function kept(v: f32, lo: f32, thr: f32, ties: i32): bool {
  return v >= lo && (v > thr || (v == thr && ties > 0));
}

/**
 * The kept mass (f64, in id order), the kept being the floats at e that are at least lo (> 0) and above
 * thr, with the first `ties` (in id order) equal to thr.
 */
export function sample_kept_mass(e: usize, n: i32, lo: f32, thr: f32, ties: i32): f64 {
  let total: f64 = 0;
  let left = ties;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(e + (<usize>i << 2));
    if (!kept(v, lo, thr, left)) continue;
    if (v == thr) left--;
    total += <f64>v;
  }
  return total;
}

/**
 * The draw: the first kept id (see {@link sample_kept_mass}) whose running sum of kept values (f64, in id
 * order) exceeds `target`, or the last kept id when rounding runs past the end (-1 when none is kept).
 */
export function sample_draw(e: usize, n: i32, lo: f32, thr: f32, ties: i32, target: f64): i32 {
  let cumulative: f64 = 0;
  let last = -1;
  let left = ties;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(e + (<usize>i << 2));
    if (!kept(v, lo, thr, left)) continue;
    if (v == thr) left--;
    cumulative += <f64>v;
    last = i;
    if (cumulative > target) return i;
  }
  return last;
}
