// Writes of keys and values into an f16 KV cache: f32 rounded to the nearest half (ties to even), as
// core's roundToF16KV specifies, with finite values beyond the half range saturating at ±65504.

/**
 * dst[i] = the half nearest src[i] for i < n (f32 in, f16 bit patterns out); returns how many of the
 * values were infinite or NaN (kept as such), so that the backend knows to read the cache with the
 * kernel that widens exponent 31 back.
 */
export function store_halves(src: usize, dst: usize, n: i32): i32 {
  let nonFinite = 0;
  for (let i = 0; i < n; i++) {
    const b = load<u32>(src + (<usize>i << 2));
    const sign = (b >>> 16) & 0x8000;
    const a = b & 0x7fffffff;
    let h: u32;
    if (a >= 0x7f800000) {
      h = a > 0x7f800000 ? 0x7e00 : 0x7c00; // NaN (quiet), infinity
      nonFinite++;
    } else if (a >= 0x477ff000) {
      h = 0x7bff; // 65520 and more would round to infinity: saturate at 65504
    } else if (a < 0x38800000) {
      // Below the smallest normal half: adding 0.5 leaves x * 2^24 rounded to nearest even in the
      // mantissa's low bits (0.5's ulp is 2^-24, the smallest subnormal half).
      h = reinterpret<u32>(reinterpret<f32>(a) + <f32>0.5) - 0x3f000000;
    } else {
      // Rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even; a carry
      // moves into the exponent as it should.
      h = (a + 0xc8000fff + ((a >>> 13) & 1)) >>> 13;
    }
    store<u16>(dst + (<usize>i << 1), <u16>(sign | h));
  }
  return nonFinite;
}
