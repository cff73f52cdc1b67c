// Weight quantizers for model loading (Backend.quantizeBlocks): f32 blocks of 32 values to q8_0 / q4_0
// with the bits of core's quantizeQ8_0 / quantizeQ4_0, which follow ggml's reference formulas. Every
// f32 step of those (the division for the scale, 1/d, x * (1/d), x + 8.5) is one correctly rounded f32
// operation here too; q8_0's round-half-away-from-zero is done without the double-precision add core
// does (|x| + 0.5 in f32 could round up at 0.49999997): trunc(|x|) plus one where the exact fraction
// |x| - trunc(|x|) is at least a half. Parallel over blocks b0..b1 of `src` (f32, or bf16 when `bf16`
// is set: a bf16 checkpoint's bytes, widened here instead of through an f32 copy in JavaScript), writing
// the f16 scales at `scales` (u16 each) and the quants at `quants` (32 bytes a block for q8_0, 16 for
// q4_0).

/** f32 -> f16 bits, rounding to nearest even (core's f32ToF16, line for line). */
function f32ToF16(x: f32): u32 {
  const bits = reinterpret<u32>(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = <i32>((bits >>> 23) & 0xff);
  let mant = bits & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A subnormal f16: the mantissa with its implicit bit, shifted right by 14 - e, rounded to even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    const half = <u32>1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((<u32>1 << shift) - 1);
    if (rem > half || (rem == half && (r & 1) == 1)) r++;
    return sign | r;
  }
  let r = (<u32>e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1)) r++;
  return sign | r;
}

/** 1 / d, or 0 where d is 0 or NaN (core: `d ? fround(1 / d) : 0`). */
@inline function inverse(d: f32): f32 {
  return d != 0 && d == d ? <f32>1.0 / d : 0;
}

/** q8_0 of four values x * id: round half away from zero, as i32x4. */
@inline function q8Four(v: v128, id: v128): v128 {
  const x = f32x4.mul(v, id);
  const a = f32x4.abs(x);
  const t = f32x4.trunc(a);
  const up = f32x4.ge(f32x4.sub(a, t), f32x4.splat(0.5)); // all ones where the fraction is >= 1/2
  const r = i32x4.sub(i32x4.trunc_sat_f32x4_s(t), up); // NaN truncates to 0 (core stores NaN as 0)
  return v128.bitselect(i32x4.neg(r), r, f32x4.lt(x, f32x4.splat(0)));
}

/**
 * Block b's 32 values as f32: in place for f32 input, or widened from bf16 (the top halves of f32s)
 * into the thread's 128-byte scratch.
 */
@inline function blockF32(src: usize, b: i32, bf16: i32, scratch: usize): usize {
  if (!bf16) return src + (<usize>b << 7);
  const h = src + (<usize>b << 6);
  for (let k: usize = 0; k < 64; k += 16) {
    const v = v128.load(h + k);
    v128.store(scratch + (k << 1), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
    v128.store(scratch + (k << 1), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
  }
  return scratch;
}

export function quantize_q8_0_f32(b0: i32, b1: i32, scratch: usize, src: usize, scales: usize, quants: usize, bf16: i32): void {
  for (let b = b0; b < b1; b++) {
    const p = blockF32(src, b, bf16, scratch);
    // The largest |v|, NaN if any is NaN (Math.max's rule: f32x4.max propagates NaN).
    let m = f32x4.abs(v128.load(p));
    for (let k: usize = 16; k < 128; k += 16) m = f32x4.max(m, f32x4.abs(v128.load(p + k)));
    m = f32x4.max(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
    m = f32x4.max(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
    const d = f32x4.extract_lane(m, 0) / <f32>127;
    store<u16>(scales + (<usize>b << 1), <u16>f32ToF16(d));
    const id = f32x4.splat(inverse(d));
    const o = quants + (<usize>b << 5);
    for (let k: usize = 0; k < 128; k += 64) {
      const lo = i16x8.narrow_i32x4_s(q8Four(v128.load(p + k), id), q8Four(v128.load(p + k, 16), id));
      const hi = i16x8.narrow_i32x4_s(q8Four(v128.load(p + k, 32), id), q8Four(v128.load(p + k, 48), id));
      v128.store(o + (k >> 2), i8x16.narrow_i16x8_s(lo, hi));
    }
  }
}

/** q4_0 nibbles of four values: min(15, trunc(x * id + 8.5)) as i32x4 (NaN to 0). */
@inline function q4Four(v: v128, id: v128): v128 {
  return i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v, id), f32x4.splat(8.5))), i32x4.splat(15));
}

export function quantize_q4_0_f32(b0: i32, b1: i32, scratch: usize, src: usize, scales: usize, quants: usize, bf16: i32): void {
  for (let b = b0; b < b1; b++) {
    const p = blockF32(src, b, bf16, scratch);
    // The largest |v|, NaN skipped (core keeps the first v with |v| above all before it; pmax(a, b) is
    // `a < b ? b : a`, so a NaN never replaces the running maximum, which starts at 0).
    let m = f32x4.splat(0);
    for (let k: usize = 0; k < 128; k += 16) m = f32x4.pmax(m, f32x4.abs(v128.load(p + k)));
    m = f32x4.pmax(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
    m = f32x4.pmax(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
    const amax = f32x4.extract_lane(m, 0);
    // Its signed value: the first v whose |v| equals it (0 when every value is 0 or NaN).
    let max: f32 = 0;
    if (amax > 0) {
      const vm = f32x4.splat(amax);
      for (let k: usize = 0; k < 128; k += 16) {
        const v = v128.load(p + k);
        const hit = i32x4.bitmask(f32x4.eq(f32x4.abs(v), vm));
        if (hit) {
          max = load<f32>(p + k + (<usize>ctz(hit) << 2));
          break;
        }
      }
    }
    const d = max / <f32>-8;
    store<u16>(scales + (<usize>b << 1), <u16>f32ToF16(d));
    const id = f32x4.splat(inverse(d));
    // Byte j: value j in the low nibble, value j + 16 in the high one.
    const n0 = v128.or(q4Four(v128.load(p), id), i32x4.shl(q4Four(v128.load(p, 64), id), 4));
    const n1 = v128.or(q4Four(v128.load(p, 16), id), i32x4.shl(q4Four(v128.load(p, 80), id), 4));
    const n2 = v128.or(q4Four(v128.load(p, 32), id), i32x4.shl(q4Four(v128.load(p, 96), id), 4));
    const n3 = v128.or(q4Four(v128.load(p, 48), id), i32x4.shl(q4Four(v128.load(p, 112), id), 4));
    v128.store(quants + (<usize>b << 4), i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(n0, n1), i16x8.narrow_i32x4_s(n2, n3)));
  }
}
