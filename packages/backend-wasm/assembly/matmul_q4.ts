// q4_0 decode kernels (T < 16) with nibbles unpacked straight into i16 lanes. Read as i16x8, a 16-byte
// q4_0 block has in lane i the bytes 2i and 2i+1, i.e. the values 2i (bits 0-3), 2i+16 (4-7), 2i+1
// (8-11) and 2i+17 (12-15): four i16x8 weight vectors for 7 ops, with no widening shuffles. The
// activations are stored in that order by `quantize_q16_q4` (evens of 0-15, evens of 16-31, odds of
// 0-15, odds of 16-31), along with 8 * each block's sum as an i32x4 (8*sum, 0, 0, 0), so that the
// centring (nibble - 8) is one exact integer subtraction per block instead of one per weight. The dot
// products stay exact integers.
import { f16ToF32 } from './common';

@inline function q(v: v128, id: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, id)));
}

/**
 * Like quantize_q16 (int16, d = amax/32767 per 32-block) but in the lane order of the q4 kernels, and
 * with each block's centring correction (8 * sum of quants, 0, 0, 0) as 16 bytes in xsum.
 */
export function quantize_q16_q4(x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  const blocks = <usize>T * <usize>(K >> 5);
  for (let b: usize = 0; b < blocks; b++) {
    const p = x + (b << 7);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
    const m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d: f32 = amax / 32767.0;
    const id = f32x4.splat(d != 0 ? <f32>1.0 / d : 0);
    store<f32>(xs + (b << 2), d);
    const q0 = q(v0, id), q1 = q(v1, id), q2 = q(v2, id), q3 = q(v3, id);
    const q4 = q(v4, id), q5 = q(v5, id), q6 = q(v6, id), q7 = q(v7, id);
    const s = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
    const sum = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
    v128.store(xsum + (b << 4), i32x4.replace_lane(i32x4.splat(0), 0, sum << 3));
    const n0 = i16x8.narrow_i32x4_s(q0, q1), n1 = i16x8.narrow_i32x4_s(q2, q3); // values 0-7, 8-15
    const n2 = i16x8.narrow_i32x4_s(q4, q5), n3 = i16x8.narrow_i32x4_s(q6, q7); // values 16-23, 24-31
    const o = xq + (b << 6);
    v128.store(o, i16x8.shuffle(n0, n1, 0, 2, 4, 6, 8, 10, 12, 14));
    v128.store(o, i16x8.shuffle(n2, n3, 0, 2, 4, 6, 8, 10, 12, 14), 16);
    v128.store(o, i16x8.shuffle(n0, n1, 1, 3, 5, 7, 9, 11, 13, 15), 32);
    v128.store(o, i16x8.shuffle(n2, n3, 1, 3, 5, 7, 9, 11, 13, 15), 48);
  }
}

/** Exact centred dot of one q4_0 block (raw 16 bytes) with reordered activations at x and correction at c. */
@inline function dot(raw: v128, x: usize, c: usize): v128 {
  return i32x4.sub(rawDot(raw, x), v128.load(c));
}

/** Dot of the uncentred nibbles (0..15). */
@inline function rawDot(raw: v128, x: usize): v128 {
  const m = i16x8.splat(0x0f);
  const a = v128.and(raw, m);
  const b = v128.and(i16x8.shr_u(raw, 4), m);
  const c = v128.and(i16x8.shr_u(raw, 8), m);
  const d = i16x8.shr_u(raw, 12);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(a, v128.load(x)), i32x4.dot_i16x8_s(b, v128.load(x, 16))),
    i32x4.add(i32x4.dot_i16x8_s(c, v128.load(x, 32)), i32x4.dot_i16x8_s(d, v128.load(x, 48))));
}

@inline function fma(acc: v128, d: v128, s: f32): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), f32x4.splat(s)));
}

@inline function lanes(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

@inline function biasAt(bias: usize, n: i32): f32 {
  return bias ? load<f32>(bias + (<usize>n << 2)) : 0;
}

@inline function scaleAt(ws: usize, blk: usize): f32 {
  return f16ToF32(<u32>load<u16>(ws + (blk << 1)));
}

/**
 * q4_0 weights against activations from quantize_q16_q4 (xq, xs, xsum). Each output is
 * sum_b sw*sx*(dot_b - 8*sum_b), the bracket an exact integer. 2 rows x 2 tokens tiles, then 2 rows x
 * 1 token, then single rows.
 */
export function matmul_q4_0_nib(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5);
  let r = n0;
  for (; r + 2 <= n1; r += 2) {
    const blk0 = <usize>r * nb, blk1 = blk0 + nb;
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xb0 = <usize>t * nb, xb1 = xb0 + nb;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xb0 + b) << 6), x1 = xq + ((xb1 + b) << 6);
        const sx0 = load<f32>(xs + ((xb0 + b) << 2)), sx1 = load<f32>(xs + ((xb1 + b) << 2));
        const m0 = xsum + ((xb0 + b) << 4), m1 = xsum + ((xb1 + b) << 4);
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        const r0 = v128.load(wq + ((blk0 + b) << 4)), r1 = v128.load(wq + ((blk1 + b) << 4));
        const s00 = sw0 * sx0, s01 = sw0 * sx1, s10 = sw1 * sx0, s11 = sw1 * sx1;
        a00 = fma(a00, dot(r0, x0, m0), s00);
        a01 = fma(a01, dot(r0, x1, m1), s01);
        a10 = fma(a10, dot(r1, x0, m0), s10);
        a11 = fma(a11, dot(r1, x1, m1), s11);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2), o1 = o0 + (<usize>N << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
      store<f32>(o1, lanes(a01) + biasAt(bias, r)); store<f32>(o1, lanes(a11) + biasAt(bias, r + 1), 4);
    }
    for (; t < T; t++) {
      const xb0 = <usize>t * nb;
      let a00 = f32x4.splat(0), a10 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xb0 + b) << 6);
        const sx0 = load<f32>(xs + ((xb0 + b) << 2));
        const m0 = xsum + ((xb0 + b) << 4);
        const s00 = scaleAt(ws, blk0 + b) * sx0, s10 = scaleAt(ws, blk1 + b) * sx0;
        a00 = fma(a00, dot(v128.load(wq + ((blk0 + b) << 4)), x0, m0), s00);
        a10 = fma(a10, dot(v128.load(wq + ((blk1 + b) << 4)), x0, m0), s10);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
    }
  }
  for (; r < n1; r++) {
    const blk0 = <usize>r * nb;
    for (let t = 0; t < T; t++) {
      const xb0 = <usize>t * nb;
      let a00 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const s = scaleAt(ws, blk0 + b) * load<f32>(xs + ((xb0 + b) << 2));
        a00 = fma(a00, dot(v128.load(wq + ((blk0 + b) << 4)), xq + ((xb0 + b) << 6), xsum + ((xb0 + b) << 4)), s);
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), lanes(a00) + biasAt(bias, r));
    }
  }
}
