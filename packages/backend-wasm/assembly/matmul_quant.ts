// Matrix multiplication for q8_0 and q4_0 weights. Activations are first quantized per 32-value block
// to int16 with an f32 scale (`quantize_q16`: d = amax / 32767); each block product is then an exact
// integer dot product (int8 weights widened to i16, `i32x4.dot_i16x8_s`, which is one pmaddwd on x64),
// scaled once per block by f16(weight scale) * activation scale and accumulated in f32. The only
// approximation is the activation rounding: at most amax/65534 per element (relative 1.5e-5), far
// below the weights' own quantization error. int16 rather than ggml's int8 activations: the same speed
// with SIMD128 (no pmaddubsw either way) and 256x less activation error.
//
// Weight storage (as HostWeight, uploaded verbatim): quants row-major, f16 scales one per block apart.
// q4_0 blocks are 16 bytes: byte j holds value j (low nibble) and j+16 (high nibble), minus 8.
//
// Prefill of many tokens (T >= PANEL_MIN_T) takes another route: 16 weight rows at a time are
// dequantized exactly into a per-thread f32 panel and multiplied with the f32 GEMM of matmul_float.ts
// (exact f32 activations, and faster there: the integer path pays its per-block scaling per token).
//
// Tiles: 2 weight rows x 2 tokens for T > 1 (a block of weights is widened once for 2 tokens, a block
// of activations loaded once for 2 rows), 2 rows x 1 token for decode.
import { f16ToF32 } from './common';
import { f32Rows, PANEL } from './matmul_float';

/** Quantizes x[T, K] (K % 32 == 0) to int16 quants xq[T, K] and f32 scales xs[T, K/32]. */
export function quantize_q16(x: usize, xq: usize, xs: usize, T: i32, K: i32): void {
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
    const o = xq + (b << 6);
    v128.store(o, i16x8.narrow_i32x4_s(q(v0, id), q(v1, id)));
    v128.store(o, i16x8.narrow_i32x4_s(q(v2, id), q(v3, id)), 16);
    v128.store(o, i16x8.narrow_i32x4_s(q(v4, id), q(v5, id)), 32);
    v128.store(o, i16x8.narrow_i32x4_s(q(v6, id), q(v7, id)), 48);
  }
}

@inline function q(v: v128, id: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, id)));
}

/**
 * Exact dot of one 32-value block: weights as four i16x8 (w0..w3), activations at x (64 bytes), as
 * i32x4 lanes. |w| <= 128, |x| <= 32767: each lane sums 8 products, far inside i32.
 */
@inline function dot(w0: v128, w1: v128, w2: v128, w3: v128, x: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(x)), i32x4.dot_i16x8_s(w1, v128.load(x, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(x, 32)), i32x4.dot_i16x8_s(w3, v128.load(x, 48))));
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

/** Widened weights of one block: values 0-7, 8-15, 16-23, 24-31 as i16x8. */
@inline function lo8(v: v128): v128 { return i16x8.extend_low_i8x16_s(v); }
@inline function hi8(v: v128): v128 { return i16x8.extend_high_i8x16_s(v); }
/** q4_0: low nibbles (values 0-15) and high nibbles (16-31), centred to [-8, 7] as i8x16. */
@inline function nibLo(raw: v128): v128 { return i8x16.sub(v128.and(raw, i8x16.splat(0x0f)), i8x16.splat(8)); }
@inline function nibHi(raw: v128): v128 { return i8x16.sub(i8x16.shr_u(raw, 4), i8x16.splat(8)); }

/**
 * The int16-activation driver; `q4` selects the nibble unpacking (a compile-time constant). Only the
 * q8_0 instance is exported: q4_0 decode uses the faster lane-order kernel of matmul_q4.ts.
 */
@inline function quantMatmul(n0: i32, n1: i32, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, q4: bool): void {
  const nb = <usize>(K >> 5);
  const wBlockBytes: usize = q4 ? 16 : 32;
  let r = n0;
  for (; r + 2 <= n1; r += 2) {
    const blk0 = <usize>r * nb, blk1 = blk0 + nb;
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xblk0 = <usize>t * nb, xblk1 = xblk0 + nb;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xblk0 + b) << 6), x1 = xq + ((xblk1 + b) << 6);
        const sx0 = load<f32>(xs + ((xblk0 + b) << 2)), sx1 = load<f32>(xs + ((xblk1 + b) << 2));
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        let va: v128, vb: v128;
        if (q4) { const raw = v128.load(wq + (blk0 + b) * wBlockBytes); va = nibLo(raw); vb = nibHi(raw); }
        else { const p = wq + (blk0 + b) * wBlockBytes; va = v128.load(p); vb = v128.load(p, 16); }
        let w0 = lo8(va), w1 = hi8(va), w2 = lo8(vb), w3 = hi8(vb);
        a00 = fma(a00, dot(w0, w1, w2, w3, x0), sw0 * sx0);
        a01 = fma(a01, dot(w0, w1, w2, w3, x1), sw0 * sx1);
        if (q4) { const raw = v128.load(wq + (blk1 + b) * wBlockBytes); va = nibLo(raw); vb = nibHi(raw); }
        else { const p = wq + (blk1 + b) * wBlockBytes; va = v128.load(p); vb = v128.load(p, 16); }
        w0 = lo8(va); w1 = hi8(va); w2 = lo8(vb); w3 = hi8(vb);
        a10 = fma(a10, dot(w0, w1, w2, w3, x0), sw1 * sx0);
        a11 = fma(a11, dot(w0, w1, w2, w3, x1), sw1 * sx1);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2), o1 = o0 + (<usize>N << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
      store<f32>(o1, lanes(a01) + biasAt(bias, r)); store<f32>(o1, lanes(a11) + biasAt(bias, r + 1), 4);
    }
    for (; t < T; t++) {
      const xblk0 = <usize>t * nb;
      let a00 = f32x4.splat(0), a10 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const x0 = xq + ((xblk0 + b) << 6);
        const sx0 = load<f32>(xs + ((xblk0 + b) << 2));
        const sw0 = scaleAt(ws, blk0 + b), sw1 = scaleAt(ws, blk1 + b);
        let va: v128, vb: v128;
        if (q4) { const raw = v128.load(wq + (blk0 + b) * wBlockBytes); va = nibLo(raw); vb = nibHi(raw); }
        else { const p = wq + (blk0 + b) * wBlockBytes; va = v128.load(p); vb = v128.load(p, 16); }
        a00 = fma(a00, dot(lo8(va), hi8(va), lo8(vb), hi8(vb), x0), sw0 * sx0);
        if (q4) { const raw = v128.load(wq + (blk1 + b) * wBlockBytes); va = nibLo(raw); vb = nibHi(raw); }
        else { const p = wq + (blk1 + b) * wBlockBytes; va = v128.load(p); vb = v128.load(p, 16); }
        a10 = fma(a10, dot(lo8(va), hi8(va), lo8(vb), hi8(vb), x0), sw1 * sx0);
      }
      const o0 = out + ((<usize>t * <usize>N + <usize>r) << 2);
      store<f32>(o0, lanes(a00) + biasAt(bias, r)); store<f32>(o0, lanes(a10) + biasAt(bias, r + 1), 4);
    }
  }
  for (; r < n1; r++) {
    const blk0 = <usize>r * nb;
    for (let t = 0; t < T; t++) {
      const xblk0 = <usize>t * nb;
      let a00 = f32x4.splat(0);
      for (let b: usize = 0; b < nb; b++) {
        const s = scaleAt(ws, blk0 + b) * load<f32>(xs + ((xblk0 + b) << 2));
        let va: v128, vb: v128;
        if (q4) { const raw = v128.load(wq + (blk0 + b) * wBlockBytes); va = nibLo(raw); vb = nibHi(raw); }
        else { const p = wq + (blk0 + b) * wBlockBytes; va = v128.load(p); vb = v128.load(p, 16); }
        a00 = fma(a00, dot(lo8(va), hi8(va), lo8(vb), hi8(vb), xq + ((xblk0 + b) << 6)), s);
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), lanes(a00) + biasAt(bias, r));
    }
  }
}

/** q8_0 weights (quants wq[N*K], f16 scales ws[N*K/32]) against int16-quantized activations (xq, xs). */
export function matmul_q8_0(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  quantMatmul(n0, n1, xq, xs, wq, ws, bias, out, T, K, N, false);
}


/** Dequantizes rows [r0, r0+rows) of a q8_0/q4_0 weight exactly into f32 rows at dst. */
@inline function dequantRows(wq: usize, ws: usize, dst: usize, K: i32, r0: i32, rows: i32, q4: bool): void {
  const first = <usize>r0 * <usize>(K >> 5);
  const blocks = <usize>rows * <usize>(K >> 5);
  for (let b: usize = 0; b < blocks; b++) {
    const blk = first + b;
    const s = f32x4.splat(scaleAt(ws, blk));
    let va: v128, vb: v128;
    if (q4) { const raw = v128.load(wq + (blk << 4)); va = nibLo(raw); vb = nibHi(raw); }
    else { const p = wq + (blk << 5); va = v128.load(p); vb = v128.load(p, 16); }
    const o = dst + (b << 7);
    const a0 = lo8(va), a1 = hi8(va), b0 = lo8(vb), b1 = hi8(vb);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a0)), s));
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a0)), s), 16);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a1)), s), 32);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a1)), s), 48);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b0)), s), 64);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b0)), s), 80);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b1)), s), 96);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b1)), s), 112);
  }
}

@inline function panelMatmul(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, q4: bool): void {
  for (let r = n0; r < n1; r += PANEL) {
    const rows = min(PANEL, n1 - r);
    dequantRows(wq, ws, scratch, K, r, rows, q4);
    f32Rows(x, scratch, bias, out, T, K, N, 0, rows, r);
  }
}

/** q8_0 weights against f32 activations x[T, K] through f32 panels; `scratch` holds 16*K floats. */
export function matmul_q8_0_panel(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  panelMatmul(n0, n1, scratch, x, wq, ws, bias, out, T, K, N, false);
}

/** q4_0 weights against f32 activations x[T, K] through f32 panels; `scratch` holds 16*K floats. */
export function matmul_q4_0_panel(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  panelMatmul(n0, n1, scratch, x, wq, ws, bias, out, T, K, N, true);
}
