// Helpers shared by the kernel families. Everything is @inline: V8 does no cross-function inlining of
// wasm, so a call in an inner loop would cost more than the work.

/** Sum of the four lanes of an f32x4. */
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
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
