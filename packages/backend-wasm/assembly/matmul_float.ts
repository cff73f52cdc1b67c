// Matrix multiplication out[T, N] = x[T, K] . W[N, K]^T (+ bias) for float weights (f32, f16, bf16).
// Every kernel computes output columns n0..n1 (the rows of W given to one thread) for all T tokens.
//
// GEMM (T > 1): register tiles of 4 weight rows x 2 tokens (8 f32x4 accumulators + 6 loads fit V8's
// 16 xmm registers), K innermost; a 4-row block of W stays in L1 while every token streams past it.
// Half-precision weights are first widened, 16 rows at a time, into a per-thread f32 panel in
// `scratch`, so the conversion is paid once per row instead of once per token.
// Matvec (T = 1): f32 8 rows at a time; bf16 one row at a time up to ROW_MATVEC_MAX_K columns, 8 rows
// at a time beyond (matvec_bf16_paired); f16 4 rows at a time (halfMatvec). Half weights widen on the fly.
import { hsum, f16x4ToF32, bf16x4ToF32, f16ToF32, madd } from './common';

/** Rows of a half-precision panel converted at once (16 rows x K f32 must fit in the thread's scratch). */
export const PANEL: i32 = 16;

/** Longest rows the one-row bf16 matvec takes (longer rows read faster 8 rows at a time here). */
const ROW_MATVEC_MAX_K: i32 = 2048;

@inline function biasAt(bias: usize, n: i32): f32 {
  return bias ? load<f32>(bias + (<usize>n << 2)) : 0;
}

/**
 * The f32 core: rows [r0, r1) of `w` (row r at w + r*K*4) against all T tokens, writing out columns
 * colBase + r (bias indexed the same way).
 */
@inline export function f32Rows(x: usize, w: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, r0: i32, r1: i32, colBase: i32): void {
  const rowBytes = <usize>K << 2;
  const K4 = K & ~3;
  let r = r0;
  for (; r + 4 <= r1; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xa = x + <usize>t * rowBytes, xb = xa + rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = <usize>k << 2;
        const va = v128.load(xa + o), vb = v128.load(xb + o);
        let wv = v128.load(w0 + o); a0 = madd(wv, va, a0); b0 = madd(wv, vb, b0);
        wv = v128.load(w1 + o); a1 = madd(wv, va, a1); b1 = madd(wv, vb, b1);
        wv = v128.load(w2 + o); a2 = madd(wv, va, a2); b2 = madd(wv, vb, b2);
        wv = v128.load(w3 + o); a3 = madd(wv, va, a3); b3 = madd(wv, vb, b3);
      }
      let sa0 = hsum(a0), sa1 = hsum(a1), sa2 = hsum(a2), sa3 = hsum(a3);
      let sb0 = hsum(b0), sb1 = hsum(b1), sb2 = hsum(b2), sb3 = hsum(b3);
      for (let k = K4; k < K; k++) {
        const o = <usize>k << 2;
        const va = load<f32>(xa + o), vb = load<f32>(xb + o);
        let wv = load<f32>(w0 + o); sa0 += wv * va; sb0 += wv * vb;
        wv = load<f32>(w1 + o); sa1 += wv * va; sb1 += wv * vb;
        wv = load<f32>(w2 + o); sa2 += wv * va; sb2 += wv * vb;
        wv = load<f32>(w3 + o); sa3 += wv * va; sb3 += wv * vb;
      }
      const c = colBase + r;
      const oa = out + ((<usize>t * <usize>N + <usize>c) << 2), ob = oa + (<usize>N << 2);
      store<f32>(oa, sa0 + biasAt(bias, c)); store<f32>(oa, sa1 + biasAt(bias, c + 1), 4);
      store<f32>(oa, sa2 + biasAt(bias, c + 2), 8); store<f32>(oa, sa3 + biasAt(bias, c + 3), 12);
      store<f32>(ob, sb0 + biasAt(bias, c)); store<f32>(ob, sb1 + biasAt(bias, c + 1), 4);
      store<f32>(ob, sb2 + biasAt(bias, c + 2), 8); store<f32>(ob, sb3 + biasAt(bias, c + 3), 12);
    }
    for (; t < T; t++) {
      const xa = x + <usize>t * rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = <usize>k << 2;
        const va = v128.load(xa + o);
        a0 = madd(v128.load(w0 + o), va, a0);
        a1 = madd(v128.load(w1 + o), va, a1);
        a2 = madd(v128.load(w2 + o), va, a2);
        a3 = madd(v128.load(w3 + o), va, a3);
      }
      let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (let k = K4; k < K; k++) {
        const o = <usize>k << 2;
        const va = load<f32>(xa + o);
        s0 += load<f32>(w0 + o) * va; s1 += load<f32>(w1 + o) * va; s2 += load<f32>(w2 + o) * va; s3 += load<f32>(w3 + o) * va;
      }
      const c = colBase + r;
      const oa = out + ((<usize>t * <usize>N + <usize>c) << 2);
      store<f32>(oa, s0 + biasAt(bias, c)); store<f32>(oa, s1 + biasAt(bias, c + 1), 4);
      store<f32>(oa, s2 + biasAt(bias, c + 2), 8); store<f32>(oa, s3 + biasAt(bias, c + 3), 12);
    }
  }
  for (; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) {
      const xa = x + <usize>t * rowBytes;
      let a0 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) { const o = <usize>k << 2; a0 = madd(v128.load(w0 + o), v128.load(xa + o), a0); }
      let s0 = hsum(a0);
      for (let k = K4; k < K; k++) { const o = <usize>k << 2; s0 += load<f32>(w0 + o) * load<f32>(xa + o); }
      const c = colBase + r;
      store<f32>(out + ((<usize>t * <usize>N + <usize>c) << 2), s0 + biasAt(bias, c));
    }
  }
}

/** f32 weights: columns n0..n1 of out[T, N] = x[T, K] . W[N, K]^T (+ bias; bias = 0 for none). */
export function matmul_f32(n0: i32, n1: i32, scratch: usize, x: usize, w: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  if (T == 1) { f32Matvec8(x, w, bias, out, K, n0, n1); return; }
  f32Rows(x, w, bias, out, T, K, N, n0, n1, 0);
}

/**
 * Decode matvec: 8 rows at a time, one accumulator each. Eight independent add chains and eight
 * streams beat 4 rows x 2 chains by ~35% here (interleaved A/B); leftover rows go through f32Rows.
 */
@inline function f32Matvec8(x: usize, w: usize, bias: usize, out: usize, K: i32, n0: i32, n1: i32): void {
  const rb = <usize>K << 2;
  const K4 = K & ~3;
  let r = n0;
  for (; r + 8 <= n1; r += 8) {
    const w0 = w + <usize>r * rb;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
    for (let k = 0; k < K4; k += 4) {
      const o = <usize>k << 2;
      const xv = v128.load(x + o);
      const p = w0 + o;
      a0 = madd(v128.load(p), xv, a0);
      a1 = madd(v128.load(p + rb), xv, a1);
      a2 = madd(v128.load(p + 2 * rb), xv, a2);
      a3 = madd(v128.load(p + 3 * rb), xv, a3);
      a4 = madd(v128.load(p + 4 * rb), xv, a4);
      a5 = madd(v128.load(p + 5 * rb), xv, a5);
      a6 = madd(v128.load(p + 6 * rb), xv, a6);
      a7 = madd(v128.load(p + 7 * rb), xv, a7);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3), s4 = hsum(a4), s5 = hsum(a5), s6 = hsum(a6), s7 = hsum(a7);
    for (let k = K4; k < K; k++) {
      const o = <usize>k << 2;
      const xv = load<f32>(x + o);
      const p = w0 + o;
      s0 += load<f32>(p) * xv; s1 += load<f32>(p + rb) * xv; s2 += load<f32>(p + 2 * rb) * xv; s3 += load<f32>(p + 3 * rb) * xv;
      s4 += load<f32>(p + 4 * rb) * xv; s5 += load<f32>(p + 5 * rb) * xv; s6 += load<f32>(p + 6 * rb) * xv; s7 += load<f32>(p + 7 * rb) * xv;
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, s0 + biasAt(bias, r)); store<f32>(o, s1 + biasAt(bias, r + 1), 4);
    store<f32>(o, s2 + biasAt(bias, r + 2), 8); store<f32>(o, s3 + biasAt(bias, r + 3), 12);
    store<f32>(o, s4 + biasAt(bias, r + 4), 16); store<f32>(o, s5 + biasAt(bias, r + 5), 20);
    store<f32>(o, s6 + biasAt(bias, r + 6), 24); store<f32>(o, s7 + biasAt(bias, r + 7), 28);
  }
  if (r < n1) f32Rows(x, w, bias, out, 1, K, 0, r, n1, 0);
}

/** Widens rows [r0, r0+rows) of a 16-bit weight into f32 rows at dst. */
@inline function widenRows(w: usize, dst: usize, K: i32, r0: i32, rows: i32, bf16: bool): void {
  const n = <usize>rows * <usize>K;
  const src = w + ((<usize>r0 * <usize>K) << 1);
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (i << 1));
    const lo = i32x4.extend_low_i16x8_u(h), hi = i32x4.extend_high_i16x8_u(h);
    v128.store(dst + (i << 2), bf16 ? bf16x4ToF32(lo) : f16x4ToF32(lo));
    v128.store(dst + (i << 2), bf16 ? bf16x4ToF32(hi) : f16x4ToF32(hi), 16);
  }
  for (; i < n; i++) {
    const h = <u32>load<u16>(src + (i << 1));
    store<f32>(dst + (i << 2), bf16 ? reinterpret<f32>(h << 16) : f16ToF32(h));
  }
}

/** Matvec over 16-bit weights (T = 1), widening on the fly: 4 rows at a time, 8 values per step. */
@inline function halfMatvec(x: usize, w: usize, bias: usize, out: usize, K: i32, n0: i32, n1: i32, bf16: bool): void {
  const rowBytes = <usize>K << 1;
  const K8 = K & ~7;
  let r = n0;
  for (; r + 4 <= n1; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let k = 0; k < K8; k += 8) {
      const xl = v128.load(x + (<usize>k << 2)), xh = v128.load(x + (<usize>k << 2), 16);
      const o = <usize>k << 1;
      let h = v128.load(w0 + o);
      let lo = i32x4.extend_low_i16x8_u(h), hi = i32x4.extend_high_i16x8_u(h);
      a0 = madd(bf16 ? bf16x4ToF32(hi) : f16x4ToF32(hi), xh, madd(bf16 ? bf16x4ToF32(lo) : f16x4ToF32(lo), xl, a0));
      h = v128.load(w1 + o); lo = i32x4.extend_low_i16x8_u(h); hi = i32x4.extend_high_i16x8_u(h);
      a1 = madd(bf16 ? bf16x4ToF32(hi) : f16x4ToF32(hi), xh, madd(bf16 ? bf16x4ToF32(lo) : f16x4ToF32(lo), xl, a1));
      h = v128.load(w2 + o); lo = i32x4.extend_low_i16x8_u(h); hi = i32x4.extend_high_i16x8_u(h);
      a2 = madd(bf16 ? bf16x4ToF32(hi) : f16x4ToF32(hi), xh, madd(bf16 ? bf16x4ToF32(lo) : f16x4ToF32(lo), xl, a2));
      h = v128.load(w3 + o); lo = i32x4.extend_low_i16x8_u(h); hi = i32x4.extend_high_i16x8_u(h);
      a3 = madd(bf16 ? bf16x4ToF32(hi) : f16x4ToF32(hi), xh, madd(bf16 ? bf16x4ToF32(lo) : f16x4ToF32(lo), xl, a3));
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let k = K8; k < K; k++) {
      const xv = load<f32>(x + (<usize>k << 2));
      const o = <usize>k << 1;
      s0 += halfAt(w0 + o, bf16) * xv; s1 += halfAt(w1 + o, bf16) * xv; s2 += halfAt(w2 + o, bf16) * xv; s3 += halfAt(w3 + o, bf16) * xv;
    }
    const oa = out + (<usize>r << 2);
    store<f32>(oa, s0 + biasAt(bias, r)); store<f32>(oa, s1 + biasAt(bias, r + 1), 4);
    store<f32>(oa, s2 + biasAt(bias, r + 2), 8); store<f32>(oa, s3 + biasAt(bias, r + 3), 12);
  }
  for (; r < n1; r++) {
    const w0 = w + <usize>r * rowBytes;
    let s: f32 = 0;
    for (let k = 0; k < K; k++) s += halfAt(w0 + (<usize>k << 1), bf16) * load<f32>(x + (<usize>k << 2));
    store<f32>(out + (<usize>r << 2), s + biasAt(bias, r));
  }
}

@inline function halfAt(p: usize, bf16: bool): f32 {
  const h = <u32>load<u16>(p);
  return bf16 ? reinterpret<f32>(h << 16) : f16ToF32(h);
}

@inline function halfMatmul(n0: i32, n1: i32, scratch: usize, x: usize, w: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, bf16: bool): void {
  if (T == 1) { halfMatvec(x, w, bias, out, K, n0, n1, bf16); return; }
  for (let r = n0; r < n1; r += PANEL) {
    const rows = min(PANEL, n1 - r);
    widenRows(w, scratch, K, r, rows, bf16);
    f32Rows(x, scratch, bias, out, T, K, N, 0, rows, r);
  }
}

/** f16 weights; `scratch` must hold 16*K floats for this thread. */
export function matmul_f16(n0: i32, n1: i32, scratch: usize, x: usize, w: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  halfMatmul(n0, n1, scratch, x, w, bias, out, T, K, N, false);
}

/** bf16 weights; `scratch` must hold 16*K floats for this thread. */
export function matmul_bf16(n0: i32, n1: i32, scratch: usize, x: usize, w: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  halfMatmul(n0, n1, scratch, x, w, bias, out, T, K, N, true);
}

/**
 * Reorders x (K floats) for {@link matvec_bf16_paired}: each group of 8 becomes its even then its odd
 * elements; a tail of K % 8 stays in place.
 */
export function pair_lanes(x: usize, dst: usize, K: i32): void {
  const K8 = K & ~7;
  for (let k = 0; k < K8; k += 8) {
    const o = <usize>k << 2;
    const a = v128.load(x + o), b = v128.load(x + o, 16);
    v128.store(dst + o, i32x4.shuffle(a, b, 0, 2, 4, 6));
    v128.store(dst + o, i32x4.shuffle(a, b, 1, 3, 5, 7), 16);
  }
  for (let k = K8; k < K; k++) store<f32>(dst + (<usize>k << 2), load<f32>(x + (<usize>k << 2)));
}

/**
 * bf16 matvec (T = 1) against x reordered by {@link pair_lanes}. Eight bf16 weights loaded as four
 * u32 lanes are two f32x4 with one op each: `lane << 16` is the even weights, `lane & 0xffff0000` the
 * odd ones; no widening shuffles. 8 rows at a time, then 4, then single rows.
 */
export function matvec_bf16_paired(n0: i32, n1: i32, scratch: usize, xp: usize, w: usize, bias: usize, out: usize, K: i32): void {
  const rowBytes = <usize>K << 1;
  const K8 = K & ~7;
  const hiMask = i32x4.splat(0xffff0000);
  let r = n0;
  // Rows up to ROW_MATVEC_MAX_K: one row at a time, 32 weights (one 64-byte line) per step into four
  // chains, so each thread reads one sequential stream: 2x the 8-row loop below at K = 896 here (where
  // 2-row and 8-row tiles read only 8-9 GB/s per thread); longer rows are faster 8 at a time.
  const K32 = K & ~31;
  for (; r < n1 && K32 == K && K <= ROW_MATVEC_MAX_K; r++) {
    const w0 = w + <usize>r * rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let k = 0; k < K32; k += 32) {
      const x = xp + (<usize>k << 2);
      const p = w0 + (<usize>k << 1);
      let h = v128.load(p);
      a0 = madd(v128.and(h, hiMask), v128.load(x, 16), madd(i32x4.shl(h, 16), v128.load(x), a0));
      h = v128.load(p, 16);
      a1 = madd(v128.and(h, hiMask), v128.load(x, 48), madd(i32x4.shl(h, 16), v128.load(x, 32), a1));
      h = v128.load(p, 32);
      a2 = madd(v128.and(h, hiMask), v128.load(x, 80), madd(i32x4.shl(h, 16), v128.load(x, 64), a2));
      h = v128.load(p, 48);
      a3 = madd(v128.and(h, hiMask), v128.load(x, 112), madd(i32x4.shl(h, 16), v128.load(x, 96), a3));
    }
    store<f32>(out + (<usize>r << 2), hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) + biasAt(bias, r));
  }
  for (; r + 4 <= n1; r += 4) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let k = 0; k < K8; k += 8) {
      const xe = v128.load(xp + (<usize>k << 2)), xo = v128.load(xp + (<usize>k << 2), 16);
      const o = <usize>k << 1;
      let h = v128.load(w0 + o);
      a0 = madd(v128.and(h, hiMask), xo, madd(i32x4.shl(h, 16), xe, a0));
      h = v128.load(w1 + o);
      a1 = madd(v128.and(h, hiMask), xo, madd(i32x4.shl(h, 16), xe, a1));
      h = v128.load(w2 + o);
      a2 = madd(v128.and(h, hiMask), xo, madd(i32x4.shl(h, 16), xe, a2));
      h = v128.load(w3 + o);
      a3 = madd(v128.and(h, hiMask), xo, madd(i32x4.shl(h, 16), xe, a3));
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let k = K8; k < K; k++) {
      const xv = load<f32>(xp + (<usize>k << 2));
      const o = <usize>k << 1;
      s0 += halfAt(w0 + o, true) * xv; s1 += halfAt(w1 + o, true) * xv; s2 += halfAt(w2 + o, true) * xv; s3 += halfAt(w3 + o, true) * xv;
    }
    const oa = out + (<usize>r << 2);
    store<f32>(oa, s0 + biasAt(bias, r)); store<f32>(oa, s1 + biasAt(bias, r + 1), 4);
    store<f32>(oa, s2 + biasAt(bias, r + 2), 8); store<f32>(oa, s3 + biasAt(bias, r + 3), 12);
  }
  for (; r < n1; r++) {
    const w0 = w + <usize>r * rowBytes;
    let s: f32 = 0;
    // Whole groups of 8 pair weight 2i with xp's even slot i and 2i+1 with the odd slot 4+i.
    for (let k = 0; k < K8; k += 8) {
      for (let i = 0; i < 4; i++) {
        s += halfAt(w0 + (<usize>(k + 2 * i) << 1), true) * load<f32>(xp + (<usize>(k + i) << 2));
        s += halfAt(w0 + (<usize>(k + 2 * i + 1) << 1), true) * load<f32>(xp + (<usize>(k + 4 + i) << 2));
      }
    }
    for (let k = K8; k < K; k++) s += halfAt(w0 + (<usize>k << 1), true) * load<f32>(xp + (<usize>k << 2));
    store<f32>(out + (<usize>r << 2), s + biasAt(bias, r));
  }
}

/**
 * {@link matvec_bf16_paired} for two tokens at once: x paired by {@link pair_lanes} for token 0 at xp
 * and token 1 at xp + K floats; outputs at out and out + N floats. Decode reads each bf16 weight from
 * memory with time to spare (it is bandwidth-bound), so widening it once for two tokens makes a pass of
 * two tokens cost little more than one (a short prompt, a speculative check).
 */
export function matvec_bf16_paired2(n0: i32, n1: i32, scratch: usize, xp: usize, w: usize, bias: usize, out: usize, K: i32, N: i32): void {
  const rowBytes = <usize>K << 1;
  const K8 = K & ~7, K32 = K & ~31;
  const hiMask = i32x4.splat(0xffff0000);
  const xq = xp + (<usize>K << 2), out1 = out + (<usize>N << 2);
  let r = n0;
  // As matvec_bf16_paired: rows up to ROW_MATVEC_MAX_K one at a time, 32 weights per step, each chain
  // now for both tokens.
  for (; r < n1 && K32 == K && K <= ROW_MATVEC_MAX_K; r++) {
    const w0 = w + <usize>r * rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let k = 0; k < K32; k += 32) {
      const x = xp + (<usize>k << 2), y = xq + (<usize>k << 2), p = w0 + (<usize>k << 1);
      let h = v128.load(p);
      let lo = i32x4.shl(h, 16), hi = v128.and(h, hiMask);
      a0 = madd(hi, v128.load(x, 16), madd(lo, v128.load(x), a0));
      b0 = madd(hi, v128.load(y, 16), madd(lo, v128.load(y), b0));
      h = v128.load(p, 16);
      lo = i32x4.shl(h, 16); hi = v128.and(h, hiMask);
      a1 = madd(hi, v128.load(x, 48), madd(lo, v128.load(x, 32), a1));
      b1 = madd(hi, v128.load(y, 48), madd(lo, v128.load(y, 32), b1));
      h = v128.load(p, 32);
      lo = i32x4.shl(h, 16); hi = v128.and(h, hiMask);
      a2 = madd(hi, v128.load(x, 80), madd(lo, v128.load(x, 64), a2));
      b2 = madd(hi, v128.load(y, 80), madd(lo, v128.load(y, 64), b2));
      h = v128.load(p, 48);
      lo = i32x4.shl(h, 16); hi = v128.and(h, hiMask);
      a3 = madd(hi, v128.load(x, 112), madd(lo, v128.load(x, 96), a3));
      b3 = madd(hi, v128.load(y, 112), madd(lo, v128.load(y, 96), b3));
    }
    const bv = biasAt(bias, r);
    store<f32>(out + (<usize>r << 2), hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) + bv);
    store<f32>(out1 + (<usize>r << 2), hsum(f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3))) + bv);
  }
  // Longer rows: two rows at a time for both tokens (four accumulators; the eight-row loop of one token
  // would need sixteen).
  for (; r + 2 <= n1; r += 2) {
    const w0 = w + <usize>r * rowBytes, w1 = w0 + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
    for (let k = 0; k < K8; k += 8) {
      const o4 = <usize>k << 2;
      const xe = v128.load(xp + o4), xo = v128.load(xp + o4, 16), ye = v128.load(xq + o4), yo = v128.load(xq + o4, 16);
      const o = <usize>k << 1;
      let h = v128.load(w0 + o);
      let lo = i32x4.shl(h, 16), hi = v128.and(h, hiMask);
      a0 = madd(hi, xo, madd(lo, xe, a0));
      b0 = madd(hi, yo, madd(lo, ye, b0));
      h = v128.load(w1 + o);
      lo = i32x4.shl(h, 16); hi = v128.and(h, hiMask);
      a1 = madd(hi, xo, madd(lo, xe, a1));
      b1 = madd(hi, yo, madd(lo, ye, b1));
    }
    let s0 = hsum(a0), s1 = hsum(a1), t0 = hsum(b0), t1 = hsum(b1);
    for (let k = K8; k < K; k++) {
      const o = <usize>k << 1, o4 = <usize>k << 2;
      const v0 = halfAt(w0 + o, true), v1 = halfAt(w1 + o, true), xv = load<f32>(xp + o4), yv = load<f32>(xq + o4);
      s0 += v0 * xv; s1 += v1 * xv; t0 += v0 * yv; t1 += v1 * yv;
    }
    const ba = biasAt(bias, r), bb = biasAt(bias, r + 1);
    store<f32>(out + (<usize>r << 2), s0 + ba); store<f32>(out + (<usize>r << 2), s1 + bb, 4);
    store<f32>(out1 + (<usize>r << 2), t0 + ba); store<f32>(out1 + (<usize>r << 2), t1 + bb, 4);
  }
  for (; r < n1; r++) {
    const w0 = w + <usize>r * rowBytes;
    let s: f32 = 0, t: f32 = 0;
    // Whole groups of 8 pair weight 2i with the paired x's even slot i and 2i+1 with the odd slot 4+i.
    for (let k = 0; k < K8; k += 8) {
      for (let i = 0; i < 4; i++) {
        const even = halfAt(w0 + (<usize>(k + 2 * i) << 1), true), odd = halfAt(w0 + (<usize>(k + 2 * i + 1) << 1), true);
        const e4 = <usize>(k + i) << 2, d4 = <usize>(k + 4 + i) << 2;
        s += even * load<f32>(xp + e4) + odd * load<f32>(xp + d4);
        t += even * load<f32>(xq + e4) + odd * load<f32>(xq + d4);
      }
    }
    for (let k = K8; k < K; k++) {
      const v = halfAt(w0 + (<usize>k << 1), true), o4 = <usize>k << 2;
      s += v * load<f32>(xp + o4);
      t += v * load<f32>(xq + o4);
    }
    const bv = biasAt(bias, r);
    store<f32>(out + (<usize>r << 2), s + bv);
    store<f32>(out1 + (<usize>r << 2), t + bv);
  }
}
