// Helpers shared by the kernel families. Everything is @inline: V8 does no cross-function inlining of
// wasm, so a call in an inner loop would cost more than the work.

/** Sum of the four lanes of an f32x4. */
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Sum of the four lanes of an i32x4. */
@inline export function isum(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

/**
 * f16 bit pattern -> f32, exact for every finite value (normals and subnormals): move sign, exponent
 * and mantissa into f32 position, then rescale the exponent bias by multiplying with 2^112.
 * Inf/NaN become large finite values; weights never hold them.
 */
@inline export function f16ToF32(h: u32): f32 {
  const bits = ((h & 0x7fff) << 13) | ((h & 0x8000) << 16);
  return reinterpret<f32>(bits) * reinterpret<f32>(0x77800000); // 2^112
}

/** Four f16 patterns (low or high half of a u16x8 already widened to i32x4) -> f32x4. */
@inline export function f16x4ToF32(w: v128): v128 {
  const em = i32x4.shl(v128.and(w, i32x4.splat(0x7fff)), 13);
  const s = i32x4.shl(v128.and(w, i32x4.splat(0x8000)), 16);
  return f32x4.mul(v128.or(em, s), f32x4.splat(reinterpret<f32>(0x77800000)));
}

/**
 * Four f16 patterns sign-extended to i32x4 (i32x4.extend_*_i16x8_s) -> f32x4, exact for finite values
 * like f16ToF32, in three ops: the shift puts the sign in bit 31 (and copies of it in bits 28-30, which
 * the mask clears) and exponent and mantissa in f32 position.
 */
@inline export function f16x4sToF32(w: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(w, 13), i32x4.splat(0x8fffe000)), f32x4.splat(reinterpret<f32>(0x77800000)));
}

/**
 * Vector i of the 4x4 transpose of four vectors' 32-bit words: word j of the result is word i of vj
 * (`i` a compile-time constant).
 */
@inline export function transposed4(v0: v128, v1: v128, v2: v128, v3: v128, i: i32): v128 {
  const a = i < 2 ? i32x4.shuffle(v0, v1, 0, 4, 1, 5) : i32x4.shuffle(v0, v1, 2, 6, 3, 7);
  const b = i < 2 ? i32x4.shuffle(v2, v3, 0, 4, 1, 5) : i32x4.shuffle(v2, v3, 2, 6, 3, 7);
  return (i & 1) == 0 ? i64x2.shuffle(a, b, 0, 2) : i64x2.shuffle(a, b, 1, 3);
}

/** Four bf16 patterns widened to i32x4 -> f32x4. */
@inline export function bf16x4ToF32(w: v128): v128 {
  return i32x4.shl(w, 16);
}

/**
 * a * b + c. With relaxed SIMD (the relaxed build of this module) one fused multiply-add, which the
 * engine may round once or twice; otherwise a multiply and an add, rounded twice as before.
 */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Lane i: a[2i]*b[2i] + a[2i+1]*b[2i+1] as i16, for int8 a and b in [0, 127]. */
@inline export function dot16(a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(a, b);
  // Plain-SIMD equivalent (slower; keeps the plain build compiling and equal in results).
  const lo = i16x8.mul(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(b));
  const hi = i16x8.mul(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(b));
  return i16x8.add(i16x8.shuffle(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14), i16x8.shuffle(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15));
}

/**
 * Stores vector `a` (of `vpb` per 32-value block) of block `b` of one row in the grouped operand layout
 * of the integer kernels, whose vectors are `vs` bytes apart: 32 in the GEMMs' layout
 * (matmul_quant.ts), where rows come in pairs interleaved vector by vector (vector k of a row at
 * row + 32k, `row` being its pair's base + 16 for the second row, so one address serves both rows of a
 * tile); 16 in the dense rows of the q4_0 decode kernel. Full groups of four blocks are interleaved
 * word by word: word i of vector a of block j goes to word j of the group's vector 4a+i, so that lane
 * j of a multiply-add sums block j only. Blocks from `nb4` on (no full group) keep their natural order.
 */
@inline export function storeGroupedVector(row: usize, b: usize, nb4: usize, vpb: usize, a: usize, v: v128, vs: usize): void {
  if (b < nb4) {
    const o = row + (b & ~3) * vpb * vs + a * (vs << 2) + ((b & 3) << 2);
    v128.store32_lane(o, v, 0);
    v128.store32_lane(o + vs, v, 1);
    v128.store32_lane(o + 2 * vs, v, 2);
    v128.store32_lane(o + 3 * vs, v, 3);
  } else {
    v128.store(row + (b * vpb + a) * vs, v);
  }
}

/** Base of row r of the integer GEMMs' pair-interleaved layout (rowBytes: one row's values). */
@inline export function gemmRow(base: usize, r: usize, rowBytes: usize): usize {
  return base + (r >> 1) * (rowBytes << 1) + ((r & 1) << 4);
}

/**
 * e^x per lane (Cephes' expf: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n
 * built in the exponent bits), a few ulp from Mathf.exp over the clamped range [-87.3, 88.37]: below it
 * results stay at about 1e-38 instead of reaching 0 (harmless in a softmax or a sigmoid), above it at
 * about 2.4e38 instead of infinity. NaN stays NaN (wasm's min/max propagate it).
 */
@inline export function expv(x: v128): v128 {
  const c = f32x4.min(f32x4.max(x, f32x4.splat(-87.3)), f32x4.splat(88.37));
  const n = f32x4.nearest(f32x4.mul(c, f32x4.splat(1.44269504088896341)));
  // r = c - n * ln2, with ln2 split in two so that n * C1 is exact.
  const r = f32x4.sub(f32x4.sub(c, f32x4.mul(n, f32x4.splat(0.693359375))), f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  const e = f32x4.add(madd(p, f32x4.mul(r, r), r), f32x4.splat(1));
  const pow2n = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(e, pow2n);
}

/** expv for one value (the scalar tails of the vector loops, so that every element gets the same exp). */
@inline export function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}
