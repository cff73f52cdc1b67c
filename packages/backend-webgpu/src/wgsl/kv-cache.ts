import type { KVCacheDtype } from '@qwen2-ts/core';

/**
 * How the KV cache stores keys and values, for the kernels that write it (writeKV, RoPE + KV write, the
 * q/k/v matvec's epilogue) and attention, which reads it.
 *
 * Per layer, keys and values each lie `[kvHead][position][headDim]`. An f32 cache holds one f32 per
 * value. An f16 cache holds two halves per `u32` word, which needs no `shader-f16`: word `i` of a head's
 * row holds dimension `i` in its low 16 bits and dimension `i + headDim / 2` in its high 16 bits. Those
 * are RoPE's rotary pairs, which every fused writer already produces in one thread, so each thread writes
 * whole words and no two threads share one (writing neighbouring dimensions into one word would need
 * atomics). Attention only needs to pair each dimension of q and of its output with the same slot.
 * Rows are `headDim / 2` words: an f16 cache needs an even head size.
 */

/** The WGSL type of one layer's keys or values in a cache of `dtype`, as `array<...>` elements. */
export function kvElement(dtype: KVCacheDtype, vec: boolean): string {
  return dtype === 'f16' ? (vec ? 'vec4<u32>' : 'u32') : vec ? 'vec4<f32>' : 'f32';
}

/**
 * WGSL of `kvPack(lo, hi)`: the word of an f16 cache that holds `lo` and `hi`, each as core's
 * `roundToF16KV` stores it: the nearest half (ties to even), finite values beyond the half range
 * saturated to ±65504, ±Infinity and NaN kept. Integer operations on the f32 bits, because
 * `pack2x16float`'s rounding and its result beyond the half range are implementation-defined (SwiftShader
 * packs 70000 and Infinity as NaN). Only writes pay for it; reads widen with `unpack2x16float`, which is
 * exact (every half is an f32).
 */
export const KV_PACK_WGSL = `
fn kvHalf(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  // Infinity stays infinite, NaN stays NaN (quiet).
  if (a >= 0x7f800000u) { return sign | select(0x7c00u, 0x7e00u, a > 0x7f800000u); }
  // From 65504 up, finite values round to 65504 or to infinity, which saturates to 65504.
  if (a >= 0x477fe000u) { return sign | 0x7bffu; }
  // Normal halves (from 2^-14): rebias the exponent (127 -> 15) and round the 13 dropped bits to
  // nearest, ties to even; a carry out of the mantissa bumps the exponent, as it should.
  if (a >= 0x38800000u) { return sign | ((a - 0x38000000u + 0xfffu + ((a >> 13u) & 1u)) >> 13u); }
  // Subnormal halves m * 2^-24: the 24-bit significand shifted right by 126 - exponent (25 and more
  // give 0; f32 subnormals among them), rounded to nearest, ties to even.
  let shift = min(126u - (a >> 23u), 25u);
  let m = (a & 0x7fffffu) | 0x800000u;
  return sign | ((m + (1u << (shift - 1u)) - 1u + ((m >> shift) & 1u)) >> shift);
}
fn kvPack(lo: f32, hi: f32) -> u32 { return kvHalf(lo) | (kvHalf(hi) << 16u); }
`;

/**
 * WGSL of `kvHalves(w)`: the 8 halves of 4 words of an f16 cache row, widened: `lo` holds the low halves
 * (4 consecutive dimensions), `hi` the high ones (the same 4 dimensions plus `headDim / 2`).
 */
export const KV_HALVES_WGSL = `
struct KVHalves { lo: vec4<f32>, hi: vec4<f32> }
fn kvHalves(w: vec4<u32>) -> KVHalves {
  let a = unpack2x16float(w.x);
  let b = unpack2x16float(w.y);
  let c = unpack2x16float(w.z);
  let d = unpack2x16float(w.w);
  return KVHalves(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y));
}
`;
