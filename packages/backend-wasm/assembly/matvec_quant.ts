// Decode matmuls (T < 4 tokens) for q8_0 weights, and for q4_0 weights in the relaxed build, against
// quantized activations (quantize_act.ts). Every block product is an exact integer dot product,
// converted and scaled once per group of four blocks by four weight scales (f16, widened by SIMD)
// times four activation scales.
//
// One weight row at a time, all T tokens against it while its bytes sit in L1 (2-row tiles were
// slower for both formats here; one sequential stream per thread also reads faster on this machine).
//
//   q8_0    i16 x int16 activations, i32x4.dot_i16x8_s (pmaddwd), both builds, against the interleaved
//           storage (quant_layout.ts): a weight vector's even and odd bytes widen with three shifts and
//           meet activation vectors in the same order, and block j's sum lands in lane j: 1.27-1.31x
//           the kernel that reduced four blocks' partial sums across lanes (A/B per matvec at
//           Qwen2-0.5B shapes). Two rows at a time sharing the activation loads ran at 0.6-0.75x. An
//           int8 relaxed-dot version (ggml's |w| x sign-moved-x trick) was only 1.08x faster than the
//           old kernel in an A/B here: not worth 256x the activation rounding.
//   q4_0    relaxed SIMD: nibbles (0..15) x int8 activations, i16x8.relaxed_dot_i8x16_i7x16_s
//           (pmaddubsw on x64), whose 7-bit operand must lie in [0, 127], which nibbles do. The weights
//           are stored interleaved (quant_layout.ts) and the activations in the GEMMs' layout, so a group
//           is four loads, eight dot products summed in i16 (at most 8 * 2 * 127 * 15 = 30480: no
//           overflow) and one widening, with block j's sum in lane j. The interleaving made this
//           kernel 1.1-1.5x faster at Qwen2-0.5B shapes (A/B per matvec) than reducing four blocks'
//           partial sums as the q8_0 kernel does; that version was 1.3x the plain build's int16 kernel
//           (matmul_q4.ts) in whole-model decode.
import { dot16, f16ToF32, f16x4sToF32, gemmRow, hsum, isum, madd } from './common';

/**
 * q8_0 x int16 in the lane order of quantize_q16_q4 (evens of 0-15, evens of 16-31, odds of 0-15, odds
 * of 16-31): 16 weights read as i16x8 hold value 2i in the low and 2i+1 in the high byte of lane i, so
 * two shifts give the even values and one the odd ones, sign-extended, with no widening shuffles
 * (which compete for one port with everything else that shuffles).
 */
@inline function q8i16(w: usize, x: usize): v128 {
  return i32x4.add(evenOdd(v128.load(w), x, x + 32), evenOdd(v128.load(w, 16), x + 16, x + 48));
}

/** Four f16 weight scales at p -> f32x4. */
@inline function scales4(p: usize): v128 {
  return f16x4sToF32(i32x4.extend_low_i16x8_s(v128.load64_zero(p)));
}

/** 16 int8 weights: even bytes (sign-extended to i16) against the int16 activations at xe, odd bytes against xo. */
@inline function evenOdd(w: v128, xe: usize, xo: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(w, 8), 8), v128.load(xe)), i32x4.dot_i16x8_s(i16x8.shr_s(w, 8), v128.load(xo)));
}

/**
 * q8_0 weights in their interleaved storage (quant_layout.ts) against int16 activations from
 * quantize_q16q8 (xsum unused): a group's eight weight vectors leave block j's dot product in lane j.
 */
export function matmul_q8_0(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  for (let r = n0; r < n1; r++) {
    const w = wq + ((<usize>r * nb) << 5), sw = ws + ((<usize>r * nb) << 1);
    const rowBias: f32 = bias ? load<f32>(bias + (<usize>r << 2)) : 0;
    for (let t = 0; t < T; t++) {
      const xt = xq + ((<usize>t * nb) << 6), st = xs + ((<usize>t * nb) << 2);
      let a = f32x4.splat(0);
      for (let b: usize = 0; b < nb4; b += 4) {
        const g = w + (b << 5), x = xt + (b << 6);
        let d = i32x4.splat(0);
        for (let v: usize = 0; v < 128; v += 16) d = i32x4.add(d, evenOdd(v128.load(g + v), x + (v << 1), x + (v << 1) + 16));
        a = madd(f32x4.convert_i32x4_s(d), f32x4.mul(scales4(sw + (b << 1)), v128.load(st + (b << 2))), a);
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), hsum(a) + q8Tail(w, sw, xt, st, nb4, nb) + rowBias);
    }
  }
}

/** The blocks of one q8_0 row outside full groups (stored and quantized in the natural/lane order). */
@inline function q8Tail(w: usize, sw: usize, xt: usize, st: usize, nb4: usize, nb: usize): f32 {
  let s: f32 = 0;
  for (let b = nb4; b < nb; b++) {
    s += <f32>isum(q8i16(w + (b << 5), xt + (b << 6))) * f16ToF32(<u32>load<u16>(sw + (b << 1))) * load<f32>(st + (b << 2));
  }
  return s;
}

/**
 * q4_0 weights in the relaxed build's interleaved storage against int8 activations from quantize_q8x4
 * (token t at gemmRow(xq, t, K): vectors 32 bytes apart). Relaxed SIMD only.
 */
export function matmul_q4_0_i8(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const m = i8x16.splat(0x0f);
  for (let r = n0; r < n1; r++) {
    const w = wq + ((<usize>r * nb) << 4), sw = ws + ((<usize>r * nb) << 1);
    const rowBias: f32 = bias ? load<f32>(bias + (<usize>r << 2)) : 0;
    for (let t = 0; t < T; t++) {
      const xt = gemmRow(xq, <usize>t, <usize>K), st = xs + ((<usize>t * nb) << 2), ct = xsum + ((<usize>t * nb) << 2);
      let a = f32x4.splat(0);
      for (let b: usize = 0; b < nb4; b += 4) {
        // Group vector i: low nibbles against activation vector i, high nibbles against vector 4+i.
        const g = w + (b << 4), x = xt + (b << 6);
        // A loop, not four unrolled steps: V8 hoisted the unrolled steps' twelve loads and spilled
        // (1.09-1.13x on one thread, equal on two).
        let d = i16x8.splat(0);
        for (let i: usize = 0; i < 64; i += 16) {
          const raw = v128.load(g + i), xi = x + (i << 1);
          d = i16x8.add(d, i16x8.add(dot16(v128.load(xi), v128.and(raw, m)), dot16(v128.load(xi, 128), v128.and(i16x8.shr_u(raw, 4), m))));
        }
        const dot = i32x4.sub(i32x4.extadd_pairwise_i16x8_s(d), v128.load(ct + (b << 2)));
        a = madd(f32x4.convert_i32x4_s(dot), f32x4.mul(scales4(sw + (b << 1)), v128.load(st + (b << 2))), a);
      }
      let s = hsum(a);
      for (let b = nb4; b < nb; b++) {
        // Blocks outside a full group: stored and quantized in natural order (vectors 32 bytes apart).
        const raw = v128.load(w + (b << 4)), x = xt + (b << 6);
        const d = i32x4.extadd_pairwise_i16x8_s(i16x8.add(dot16(v128.load(x), v128.and(raw, m)), dot16(v128.load(x, 32), v128.and(i16x8.shr_u(raw, 4), m))));
        s += <f32>(isum(d) - load<i32>(ct + (b << 2))) * f16ToF32(<u32>load<u16>(sw + (b << 1))) * load<f32>(st + (b << 2));
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>r) << 2), s + rowBias);
    }
  }
}

/**
 * Self-test of the relaxed instructions the relaxed build relies on, with operands in their defined
 * ranges: 1 when relaxed_dot_i8x16_i7x16_s and relaxed_madd give the exact expected values (Node 20 has
 * a wrong relaxed_dot_i8x16_i7x16_add_s, which is why nothing here uses it), 0 otherwise.
 */
export function relaxed_selftest(): i32 {
  const a = i8x16(-128, 127, -1, 5, 100, -100, 0, 7, 3, -3, 64, -64, 127, 127, -128, -128);
  const b = i8x16(127, 127, 1, 0, 15, 15, 127, 0, 1, 1, 2, 3, 127, 126, 127, 1);
  const want = i16x8(-128 * 127 + 127 * 127, -1, 0, 0, 0, 64 * 2 - 64 * 3, 127 * 127 + 127 * 126, -128 * 127 - 128);
  const okDot = i16x8.all_true(i16x8.eq(dot16(a, b), want));
  const f = madd(f32x4(1.5, -2, 3, 0.25), f32x4(2, 2, -1, 4), f32x4(1, 1, 1, 1));
  const okMadd = i32x4.all_true(f32x4.eq(f, f32x4(4, -3, -2, 2)));
  return okDot && okMadd ? 1 : 0;
}
