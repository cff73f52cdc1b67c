// Matrix multiplication for q8_0 and q4_0 weights. Activations are first quantized per 32-value block
// to int8 with an f32 scale (`quantize_q8`, like ggml's q8_0 activations); each block product is then
// an exact int8 x int8 dot product in i16/i32 lanes, scaled once per block by
// f16(weight scale) * activation scale and accumulated in f32. The only approximation is that
// activation rounding (relative error about 1/254 of the block's largest value per element).
//
// Weight storage (as HostWeight, uploaded verbatim): quants row-major, then the f16 scales, one per
// block. q4_0 blocks are 16 bytes: byte j holds value j (low nibble) and j+16 (high nibble), minus 8.
//
// Tiles: 2 weight rows x 2 tokens for T > 1 (a block of weights is unpacked once for 2 tokens, a
// block of activations once for 2 rows), 2 rows x 1 token for decode.
import { f16ToF32 } from './common';

/** Quantizes x[T, K] (K % 32 == 0) to int8 quants xq[T, K] and f32 scales xs[T, K/32]. */
export function quantize_q8(x: usize, xq: usize, xs: usize, T: i32, K: i32): void {
  const blocks = <usize>T * <usize>(K >> 5);
  for (let b: usize = 0; b < blocks; b++) {
    const p = x + (b << 7);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
    let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d: f32 = amax / 127.0;
    const id = f32x4.splat(d != 0 ? <f32>1.0 / d : 0);
    store<f32>(xs + (b << 2), d);
    const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, id)));
    const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, id)));
    const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, id)));
    const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, id)));
    const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, id)));
    const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, id)));
    const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, id)));
    const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, id)));
    const o = xq + (b << 5);
    v128.store(o, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
    v128.store(o, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q4, q5), i16x8.narrow_i32x4_s(q6, q7)), 16);
  }
}

/**
 * Exact dot of a 32-value int8 block (w: two halves) with activations (x: two halves) as i32x4 lanes.
 * Pairs of products are summed in i16 (|w| <= 128, |x| <= 127: at most 32512, no overflow).
 */
@inline function dot8(wa: v128, wb: v128, xa: v128, xb: v128): v128 {
  const p = i16x8.add(i16x8.extmul_low_i8x16_s(wa, xa), i16x8.extmul_high_i8x16_s(wa, xa));
  const q = i16x8.add(i16x8.extmul_low_i8x16_s(wb, xb), i16x8.extmul_high_i8x16_s(wb, xb));
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(p), i32x4.extadd_pairwise_i16x8_s(q));
}

/** Same for 4-bit weights already centred to [-8, 7]: all four partial products fit one i16 sum. */
@inline function dot4(lo: v128, hi: v128, xa: v128, xb: v128): v128 {
  const p = i16x8.add(i16x8.add(i16x8.extmul_low_i8x16_s(lo, xa), i16x8.extmul_high_i8x16_s(lo, xa)),
    i16x8.add(i16x8.extmul_low_i8x16_s(hi, xb), i16x8.extmul_high_i8x16_s(hi, xb)));
  return i32x4.extadd_pairwise_i16x8_s(p);
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

/** Shared driver of both formats; `q4` selects the nibble unpacking (a compile-time constant). */
@inline function quantMatmul(n0: i32, n1: i32, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, q4: bool): void {
  const nb = K >> 5;
  const wBlockBytes: usize = q4 ? 16 : 32;
  const m4 = i8x16.splat(0x0f), c8 = i8x16.splat(8);
  let r = n0;
  for (; r + 2 <= n1; r += 2) {
    const blk0 = <usize>r * <usize>nb, blk1 = blk0 + <usize>nb;
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xblk0 = <usize>t * <usize>nb, xblk1 = xblk0 + <usize>nb;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      for (let b: usize = 0; b < <usize>nb; b++) {
        const x0 = xq + ((xblk0 + b) << 5), x1 = xq + ((xblk1 + b) << 5);
        const x0a = v128.load(x0), x0b = v128.load(x0, 16), x1a = v128.load(x1), x1b = v128.load(x1, 16);
        const sx0 = load<f32>(xs + ((xblk0 + b) << 2)), sx1 = load<f32>(xs + ((xblk1 + b) << 2));
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        if (q4) {
          let raw = v128.load(wq + (blk0 + b) * wBlockBytes);
          let lo = i8x16.sub(v128.and(raw, m4), c8), hi = i8x16.sub(i8x16.shr_u(raw, 4), c8);
          a00 = fma(a00, dot4(lo, hi, x0a, x0b), sw0 * sx0);
          a01 = fma(a01, dot4(lo, hi, x1a, x1b), sw0 * sx1);
          raw = v128.load(wq + (blk1 + b) * wBlockBytes);
          lo = i8x16.sub(v128.and(raw, m4), c8); hi = i8x16.sub(i8x16.shr_u(raw, 4), c8);
          a10 = fma(a10, dot4(lo, hi, x0a, x0b), sw1 * sx0);
          a11 = fma(a11, dot4(lo, hi, x1a, x1b), sw1 * sx1);
        } else {
          const p0 = wq + (blk0 + b) * wBlockBytes, p1 = wq + (blk1 + b) * wBlockBytes;
          let wa = v128.load(p0), wb = v128.load(p0, 16);
          a00 = fma(a00, dot8(wa, wb, x0a, x0b), sw0 * sx0);
          a01 = fma(a01, dot8(wa, wb, x1a, x1b), sw0 * sx1);
          wa = v128.load(p1); wb = v128.load(p1, 16);
          a10 = fma(a10, dot8(wa, wb, x0a, x0b), sw1 * sx0);
          a11 = fma(a11, dot8(wa, wb, x1a, x1b), sw1 * sx1);
        }
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2), o1 = o0 + (<usize>N << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
      store<f32>(o1, lanes(a01) + biasAt(bias, r)); store<f32>(o1, lanes(a11) + biasAt(bias, r + 1), 4);
    }
    for (; t < T; t++) {
      const xblk0 = <usize>t * <usize>nb;
      let a00 = f32x4.splat(0), a10 = f32x4.splat(0);
      for (let b: usize = 0; b < <usize>nb; b++) {
        const x0 = xq + ((xblk0 + b) << 5);
        const x0a = v128.load(x0), x0b = v128.load(x0, 16);
        const sx0 = load<f32>(xs + ((xblk0 + b) << 2));
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        if (q4) {
          let raw = v128.load(wq + (blk0 + b) * wBlockBytes);
          a00 = fma(a00, dot4(i8x16.sub(v128.and(raw, m4), c8), i8x16.sub(i8x16.shr_u(raw, 4), c8), x0a, x0b), sw0 * sx0);
          raw = v128.load(wq + (blk1 + b) * wBlockBytes);
          a10 = fma(a10, dot4(i8x16.sub(v128.and(raw, m4), c8), i8x16.sub(i8x16.shr_u(raw, 4), c8), x0a, x0b), sw1 * sx0);
        } else {
          const p0 = wq + (blk0 + b) * wBlockBytes, p1 = wq + (blk1 + b) * wBlockBytes;
          a00 = fma(a00, dot8(v128.load(p0), v128.load(p0, 16), x0a, x0b), sw0 * sx0);
          a10 = fma(a10, dot8(v128.load(p1), v128.load(p1, 16), x0a, x0b), sw1 * sx0);
        }
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
    }
  }
  for (; r < n1; r++) {
    const blk0 = <usize>r * <usize>nb;
    for (let t = 0; t < T; t++) {
      const xblk0 = <usize>t * <usize>nb;
      let a00 = f32x4.splat(0);
      for (let b: usize = 0; b < <usize>nb; b++) {
        const x0 = xq + ((xblk0 + b) << 5);
        const s = scaleAt(ws, blk0 + b) * load<f32>(xs + ((xblk0 + b) << 2));
        if (q4) {
          const raw = v128.load(wq + (blk0 + b) * wBlockBytes);
          a00 = fma(a00, dot4(i8x16.sub(v128.and(raw, m4), c8), i8x16.sub(i8x16.shr_u(raw, 4), c8), v128.load(x0), v128.load(x0, 16)), s);
        } else {
          const p0 = wq + (blk0 + b) * wBlockBytes;
          a00 = fma(a00, dot8(v128.load(p0), v128.load(p0, 16), v128.load(x0), v128.load(x0, 16)), s);
        }
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), lanes(a00) + biasAt(bias, r));
    }
  }
}

/** q8_0 weights (quants wq[N*K], f16 scales ws[N*K/32]) against quantized activations (xq, xs). */
export function matmul_q8_0(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  quantMatmul(n0, n1, xq, xs, wq, ws, bias, out, T, K, N, false);
}

/** q4_0 weights (16-byte blocks wq[N*K/2], f16 scales ws[N*K/32]) against quantized activations. */
export function matmul_q4_0(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  quantMatmul(n0, n1, xq, xs, wq, ws, bias, out, T, K, N, true);
}
