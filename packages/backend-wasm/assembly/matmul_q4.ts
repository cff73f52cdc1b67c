// q4_0 decode kernel (T < 4) of the plain-SIMD build, against int16 activations (the relaxed build
// stores q4_0 interleaved and uses matvec_quant.ts's int8 kernel; blocks are read through q4Block, a
// plain load in this build). Read as i16x8, a 16-byte q4_0 block has in lane i the
// bytes 2i and 2i+1, i.e. the values 2i (bits 0-3), 2i+16 (4-7), 2i+1 (8-11) and 2i+17 (12-15): four
// i16x8 weight vectors for 7 ops, with no widening shuffles. `quantize_q16_q4` stores the activations
// in that order, and 8 * each block's sum as one i32, so that the centring (nibble - 8) is one exact
// integer subtraction per block. The dot products stay exact integers.
//
// q4_k weights (q4_k_layout.ts) run the same tiles: their nibbles are stored as q4_0 blocks, each
// block's uncentred dot product is scaled by d * sc (blockInto), and the min terms dmin * m * sum are
// taken off four blocks at a time (minTerm; one per block instead: 1.20-1.25x q4_0's decode time
// against 1.12-1.14x, bench/matmul.mjs --plain --formats=q4_0,q4_k, 2 threads, Qwen2-7B and 0.5B shapes).
//
// Unlike matvec_quant.ts this one keeps 2-row x 2-token tiles: its few live vectors fit V8's registers,
// and sharing the activation loads between two rows made it 1.2x faster than one row at a time.
import { f16ToF32, hsum } from './common';
import { q4kBlock, q4kScalesAt, q4kSuperAt, q4kUnit } from './q4_k_layout';
import { q4Block, setSize, setStart } from './quant_layout';

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
 * Block b of row r's weight scale: q4_0's f16 scale of block blk at ws (k false), or q4_k's d * sc (k
 * true, from the weight at wq: q4_k_layout.ts; exact in f32).
 */
@inline function blockScale(k: bool, ws: usize, blk: usize, wq: usize, r: usize, N: usize, nb: usize, b: usize): f32 {
  if (!k) return scaleAt(ws, blk);
  const u = wq + q4kUnit(r, N, nb, b), i = r - setStart(16, r, N);
  return load<f32>(u + q4kSuperAt(setSize(16, r, N), i)) * <f32>load<u8>(u + q4kScalesAt(i, b) + (b & 3));
}

/**
 * A block into acc: q4_0 (k false: scale * sx * (dot - 8 * sum), the corrections at c holding 8 * sum
 * of the activations' quants) or q4_k (k true: scale * sx * dot, uncentred; its min term comes per
 * group, minTerm). scale comes from blockScale, once per row for both tokens.
 */
@inline function blockInto(k: bool, acc: v128, raw: v128, x: usize, c: usize, sx: f32, scale: f32): v128 {
  return fma(acc, k ? rawDot(raw, x) : dot(raw, x, c), scale * sx);
}

/**
 * q4_k: the min factors -dmin * m / 8 of the four blocks of row r's group from block b (a multiple of
 * 4), one 4-byte load (q4_k_layout.ts); the 1/8 undoes the corrections' 8 * sum. Exact in f32.
 */
@inline function groupMins(wq: usize, r: usize, N: usize, nb: usize, b: usize): v128 {
  const u = wq + q4kUnit(r, N, nb, b), i = r - setStart(16, r, N);
  const m = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(u + q4kScalesAt(i, b), 4)));
  return f32x4.mul(f32x4.convert_i32x4_u(m), f32x4.splat(load<f32>(u + q4kSuperAt(setSize(16, r, N), i), 4) * -0.125));
}

/** The activation side of four blocks' min terms from block xb of the activations: 8 * sum * sx. */
@inline function groupSums(xs: usize, xsum: usize, xb: usize): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(v128.load(xsum + (xb << 2))), v128.load(xs + (xb << 2)));
}

/**
 * q4_k's min term of a group into acc (whose lanes are summed at the end anyway): four blocks' mins
 * times their activation sums, one multiply-add per group instead of one per block.
 */
@inline function minTerm(acc: v128, mins: v128, sums: v128): v128 {
  return f32x4.add(acc, f32x4.mul(mins, sums));
}

/** Natural block b of row r: q4_0 (k false) or q4_k (k true). */
@inline function blockOf(k: bool, wq: usize, r: usize, N: usize, nb: usize, b: usize): v128 {
  return k ? q4kBlock(wq, r, N, nb, b) : q4Block(wq, r, N, nb, b);
}

/**
 * q4_0 weights against activations from quantize_q16_q4 (xq, xs, xsum). Each output is
 * sum_b sw*sx*(dot_b - 8*sum_b), the bracket an exact integer. 2 rows x 2 tokens tiles, then 2 rows x
 * 1 token, then single rows.
 */
export function matmul_q4_0_nib(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  nibMatmul(false, n0, n1, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/**
 * q4_k weights (q4_k_layout.ts; ws unused) against activations from quantize_q16_q4: matmul_q4_0_nib's
 * tiles with each block scaled by d * sc (blockInto) and the min terms taken off per group (minTerm).
 */
export function matmul_q4_k_nib(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  nibMatmul(true, n0, n1, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** matmul_q4_0_nib (k false) and matmul_q4_k_nib (k true). */
@inline function nibMatmul(k: bool, n0: i32, n1: i32, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5);
  let r = n0;
  for (; r + 2 <= n1; r += 2) {
    const blk0 = <usize>r * nb, blk1 = blk0 + nb, r0 = <usize>r, r1 = r0 + 1, n = <usize>N;
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xb0 = <usize>t * nb, xb1 = xb0 + nb;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xb0 + b) << 6), x1 = xq + ((xb1 + b) << 6);
        const sx0 = load<f32>(xs + ((xb0 + b) << 2)), sx1 = load<f32>(xs + ((xb1 + b) << 2));
        const m0 = xsum + ((xb0 + b) << 2), m1 = xsum + ((xb1 + b) << 2);
        if (k && (b & 3) == 0) {
          const n0m = groupMins(wq, r0, n, nb, b), n1m = groupMins(wq, r1, n, nb, b);
          const s0 = groupSums(xs, xsum, xb0 + b), s1 = groupSums(xs, xsum, xb1 + b);
          a00 = minTerm(a00, n0m, s0); a01 = minTerm(a01, n0m, s1); a10 = minTerm(a10, n1m, s0); a11 = minTerm(a11, n1m, s1);
        }
        const w0 = blockOf(k, wq, r0, n, nb, b), w1 = blockOf(k, wq, r1, n, nb, b);
        const sw0 = blockScale(k, ws, blk0 + b, wq, r0, n, nb, b), sw1 = blockScale(k, ws, blk1 + b, wq, r1, n, nb, b);
        a00 = blockInto(k, a00, w0, x0, m0, sx0, sw0);
        a01 = blockInto(k, a01, w0, x1, m1, sx1, sw0);
        a10 = blockInto(k, a10, w1, x0, m0, sx0, sw1);
        a11 = blockInto(k, a11, w1, x1, m1, sx1, sw1);
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
        if (k && (b & 3) == 0) {
          const s0 = groupSums(xs, xsum, xb0 + b);
          a00 = minTerm(a00, groupMins(wq, r0, n, nb, b), s0); a10 = minTerm(a10, groupMins(wq, r1, n, nb, b), s0);
        }
        a00 = blockInto(k, a00, blockOf(k, wq, r0, n, nb, b), x0, m0, sx0, blockScale(k, ws, blk0 + b, wq, r0, n, nb, b));
        a10 = blockInto(k, a10, blockOf(k, wq, r1, n, nb, b), x0, m0, sx0, blockScale(k, ws, blk1 + b, wq, r1, n, nb, b));
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2);
      store<f32>(o0, hsum(a00) + biasAt(bias, r)); store<f32>(o0, hsum(a10) + biasAt(bias, r + 1), 4);
    }
  }
  for (; r < n1; r++) {
    const blk0 = <usize>r * nb, r0 = <usize>r, n = <usize>N;
    for (let t = 0; t < T; t++) {
      const xb0 = <usize>t * nb;
      let a00 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const sx = load<f32>(xs + ((xb0 + b) << 2));
        if (k && (b & 3) == 0) a00 = minTerm(a00, groupMins(wq, r0, n, nb, b), groupSums(xs, xsum, xb0 + b));
        a00 = blockInto(k, a00, blockOf(k, wq, r0, n, nb, b), xq + ((xb0 + b) << 6), xsum + ((xb0 + b) << 2), sx, blockScale(k, ws, blk0 + b, wq, r0, n, nb, b));
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), hsum(a00) + biasAt(bias, r));
    }
  }
}
