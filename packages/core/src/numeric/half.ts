/**
 * IEEE half precision (f16) and bfloat16 (bf16) conversions, bit-exact and round-to-nearest-even.
 * Both widen to f32 exactly; narrowing rounds like PyTorch's `.to(torch.float16 / torch.bfloat16)`.
 * @module
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

let f16Table: Float32Array | undefined;
let bf16Table: Float32Array | undefined;

/** Widens an f16 bit pattern to its exact value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Widens a bf16 bit pattern (the top 16 bits of an f32) to its exact value. */
export function bf16ToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

/** All 65536 f16 values as f32, built once on first use (256 KiB): decoding by lookup is fastest. */
export function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** All 65536 bf16 values as f32, built once on first use. */
export function bf16Lookup(): Float32Array {
  if (!bf16Table) {
    const bits = new Uint32Array(65536);
    for (let i = 0; i < 65536; i++) bits[i] = i << 16;
    bf16Table = new Float32Array(bits.buffer);
  }
  return bf16Table;
}

/** Rounds a number to the nearest f16 (ties to even) and returns its bit pattern; overflow gives ±Inf. */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16: value = m * 2^-24, so m = (1.mant) * 2^(e - 14 + 24 - 24) shifted right by 14 - e.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 2 ** (shift - 1);
    let r = Math.floor(mant / 2 ** shift);
    const rem = mant - r * 2 ** shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

/**
 * A value as an f16 KV cache stores it (`KVCacheDtype` `'f16'`): rounded to the nearest f16 (ties
 * to even) and widened back, except that finite values beyond the f16 range saturate to ±65504.
 */
export function roundToF16KV(x: number): number {
  const h = f32ToF16(x);
  // Exponent 31 with a zero mantissa is infinity: saturate it unless the input itself was infinite.
  if ((h & 0x7fff) === 0x7c00 && Number.isFinite(x)) return h & 0x8000 ? -65504 : 65504;
  return f16ToF32(h);
}

/** Rounds a number to the nearest bf16 (ties to even) and returns its bit pattern. */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}
