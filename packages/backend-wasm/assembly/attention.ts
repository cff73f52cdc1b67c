// Causal grouped-query attention over the KV cache. Cache layout per layer: keys then values, each
// [kvHeads][maxTokens][headDim], so one head's history is contiguous. The cache stores f32 or f16
// (KVCacheDtype); an f16 history is widened to f32 a block of KEY_BLOCK rows at a time into per-thread
// scratch, once for every head of the set, and the f32 loops below run on the block. (Widening as the
// loops load cost four operations per vector in each of the set's head pairs: decode at 2048 tokens
// took 1.13x the f32 time that way.)
//
// A work unit is one query row and a set of query heads that share one kv head (all of the group, or a
// part of it when decode needs more units than kv heads to keep every thread busy). Each key and value
// row is brought into cache once for the whole set: scores take two heads and four keys at a time
// (eight independent accumulators, summed across lanes by 4x4 transposes), and values are summed in
// blocks of KEY_BLOCK keys (16 KB at headDim 64), every head of the set over the block before the next
// block. Taking one head at a time over all keys, the previous kernel read each kv head's history once
// per query head (7 times at Qwen2-0.5B's 14/2 heads) from L3: 2048-token decode attention took 12 ms
// of a step on one thread.
//
// Per-thread scratch: the set's scores ([heads][n] floats, n rounded up to 4), then its output
// accumulators ([heads][headDim]), then one softmax scale per head, then (from a 16-byte boundary)
// KEY_BLOCK widened rows of an f16 cache.
import { expf, expv, hsum, madd, transposed4 } from './common';

/** Keys per block of the value sums and of widening an f16 cache (the backend sizes scratch for it). */
const KEY_BLOCK = 64;

export function attention_f32(u0: i32, u1: i32, scratch: usize, q: usize, kc: usize, vc: usize, out: usize, T: i32, startPos: i32,
  heads: i32, kvHeads: i32, headDim: i32, maxTokens: i32, scale: f32, window: i32, splits: i32): void {
  attention<f32>(u0, u1, scratch, q, kc, vc, out, T, startPos, heads, kvHeads, headDim, maxTokens, scale, window, splits);
}

/** attention_f32 over an f16 cache that holds finite values only. */
export function attention_f16(u0: i32, u1: i32, scratch: usize, q: usize, kc: usize, vc: usize, out: usize, T: i32, startPos: i32,
  heads: i32, kvHeads: i32, headDim: i32, maxTokens: i32, scale: f32, window: i32, splits: i32): void {
  attention<u16>(u0, u1, scratch, q, kc, vc, out, T, startPos, heads, kvHeads, headDim, maxTokens, scale, window, splits);
}

/** attention_f32 over an f16 cache that was once written an infinity or NaN (read back as such). */
export function attention_f16_nonfinite(u0: i32, u1: i32, scratch: usize, q: usize, kc: usize, vc: usize, out: usize, T: i32, startPos: i32,
  heads: i32, kvHeads: i32, headDim: i32, maxTokens: i32, scale: f32, window: i32, splits: i32): void {
  attention<i16>(u0, u1, scratch, q, kc, vc, out, T, startPos, heads, kvHeads, headDim, maxTokens, scale, window, splits);
}

/**
 * Storage S: f32; u16 = f16 whose values are all finite; i16 = f16 that may hold infinities or NaN.
 * Restoring exponent 31 costs widening four more operations per vector, so the backend picks i16 only
 * for a cache that was ever written a non-finite value (a broken model: f32 would give NaN as well).
 */
@inline function attention<S>(u0: i32, u1: i32, scratch: usize, q: usize, kc: usize, vc: usize, out: usize, T: i32, startPos: i32,
  heads: i32, kvHeads: i32, headDim: i32, maxTokens: i32, scale: f32, window: i32, splits: i32): void {
  const group = heads / kvHeads;
  const rowBytes = <usize>(heads * headDim) << 2;
  const hdBytes = <usize>headDim << 2;
  const scoreStride = <usize>((startPos + T + 3) & ~3) << 2;
  const most = <usize>((group + splits - 1) / splits);
  const acc = scratch + most * scoreStride;
  const invs = acc + most * hdBytes;
  const wide = (invs + most * 4 + 15) & ~15;
  const kvRowBytes = <usize>headDim * sizeof<S>();
  for (let u = u0; u < u1; u++) {
    // Units run over query rows fastest, so consecutive units read the same kv head's history.
    const t = u % T, set = u / T;
    const g = set / splits, s = set % splits;
    const hA = g * group + s * group / splits, nh = g * group + (s + 1) * group / splits - hA;
    const kh = kc + <usize>g * <usize>maxTokens * kvRowBytes;
    const vh = vc + <usize>g * <usize>maxTokens * kvRowBytes;
    const pos = startPos + t;
    const first = window > 0 ? max(0, pos - window + 1) : 0;
    const qp = q + <usize>t * rowBytes + <usize>hA * hdBytes;
    if (isFloat<S>()) scores(qp, kh, scratch, scoreStride, nh, first, pos, headDim, scale);
    else {
      for (let jb = first; jb <= pos; jb += KEY_BLOCK) {
        const je = min(pos + 1, jb + KEY_BLOCK);
        widen<S>(kh + <usize>jb * kvRowBytes, wide, (je - jb) * headDim);
        // Row j of the block sits at wide + (j - jb) rows: the loop indexes rows from jb.
        scores(qp, wide - <usize>jb * hdBytes, scratch, scoreStride, nh, jb, je - 1, headDim, scale);
      }
    }
    for (let h = 0; h < nh; h++) {
      store<f32>(invs + (<usize>h << 2), <f32>1.0 / softmaxWeights(scratch + <usize>h * scoreStride, first, pos));
    }
    weightedValues<S>(vh, scratch, scoreStride, acc, wide, nh, first, pos, headDim);
    const op = out + <usize>t * rowBytes + <usize>hA * hdBytes;
    for (let h = 0; h < nh; h++) scaleRow(acc + <usize>h * hdBytes, load<f32>(invs + (<usize>h << 2)), op + <usize>h * hdBytes, headDim);
  }
}

/** Row h of the scores (at scratch + h * stride), j in first..pos: q_h . k_j * scale, for the nh heads at qp. */
@inline function scores(qp: usize, kh: usize, scratch: usize, stride: usize, nh: i32, first: i32, pos: i32, headDim: i32, scale: f32): void {
  const hdBytes = <usize>headDim << 2, D4 = headDim & ~3, vs = f32x4.splat(scale);
  let j = first;
  for (; j + 4 <= pos + 1; j += 4) {
    const k0 = kh + <usize>j * hdBytes, k1 = k0 + hdBytes, k2 = k1 + hdBytes, k3 = k2 + hdBytes;
    const sp = scratch + (<usize>j << 2);
    let h = 0;
    for (; h + 2 <= nh; h += 2) {
      const qa = qp + <usize>h * hdBytes, qb = qa + hdBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let d = 0; d < D4; d += 4) {
        const o = <usize>d << 2, xa = v128.load(qa + o), xb = v128.load(qb + o);
        let k = v128.load(k0 + o);
        a0 = madd(xa, k, a0); b0 = madd(xb, k, b0);
        k = v128.load(k1 + o);
        a1 = madd(xa, k, a1); b1 = madd(xb, k, b1);
        k = v128.load(k2 + o);
        a2 = madd(xa, k, a2); b2 = madd(xb, k, b2);
        k = v128.load(k3 + o);
        a3 = madd(xa, k, a3); b3 = madd(xb, k, b3);
      }
      const pa = sp + <usize>h * stride;
      v128.store(pa, f32x4.mul(fourDots(a0, a1, a2, a3, qa, k0, k1, k2, k3, D4, headDim), vs));
      v128.store(pa + stride, f32x4.mul(fourDots(b0, b1, b2, b3, qb, k0, k1, k2, k3, D4, headDim), vs));
    }
    if (h < nh) {
      const qa = qp + <usize>h * hdBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let d = 0; d < D4; d += 4) {
        const o = <usize>d << 2, x = v128.load(qa + o);
        a0 = madd(x, v128.load(k0 + o), a0);
        a1 = madd(x, v128.load(k1 + o), a1);
        a2 = madd(x, v128.load(k2 + o), a2);
        a3 = madd(x, v128.load(k3 + o), a3);
      }
      v128.store(sp + <usize>h * stride, f32x4.mul(fourDots(a0, a1, a2, a3, qa, k0, k1, k2, k3, D4, headDim), vs));
    }
  }
  for (; j <= pos; j++) {
    const kp = kh + <usize>j * hdBytes;
    for (let h = 0; h < nh; h++) {
      const qa = qp + <usize>h * hdBytes;
      let acc = f32x4.splat(0);
      for (let d = 0; d < D4; d += 4) acc = madd(v128.load(qa + (<usize>d << 2)), v128.load(kp + (<usize>d << 2)), acc);
      store<f32>(scratch + <usize>h * stride + (<usize>j << 2), (hsum(acc) + tailDot(qa, kp, D4, headDim)) * scale);
    }
  }
}

/** Lane i: the dot product of q and key i, from the four keys' lane-wise accumulators plus the columns past D4. */
@inline function fourDots(a0: v128, a1: v128, a2: v128, a3: v128, qa: usize, k0: usize, k1: usize, k2: usize, k3: usize, D4: i32, headDim: i32): v128 {
  let s = f32x4.add(f32x4.add(transposed4(a0, a1, a2, a3, 0), transposed4(a0, a1, a2, a3, 1)),
    f32x4.add(transposed4(a0, a1, a2, a3, 2), transposed4(a0, a1, a2, a3, 3)));
  if (D4 < headDim) {
    s = f32x4.replace_lane(s, 0, f32x4.extract_lane(s, 0) + tailDot(qa, k0, D4, headDim));
    s = f32x4.replace_lane(s, 1, f32x4.extract_lane(s, 1) + tailDot(qa, k1, D4, headDim));
    s = f32x4.replace_lane(s, 2, f32x4.extract_lane(s, 2) + tailDot(qa, k2, D4, headDim));
    s = f32x4.replace_lane(s, 3, f32x4.extract_lane(s, 3) + tailDot(qa, k3, D4, headDim));
  }
  return s;
}

/** Sum of a[d] * b[d] for d in [d0, n) (the columns after the last full vector). */
@inline function tailDot(a: usize, b: usize, d0: i32, n: i32): f32 {
  let s: f32 = 0;
  for (let d = d0; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

/** row[j] = exp(row[j] - max) for j in first..pos; returns their sum. */
@inline function softmaxWeights(row: usize, first: i32, pos: i32): f32 {
  let vmax = f32x4.splat(-Infinity);
  let j = first;
  for (; j + 4 <= pos + 1; j += 4) vmax = f32x4.max(vmax, v128.load(row + (<usize>j << 2)));
  let m = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  for (; j <= pos; j++) m = max(m, load<f32>(row + (<usize>j << 2)));
  const vm = f32x4.splat(m);
  let vsum = f32x4.splat(0);
  j = first;
  for (; j + 4 <= pos + 1; j += 4) {
    const p = row + (<usize>j << 2);
    const e = expv(f32x4.sub(v128.load(p), vm));
    v128.store(p, e);
    vsum = f32x4.add(vsum, e);
  }
  let sum = hsum(vsum);
  for (; j <= pos; j++) {
    const p = row + (<usize>j << 2);
    const e = expf(load<f32>(p) - m);
    store<f32>(p, e);
    sum += e;
  }
  return sum;
}

/**
 * acc_h[d] += sum_j w_h[j] * v_j[d] for the nh heads, keys in blocks of KEY_BLOCK (every head over a
 * block before the next, so each value row comes from memory once, and an f16 block is widened once).
 */
@inline function weightedValues<S>(vh: usize, scratch: usize, stride: usize, acc: usize, wide: usize, nh: i32, first: i32, pos: i32, headDim: i32): void {
  const hdBytes = <usize>headDim << 2;
  memory.fill(acc, 0, <usize>nh * hdBytes);
  for (let jb = first; jb <= pos; jb += KEY_BLOCK) {
    const je = min(pos + 1, jb + KEY_BLOCK);
    let v0 = vh + <usize>jb * hdBytes;
    if (!isFloat<S>()) {
      widen<S>(vh + <usize>jb * <usize>headDim * sizeof<S>(), wide, (je - jb) * headDim);
      v0 = wide;
    }
    let h = 0;
    for (; h + 2 <= nh; h += 2) {
      const w = scratch + <usize>h * stride, a = acc + <usize>h * hdBytes;
      valuesPair(v0, w + (<usize>jb << 2), w + stride + (<usize>jb << 2), a, a + hdBytes, je - jb, headDim);
    }
    if (h < nh) {
      const w = scratch + <usize>h * stride;
      valuesOne(v0, w + (<usize>jb << 2), acc + <usize>h * hdBytes, je - jb, headDim);
    }
  }
}

/**
 * Two heads' weights (wa, wb) over n value rows from v0: 16 dims at a time, so that eight accumulators,
 * two broadcast weights and four value vectors fit the 15 vector registers V8 allocates. (Eight
 * accumulators of one head's 32 dims did not: V8 kept one of them in memory, a store-to-load chain
 * that ran the loop at a third of its speed.)
 */
@inline function valuesPair(v0: usize, wa: usize, wb: usize, aa: usize, ab: usize, n: i32, headDim: i32): void {
  const hdBytes = <usize>headDim << 2;
  let d = 0;
  for (; d + 16 <= headDim; d += 16) {
    const oa = aa + (<usize>d << 2), ob = ab + (<usize>d << 2);
    let a0 = v128.load(oa), a1 = v128.load(oa, 16), a2 = v128.load(oa, 32), a3 = v128.load(oa, 48);
    let b0 = v128.load(ob), b1 = v128.load(ob, 16), b2 = v128.load(ob, 32), b3 = v128.load(ob, 48);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) {
      const xa = v128.load32_splat(wa + (<usize>j << 2)), xb = v128.load32_splat(wb + (<usize>j << 2));
      let v = v128.load(vp);
      a0 = madd(xa, v, a0); b0 = madd(xb, v, b0);
      v = v128.load(vp, 16);
      a1 = madd(xa, v, a1); b1 = madd(xb, v, b1);
      v = v128.load(vp, 32);
      a2 = madd(xa, v, a2); b2 = madd(xb, v, b2);
      v = v128.load(vp, 48);
      a3 = madd(xa, v, a3); b3 = madd(xb, v, b3);
    }
    v128.store(oa, a0); v128.store(oa, a1, 16); v128.store(oa, a2, 32); v128.store(oa, a3, 48);
    v128.store(ob, b0); v128.store(ob, b1, 16); v128.store(ob, b2, 32); v128.store(ob, b3, 48);
  }
  for (; d + 4 <= headDim; d += 4) {
    const oa = aa + (<usize>d << 2), ob = ab + (<usize>d << 2);
    let a = v128.load(oa), b = v128.load(ob);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) {
      const v = v128.load(vp);
      a = madd(v128.load32_splat(wa + (<usize>j << 2)), v, a);
      b = madd(v128.load32_splat(wb + (<usize>j << 2)), v, b);
    }
    v128.store(oa, a); v128.store(ob, b);
  }
  for (; d < headDim; d++) {
    const oa = aa + (<usize>d << 2), ob = ab + (<usize>d << 2);
    let a = load<f32>(oa), b = load<f32>(ob);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) {
      const v = load<f32>(vp);
      a += load<f32>(wa + (<usize>j << 2)) * v;
      b += load<f32>(wb + (<usize>j << 2)) * v;
    }
    store<f32>(oa, a); store<f32>(ob, b);
  }
}

/** One head's weights w over n value rows from v0 (the last head of an odd set), 16 dims at a time. */
@inline function valuesOne(v0: usize, w: usize, aa: usize, n: i32, headDim: i32): void {
  const hdBytes = <usize>headDim << 2;
  let d = 0;
  for (; d + 16 <= headDim; d += 16) {
    const oa = aa + (<usize>d << 2);
    let a0 = v128.load(oa), a1 = v128.load(oa, 16), a2 = v128.load(oa, 32), a3 = v128.load(oa, 48);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) {
      const x = v128.load32_splat(w + (<usize>j << 2));
      a0 = madd(x, v128.load(vp), a0); a1 = madd(x, v128.load(vp, 16), a1);
      a2 = madd(x, v128.load(vp, 32), a2); a3 = madd(x, v128.load(vp, 48), a3);
    }
    v128.store(oa, a0); v128.store(oa, a1, 16); v128.store(oa, a2, 32); v128.store(oa, a3, 48);
  }
  for (; d + 4 <= headDim; d += 4) {
    const oa = aa + (<usize>d << 2);
    let a = v128.load(oa);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) a = madd(v128.load32_splat(w + (<usize>j << 2)), v128.load(vp), a);
    v128.store(oa, a);
  }
  for (; d < headDim; d++) {
    const oa = aa + (<usize>d << 2);
    let a = load<f32>(oa);
    let vp = v0 + (<usize>d << 2);
    for (let j = 0; j < n; j++, vp += hdBytes) a += load<f32>(w + (<usize>j << 2)) * load<f32>(vp);
    store<f32>(oa, a);
  }
}

/** op[d] = a[d] * inv. */
@inline function scaleRow(a: usize, inv: f32, op: usize, headDim: i32): void {
  const vinv = f32x4.splat(inv);
  let d = 0;
  for (; d + 4 <= headDim; d += 4) v128.store(op + (<usize>d << 2), f32x4.mul(v128.load(a + (<usize>d << 2)), vinv));
  for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(a + (<usize>d << 2)) * inv);
}

/**
 * Widens rows lo .. lo + rows - 1 of every kv head of one layer's f16 keys or values ([kvHeads][maxTokens]
 * [headDim] halves at src) into dst ([kvHeads][rows][headDim] floats). A unit is KEY_BLOCK rows of one
 * head; units 0 .. kvHeads * ceil(rows / KEY_BLOCK) - 1. Prefill passes widen a layer's history once this
 * way and run attention_f32 on it: widening inside the kernel would repeat it for every query row.
 */
export function widen_halves(u0: i32, u1: i32, scratch: usize, src: usize, dst: usize, lo: i32, rows: i32, maxTokens: i32, headDim: i32, nonFinite: i32): void {
  const blocks = (rows + KEY_BLOCK - 1) / KEY_BLOCK;
  for (let u = u0; u < u1; u++) {
    const g = u / blocks, r0 = (u % blocks) * KEY_BLOCK, n = min(KEY_BLOCK, rows - r0) * headDim;
    const from = src + ((<usize>g * <usize>maxTokens + <usize>(lo + r0)) * <usize>headDim << 1);
    const to = dst + ((<usize>g * <usize>rows + <usize>r0) * <usize>headDim << 2);
    if (nonFinite) widen<i16>(from, to, n);
    else widen<u16>(from, to, n);
  }
}

/**
 * dst[i] = the f16 value at src[i] widened to f32, for i < n (S = u16: finite halves; i16: any). Every
 * half is an f32, so this is exact.
 */
@inline function widen<S>(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    const p = dst + (<usize>i << 2);
    v128.store(p, halvesToF32<S>(i32x4.extend_low_i16x8_s(h)));
    v128.store(p, halvesToF32<S>(i32x4.extend_high_i16x8_s(h)), 16);
  }
  for (; i < n; i++) {
    const h = i32x4.splat(<i32>load<i16>(src + (<usize>i << 1)));
    store<f32>(dst + (<usize>i << 2), f32x4.extract_lane(halvesToF32<S>(h), 0));
  }
}

/** Four sign-extended f16 bit patterns (i32x4) as f32x4. */
@inline function halvesToF32<S>(h: v128): v128 {
  // Sign extension put copies of the sign in bits 31..15; shifted left by 13, the exponent and mantissa
  // sit where an f32's low exponent bits and mantissa go, and clearing bits 30..28 leaves a float
  // 2^-112 times the half (normal and subnormal alike), which one multiply rescales exactly.
  const f = f32x4.mul(v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffffff)), f32x4.splat(HALF_RESCALE));
  if (isSigned<S>()) {
    // Exponent 31 (infinity, NaN) came out as 2^16 times 1.mantissa: give it the f32 exponent 255.
    const top = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
    return v128.or(f, v128.and(top, i32x4.splat(0x7f800000)));
  }
  return f;
}

/** 2^112: f16's exponent bias 15 against f32's 127. */
const HALF_RESCALE: f32 = 5.192296858534828e33;
