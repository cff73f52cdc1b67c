// Activation quantizers of the q8_0/q4_0 decode kernels (matvec_quant.ts) and GEMMs (matmul_quant.ts): each 32-value block of
// x[T, K] (K % 32 == 0) gets an f32 scale in xs[T, K/32] and integer quants in xq; the q4_0 layouts
// also store 8 * (sum of the block's quants) as one i32 per block in xsum[T, K/32], so that the
// weights' centring (nibble - 8) is one exact integer subtraction per block instead of one per weight
// (and q4_k's min term, dmin * m * sum, one multiply per block: q4_k_layout.ts).
//   quantize_q16_q4  int16, d = amax / 32767, in a lane order   (q4_0 decode with plain SIMD)
//   quantize_q8x4    int8, d = amax / 127 (ggml's q8_0), in the GEMMs' layout (q4_0 prefill with relaxed SIMD)
//   quantize_q8x4_dense  the same quants in dense rows (q4_0 decode with relaxed SIMD)
//   quantize_q16x4   int16 in the GEMMs' layout (q8_0 prefill; q4_0 prefill with plain SIMD)
//   quantize_q16q8   int16 in the order of the interleaved q8_0 storage (q8_0 decode)
// int16 rounds at most amax/65534 per value (relative 1.5e-5); int8 at most amax/254, as ggml does.
// Each runs on the thread pool over tokens [t0, t1) of x[T, K] (pairs of tokens stay on one thread).
import { gemmRow, storeGroupedVector } from './common';

@inline function q(v: v128, id: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, id)));
}

/** max |v| over one block of 32 f32 at p. */
@inline function blockAmax(p: usize): f32 {
  const m = f32x4.max(
    f32x4.max(f32x4.max(f32x4.abs(v128.load(p)), f32x4.abs(v128.load(p, 16))), f32x4.max(f32x4.abs(v128.load(p, 32)), f32x4.abs(v128.load(p, 48)))),
    f32x4.max(f32x4.max(f32x4.abs(v128.load(p, 64)), f32x4.abs(v128.load(p, 80))), f32x4.max(f32x4.abs(v128.load(p, 96)), f32x4.abs(v128.load(p, 112)))));
  return max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

/** 8 * (sum of the eight i32x4 quants). */
@inline function sum8x(q0: v128, q1: v128, q2: v128, q3: v128, q4: v128, q5: v128, q6: v128, q7: v128): i32 {
  const s = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
  return (i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)) << 3;
}

/** Block b at p: stores its scale d = amax / levels in xs and returns 1/d in every lane (0 for an all-zero block). */
@inline function scaleOf(p: usize, xs: usize, b: usize, levels: f32): v128 {
  const d: f32 = blockAmax(p) / levels;
  store<f32>(xs + (b << 2), d);
  return f32x4.splat(d != 0 ? <f32>1.0 / d : 0);
}

/** n_c (values 8c..8c+7 of block j) to the I16_Q8 group at g: its even/odd pairs to words j of vectors 4c..4c+3. */
@inline function storeEvenOdd(g: usize, j: usize, c: usize, n: v128): void {
  const v = i16x8.shuffle(n, n, 0, 2, 1, 3, 4, 6, 5, 7);
  const o = g + (c << 6) + (j << 2);
  v128.store32_lane(o, v, 0);
  v128.store32_lane(o, v, 1, 16);
  v128.store32_lane(o, v, 2, 32);
  v128.store32_lane(o, v, 3, 48);
}

// Storage layouts of quantizeBlocks (compile-time constants).
const I16_LANES = 0, I8_X4 = 1, I16_X4 = 2, I16_Q8 = 3, I8_DENSE = 4;

/**
 * Every block of x: its scale, its quants as eight i32x4 (values 0-3, 4-7, ... 28-31) and their
 * correction, then the quants stored by `layout`:
 *   I16_LANES  int16 in the lane order of the int16 decode kernels: evens of values 0-15, evens of
 *              16-31, odds of 0-15, odds of 16-31 (a q4_0 block read as i16x8 holds values 2i, 2i+16,
 *              2i+1, 2i+17 in lane i; 16 q8_0 weights hold 2i and 2i+1)
 *   I8_X4, I16_X4  int8 / int16 in the integer GEMMs' operand layout (common.ts storeGroupedVector):
 *              tokens in interleaved pairs, groups of four blocks interleaved word by word
 *   I8_DENSE   int8 with groups interleaved the same way, tokens one after another
 *   I16_Q8     int16 for the q8_0 decode kernel, matching the interleaved q8_0 storage
 *              (quant_layout.ts): in a group, vectors 2v and 2v+1 hold in word j the even and the odd
 *              values of block j that weight vector v holds (values 16a+4i+{0,2} and {1,3}, v = 4a+i);
 *              blocks after the last full group in the I16_LANES order
 */
@inline function quantizeBlocks(t0: i32, t1: i32, x: usize, xq: usize, xs: usize, xsum: usize, K: i32, layout: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const end = <usize>t1 * nb;
  const bb: usize = layout == I8_X4 || layout == I8_DENSE ? 32 : 64;
  for (let b: usize = <usize>t0 * nb; b < end; b++) {
    const p = x + (b << 7);
    const id = scaleOf(p, xs, b, bb == 32 ? 127 : 32767);
    const q0 = q(v128.load(p), id), q1 = q(v128.load(p, 16), id), q2 = q(v128.load(p, 32), id), q3 = q(v128.load(p, 48), id);
    const q4 = q(v128.load(p, 64), id), q5 = q(v128.load(p, 80), id), q6 = q(v128.load(p, 96), id), q7 = q(v128.load(p, 112), id);
    store<i32>(xsum + (b << 2), sum8x(q0, q1, q2, q3, q4, q5, q6, q7));
    const n0 = i16x8.narrow_i32x4_s(q0, q1), n1 = i16x8.narrow_i32x4_s(q2, q3); // values 0-7, 8-15
    const n2 = i16x8.narrow_i32x4_s(q4, q5), n3 = i16x8.narrow_i32x4_s(q6, q7); // values 16-23, 24-31
    const bi = b % nb; // the block's index in its row
    if (layout == I16_Q8 && bi < nb4) {
      // Value 4v+q of the block sits in n_(v/2), lane 4(v&1)+q: the shuffle puts v's even pair in
      // word 2(v&1) and its odd pair in word 2(v&1)+1 of each n_c, i.e. words w go to vectors 4c+w.
      const g = xq + (b - (bi & 3)) * bb, j = bi & 3;
      storeEvenOdd(g, j, 0, n0); storeEvenOdd(g, j, 1, n1); storeEvenOdd(g, j, 2, n2); storeEvenOdd(g, j, 3, n3);
    } else if (layout == I16_LANES || layout == I16_Q8) {
      const o = xq + b * bb;
      v128.store(o, i16x8.shuffle(n0, n1, 0, 2, 4, 6, 8, 10, 12, 14));
      v128.store(o, i16x8.shuffle(n2, n3, 0, 2, 4, 6, 8, 10, 12, 14), 16);
      v128.store(o, i16x8.shuffle(n0, n1, 1, 3, 5, 7, 9, 11, 13, 15), 32);
      v128.store(o, i16x8.shuffle(n2, n3, 1, 3, 5, 7, 9, 11, 13, 15), 48);
    } else {
      const dense = layout == I8_DENSE;
      const row = dense ? xq + (b - bi) * bb : gemmRow(xq, b / nb, nb * bb), vs: usize = dense ? 16 : 32;
      if (layout == I8_X4 || dense) {
        storeGroupedVector(row, bi, nb4, 2, 0, i8x16.narrow_i16x8_s(n0, n1), vs);
        storeGroupedVector(row, bi, nb4, 2, 1, i8x16.narrow_i16x8_s(n2, n3), vs);
      } else {
        storeGroupedVector(row, bi, nb4, 4, 0, n0, vs); storeGroupedVector(row, bi, nb4, 4, 1, n1, vs);
        storeGroupedVector(row, bi, nb4, 4, 2, n2, vs); storeGroupedVector(row, bi, nb4, 4, 3, n3, vs);
      }
    }
  }
}

/** int16 quants for the q8_0 decode kernel (rows of T tokens one after another). */
export function quantize_q16q8(t0: i32, t1: i32, scratch: usize, x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  quantizeBlocks(t0, t1, x, xq, xs, xsum, K, I16_Q8);
}

/** int16 quants in the lane order of the plain build's q4_0 decode kernel (matmul_q4.ts). */
export function quantize_q16_q4(t0: i32, t1: i32, scratch: usize, x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  quantizeBlocks(t0, t1, x, xq, xs, xsum, K, I16_LANES);
}

/** int8 quants in the integer GEMMs' layout (the relaxed build's q4_0 kernels); xq holds T rounded up to even rows. */
export function quantize_q8x4(t0: i32, t1: i32, scratch: usize, x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  quantizeBlocks(t0, t1, x, xq, xs, xsum, K, I8_X4);
}

/**
 * int8 quants grouped as in quantize_q8x4, but token after token (K bytes each, vectors 16 bytes apart)
 * instead of in interleaved pairs: the relaxed q4_0 decode kernel's activations take half the cache.
 */
export function quantize_q8x4_dense(t0: i32, t1: i32, scratch: usize, x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  quantizeBlocks(t0, t1, x, xq, xs, xsum, K, I8_DENSE);
}

/** int16 quants in the integer GEMMs' layout (q8_0, and q4_0 with plain SIMD); xq holds T rounded up to even rows. */
export function quantize_q16x4(t0: i32, t1: i32, scratch: usize, x: usize, xq: usize, xs: usize, xsum: usize, T: i32, K: i32): void {
  quantizeBlocks(t0, t1, x, xq, xs, xsum, K, I16_X4);
}
