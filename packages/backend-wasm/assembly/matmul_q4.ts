// q4_0 decode kernel (T < 4) of the plain-SIMD build, against int16 activations (the relaxed build
// stores q4_0 interleaved and uses matvec_quant.ts's int8 kernel; blocks are read through q4Block, a
// plain load in this build). Read as i16x8, a 16-byte q4_0 block has in lane i the
// bytes 2i and 2i+1, i.e. the values 2i (bits 0-3), 2i+16 (4-7), 2i+1 (8-11) and 2i+17 (12-15): four
// i16x8 weight vectors for 7 ops, with no widening shuffles. `quantize_q16_q4` stores the activations
// in that order, and 8 * each block's sum as one i32, so that the centring (nibble - 8) is one exact
// integer subtraction per block. The dot products stay exact integers.
//
// Unlike matvec_quant.ts this one keeps 2-row x 2-token tiles: its few live vectors fit V8's registers,
// and sharing the activation loads between two rows made it 1.2x faster than one row at a time.
import { f16ToF32, hsum } from './common';
import { q4Block } from './quant_layout';

/** Exact centred dot of one q4_0 block (raw 16 bytes) with reordered activations at x and the block's correction (an i32) at c. */
@inline function dot(raw: v128, x: usize, c: usize): v128 {
  return i32x4.sub(rawDot(raw, x), v128.load32_zero(c));
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
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
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
        const m0 = xsum + ((xb0 + b) << 2), m1 = xsum + ((xb1 + b) << 2);
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        const r0 = q4Block(wq, <usize>r, <usize>N, nb, b), r1 = q4Block(wq, <usize>r + 1, <usize>N, nb, b);
        const s00 = sw0 * sx0, s01 = sw0 * sx1, s10 = sw1 * sx0, s11 = sw1 * sx1;
        a00 = fma(a00, dot(r0, x0, m0), s00);
        a01 = fma(a01, dot(r0, x1, m1), s01);
        a10 = fma(a10, dot(r1, x0, m0), s10);
        a11 = fma(a11, dot(r1, x1, m1), s11);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2), o1 = o0 + (<usize>N << 2);
      store<f32>(o0, hsum(a00) + biasAt(bias, r)); store<f32>(o0, hsum(a10) + biasAt(bias, r + 1), 4);
      store<f32>(o1, hsum(a01) + biasAt(bias, r)); store<f32>(o1, hsum(a11) + biasAt(bias, r + 1), 4);
    }
    for (; t < T; t++) {
      const xb0 = <usize>t * nb;
      let a00 = f32x4.splat(0), a10 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xb0 + b) << 6);
        const sx0 = load<f32>(xs + ((xb0 + b) << 2));
        const m0 = xsum + ((xb0 + b) << 2);
        const s00 = scaleAt(ws, blk0 + b) * sx0, s10 = scaleAt(ws, blk1 + b) * sx0;
        a00 = fma(a00, dot(q4Block(wq, <usize>r, <usize>N, nb, b), x0, m0), s00);
        a10 = fma(a10, dot(q4Block(wq, <usize>r + 1, <usize>N, nb, b), x0, m0), s10);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2);
      store<f32>(o0, hsum(a00) + biasAt(bias, r)); store<f32>(o0, hsum(a10) + biasAt(bias, r + 1), 4);
    }
  }
  for (; r < n1; r++) {
    const blk0 = <usize>r * nb;
    for (let t = 0; t < T; t++) {
      const xb0 = <usize>t * nb;
      let a00 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const s = scaleAt(ws, blk0 + b) * load<f32>(xs + ((xb0 + b) << 2));
        a00 = fma(a00, dot(q4Block(wq, <usize>r, <usize>N, nb, b), xq + ((xb0 + b) << 6), xsum + ((xb0 + b) << 2)), s);
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), hsum(a00) + biasAt(bias, r));
    }
  }
}
