// Decode matmuls (passes of up to 9 tokens for q8_0 and 15 for q4_0 / q4_k: quantGemmMinTokens in
// backend.ts) for q8_0 weights, and for q4_0 and q4_k weights in the relaxed build, against quantized activations
// (quantize_act.ts). Every block product is an exact integer dot product,
// converted and scaled once per group of four blocks by four weight scales (f16, widened by SIMD)
// times four activation scales.
//
// All T tokens against a set of weight rows (four q4_0 rows, two q8_0 rows) while its bytes sit in L1.
// Rows stored one after the other are several memory streams, which read slowly on this machine: the
// rows of a set are therefore stored interleaved group by group (quant_layout.ts), one stream per
// thread.
//
//   q8_0    i16 x int16 activations, i32x4.dot_i16x8_s (pmaddwd), both builds, against the interleaved
//           storage (quant_layout.ts): a weight vector's even and odd bytes widen with three shifts and
//           meet activation vectors in the same order, and block j's sum lands in lane j: 1.27-1.31x
//           the kernel that reduced four blocks' partial sums across lanes (A/B per matvec at
//           Qwen2-0.5B shapes). Two rows stored one after the other, sharing the activation loads,
//           ran at 0.6-0.75x; from the pair-interleaved storage, 1.12-1.35x. An
//           int8 relaxed-dot version (ggml's |w| x sign-moved-x trick) was only 1.08x faster than the
//           old kernel in an A/B here: not worth 256x the activation rounding.
//   q4_0    relaxed SIMD: nibbles (0..15) x int8 activations, i16x8.relaxed_dot_i8x16_i7x16_s
//           (pmaddubsw on x64), whose 7-bit operand must lie in [0, 127], which nibbles do. The weights
//           are stored interleaved (quant_layout.ts), so a group is four loads, eight dot products
//           summed in i16 (at most 8 * 2 * 127 * 15 = 30480: no overflow) and one widening, with block
//           j's sum in lane j. The interleaving made this kernel 1.1-1.5x faster at Qwen2-0.5B shapes
//           (A/B per matvec) than reducing four blocks' partial sums as the q8_0 kernel does; that
//           version was 1.3x the plain build's int16 kernel (matmul_q4.ts) in whole-model decode.
//           Measured steps since, each an A/B per matvec (one thread, Qwen2-0.5B and 7B shapes, weights
//           streamed from memory): two rows at a time from pair-interleaved storage, 1.11-1.25x one row
//           at a time (0.99x at K = 18944, where the activations, then in the GEMMs' token-pair layout,
//           outgrew L1); activations in dense rows (quantize_q8x4_dense), 1.04-1.2x; four rows at a time
//           from sets of four, 1.07-1.45x two.
//   q4_k    the q4_0 loops (q4Matmul with k = true): q4_k_layout.ts stores the nibbles as q4_0 groups
//           with each super-block's 6-bit scales and mins, d and dmin in front of its groups, so only
//           the scaling of a group's sums differs: pmaddwd against the scales (in lane pairs) sums
//           each block's pair and multiplies by its scale in one op, then d and the min term
//           dmin * m * sum(xq) with the activations' per-block sums (q4kGroupInto). Decode within a
//           few % of q4_0 at Qwen2 shapes (bench/matmul.mjs --formats=q4_0,q4_k --vs=q4_0).
import { dot16, f16ToF32, f16x4sToF32, hsum, isum, madd } from './common';
import { q4kGroupAt, q4kScalesAt, q4kSetAt, q4kSuperAt, q4kUnitAt } from './q4_k_layout';
import { fullSetsEnd, groupStride, groupsAt, setSize, setStart, tailAt } from './quant_layout';

/**
 * q8_0 x int16 in the lane order of quantize_q16_q4 (evens of 0-15, evens of 16-31, odds of 0-15, odds
 * of 16-31): 16 weights read as i16x8 hold value 2i in the low and 2i+1 in the high byte of lane i, so
 * two shifts give the even values and one the odd ones, sign-extended, with no widening shuffles
 * (which compete for one port with everything else that shuffles).
 */
@inline function q8i16(w: usize, x: usize): v128 {
  return i32x4.add(evenOdd(v128.load(w), x, x + 32), evenOdd(v128.load(w, 16), x + 16, x + 48));
}

/** The outputs of four consecutive rows for one token, at o: each accumulator's lanes summed. */
@inline function storeSums(o: usize, a0: v128, a1: v128, a2: v128, a3: v128): void {
  store<f32>(o, hsum(a0)); store<f32>(o, hsum(a1), 4); store<f32>(o, hsum(a2), 8); store<f32>(o, hsum(a3), 12);
}

/** Four f16 weight scales at p -> f32x4. */
@inline function scales4(p: usize): v128 {
  return f16x4sToF32(i32x4.extend_low_i16x8_s(v128.load64_zero(p)));
}

/** 16 int8 weights: even bytes (sign-extended to i16) against the int16 activations at xe, odd bytes against xo. */
@inline function evenOdd(w: v128, xe: usize, xo: usize): v128 {
  return evenOddDot(w, v128.load(xe), v128.load(xo));
}

/** evenOdd against activation vectors already loaded. */
@inline function evenOddDot(w: v128, xe: v128, xo: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(w, 8), 8), xe), i32x4.dot_i16x8_s(i16x8.shr_s(w, 8), xo));
}

/** One q8_0 group (eight weight vectors at g) against its int16 activations at x: block j's dot product in lane j. */
@inline function q8Group(g: usize, x: usize): v128 {
  let d = i32x4.splat(0);
  for (let v: usize = 0; v < 128; v += 16) d = i32x4.add(d, evenOdd(v128.load(g + v), x + (v << 1), x + (v << 1) + 16));
  return d;
}

/** A q8_0 group's dot products d scaled by the four weight scales at sw and four activation scales at sx, into acc. */
@inline function q8GroupInto(acc: v128, d: v128, sw: usize, sx: usize): v128 {
  return madd(f32x4.convert_i32x4_s(d), f32x4.mul(scales4(sw), v128.load(sx)), acc);
}

/**
 * q8_0 weights in their storage (interleaved groups, rows in sets of four: quant_layout.ts) against
 * int16 activations from quantize_q16q8 (xsum unused): a group's eight weight vectors leave block j's
 * dot product in lane j. Four rows at a time share the activation loads and read one stream; rows
 * outside a full set in [n0, n1) run alone.
 */
export function matmul_q8_0(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3, sb = nb << 1; // sb: one row's scale bytes
  let r = <usize>n0;
  // Rows before the first set boundary (a chunk that starts inside a set) alone.
  for (; r < <usize>n1 && setStart(32, r, <usize>N) != r; r++) q8Row(r, xq, xs, wq, ws, bias, out, T, K, N);
  const sets = min(<usize>n1, fullSetsEnd(32, <usize>N));
  for (; r + 4 <= sets; r += 4) {
    // Rows r..r+3, one set of four: each activation vector loaded once for the four rows.
    const set = wq + groupsAt(32, r, <usize>N, nb), sw = ws + r * sb;
    let t: usize = 0;
    for (; t + 2 <= <usize>T; t += 2) q8SetTwoTokens(set, sw, sb, r, xq, xs, out, t, K, N);
    for (; t < <usize>T; t++) {
      const xt = xq + ((t * nb) << 6), st = xs + ((t * nb) << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let b: usize = 0; b < nb4; b += 4) {
        // Group b of the four rows: 128 bytes each, one after another.
        const g = set + (b << 7), x = xt + (b << 6);
        let d0 = i32x4.splat(0), d1 = i32x4.splat(0), d2 = i32x4.splat(0), d3 = i32x4.splat(0);
        for (let v: usize = 0; v < 128; v += 16) {
          const xe = v128.load(x + (v << 1)), xo = v128.load(x + (v << 1), 16);
          d0 = i32x4.add(d0, evenOddDot(v128.load(g + v), xe, xo));
          d1 = i32x4.add(d1, evenOddDot(v128.load(g + v, 128), xe, xo));
          d2 = i32x4.add(d2, evenOddDot(v128.load(g + v, 256), xe, xo));
          d3 = i32x4.add(d3, evenOddDot(v128.load(g + v, 384), xe, xo));
        }
        const w = sw + (b << 1), sx = st + (b << 2);
        a0 = q8GroupInto(a0, d0, w, sx);
        a1 = q8GroupInto(a1, d1, w + sb, sx);
        a2 = q8GroupInto(a2, d2, w + 2 * sb, sx);
        a3 = q8GroupInto(a3, d3, w + 3 * sb, sx);
      }
      const o = out + ((t * <usize>N + r) << 2);
      storeSums(o, a0, a1, a2, a3);
    }
    if (nb4 < nb || bias) q8Tails(r, xq, xs, wq, ws, bias, out, T, K, N);
  }
  for (; r < <usize>n1; r++) q8Row(r, xq, xs, wq, ws, bias, out, T, K, N);
}

/**
 * Rows r..r+3 (one set of four) against tokens t and t + 1: each weight vector is widened to its even
 * and odd int16 halves once for both tokens, which a pass of several tokens would otherwise redo per token.
 */
@inline function q8SetTwoTokens(set: usize, sw: usize, sb: usize, r: usize, xq: usize, xs: usize, out: usize, t: usize, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const xt = xq + ((t * nb) << 6), xu = xt + (nb << 6), st = xs + ((t * nb) << 2), su = st + (nb << 2);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let b: usize = 0; b < nb4; b += 4) {
    const g = set + (b << 7), x = xt + (b << 6), y = xu + (b << 6);
    let d0 = i32x4.splat(0), d1 = i32x4.splat(0), d2 = i32x4.splat(0), d3 = i32x4.splat(0);
    let e0 = i32x4.splat(0), e1 = i32x4.splat(0), e2 = i32x4.splat(0), e3 = i32x4.splat(0);
    for (let v: usize = 0; v < 128; v += 16) {
      const xe = v128.load(x + (v << 1)), xo = v128.load(x + (v << 1), 16);
      const ye = v128.load(y + (v << 1)), yo = v128.load(y + (v << 1), 16);
      let w = v128.load(g + v);
      let even = i16x8.shr_s(i16x8.shl(w, 8), 8), odd = i16x8.shr_s(w, 8);
      d0 = i32x4.add(d0, i32x4.add(i32x4.dot_i16x8_s(even, xe), i32x4.dot_i16x8_s(odd, xo)));
      e0 = i32x4.add(e0, i32x4.add(i32x4.dot_i16x8_s(even, ye), i32x4.dot_i16x8_s(odd, yo)));
      w = v128.load(g + v, 128);
      even = i16x8.shr_s(i16x8.shl(w, 8), 8); odd = i16x8.shr_s(w, 8);
      d1 = i32x4.add(d1, i32x4.add(i32x4.dot_i16x8_s(even, xe), i32x4.dot_i16x8_s(odd, xo)));
      e1 = i32x4.add(e1, i32x4.add(i32x4.dot_i16x8_s(even, ye), i32x4.dot_i16x8_s(odd, yo)));
      w = v128.load(g + v, 256);
      even = i16x8.shr_s(i16x8.shl(w, 8), 8); odd = i16x8.shr_s(w, 8);
      d2 = i32x4.add(d2, i32x4.add(i32x4.dot_i16x8_s(even, xe), i32x4.dot_i16x8_s(odd, xo)));
      e2 = i32x4.add(e2, i32x4.add(i32x4.dot_i16x8_s(even, ye), i32x4.dot_i16x8_s(odd, yo)));
      w = v128.load(g + v, 384);
      even = i16x8.shr_s(i16x8.shl(w, 8), 8); odd = i16x8.shr_s(w, 8);
      d3 = i32x4.add(d3, i32x4.add(i32x4.dot_i16x8_s(even, xe), i32x4.dot_i16x8_s(odd, xo)));
      e3 = i32x4.add(e3, i32x4.add(i32x4.dot_i16x8_s(even, ye), i32x4.dot_i16x8_s(odd, yo)));
    }
    const w = sw + (b << 1), sx = st + (b << 2), sy = su + (b << 2);
    a0 = q8GroupInto(a0, d0, w, sx); b0 = q8GroupInto(b0, e0, w, sy);
    a1 = q8GroupInto(a1, d1, w + sb, sx); b1 = q8GroupInto(b1, e1, w + sb, sy);
    a2 = q8GroupInto(a2, d2, w + 2 * sb, sx); b2 = q8GroupInto(b2, e2, w + 2 * sb, sy);
    a3 = q8GroupInto(a3, d3, w + 3 * sb, sx); b3 = q8GroupInto(b3, e3, w + 3 * sb, sy);
  }
  const o = out + ((t * <usize>N + r) << 2), p = o + (<usize>N << 2);
  storeSums(o, a0, a1, a2, a3);
  storeSums(p, b0, b1, b2, b3);
}

/** Adds rows r..r+3's blocks outside full groups and their biases to their outputs, every token. */
function q8Tails(r: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5);
  for (let t: usize = 0; t < <usize>T; t++) {
    const xt = xq + ((t * nb) << 6), st = xs + ((t * nb) << 2);
    for (let i: usize = 0; i < 4; i++) {
      const o = out + ((t * <usize>N + r + i) << 2);
      store<f32>(o, load<f32>(o) + q8Tail(r + i, xt, st, wq, ws, bias, K, N));
    }
  }
}

/** Row r of matmul_q8_0 on its own (outside a full set of four, or a chunk boundary inside one). */
function q8Row(r: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const groups = wq + groupsAt(32, r, <usize>N, nb), gs = groupStride(32, r, <usize>N);
  const sw = ws + ((r * nb) << 1);
  for (let t: usize = 0; t < <usize>T; t++) {
    const xt = xq + ((t * nb) << 6), st = xs + ((t * nb) << 2);
    let a = f32x4.splat(0);
    for (let b: usize = 0; b < nb4; b += 4) a = q8GroupInto(a, q8Group(groups + (b >> 2) * gs, xt + (b << 6)), sw + (b << 1), st + (b << 2));
    store<f32>(out + ((t * <usize>N + r) << 2), hsum(a) + q8Tail(r, xt, st, wq, ws, bias, K, N));
  }
}

/** Row r's blocks outside full groups (32 bytes apart) against token xt (scales st, activations in the lane order), plus its bias. */
@inline function q8Tail(r: usize, xt: usize, st: usize, wq: usize, ws: usize, bias: usize, K: i32, N: i32): f32 {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const tail = wq + tailAt(32, r, <usize>N, nb), sw = ws + ((r * nb) << 1);
  let s: f32 = bias ? load<f32>(bias + (r << 2)) : 0;
  for (let b = nb4; b < nb; b++) {
    s += <f32>isum(q8i16(tail + ((b - nb4) << 5), xt + (b << 6))) * f16ToF32(<u32>load<u16>(sw + (b << 1))) * load<f32>(st + (b << 2));
  }
  return s;
}

/** One q4_0 group (64 bytes at g) against its activations at x: i16 sums, block j's in lanes 2j, 2j+1. */
@inline function q4Group(g: usize, x: usize, m: v128): v128 {
  // Group vector i: low nibbles against activation vector i, high nibbles against vector 4+i. A loop,
  // not four unrolled steps: V8 hoisted the unrolled steps' twelve loads and spilled (0.83-0.91x).
  let d = i16x8.splat(0);
  for (let i: usize = 0; i < 64; i += 16) d = i16x8.add(d, nibbleDot(v128.load(g + i), v128.load(x + i), v128.load(x + i, 64), m));
  return d;
}

/** 16 bytes of q4_0 nibbles: low nibbles against int8 activations xl, high nibbles against xh, as i16 pair sums. */
@inline function nibbleDot(raw: v128, xl: v128, xh: v128, m: v128): v128 {
  return i16x8.add(dot16(xl, v128.and(raw, m)), dot16(xh, v128.and(i16x8.shr_u(raw, 4), m)));
}

/**
 * A group's i16 sums d, centred with the activations' corrections at c, converted and scaled by the
 * four weight scales at sw and the four activation scales at sx, into acc.
 */
@inline function q4GroupInto(acc: v128, d: v128, c: usize, sw: usize, sx: usize): v128 {
  return madd(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extadd_pairwise_i16x8_s(d), v128.load(c))), f32x4.mul(scales4(sw), v128.load(sx)), acc);
}

/**
 * The four activation-side factors of a q4_k group's min term: -sx * sum(xq) per block (the corrections
 * at c hold 8 * sum(xq)). Shared by every row of a set.
 */
@inline function q4kMins(c: usize, sx: v128): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(v128.load(c)), f32x4.mul(sx, f32x4.splat(-0.125)));
}

/**
 * A q4_k group's i16 sums d into acc: sum_j sx_j * (d * sc_j * dot_j - dmin * m_j * sum_j), with the
 * group's scales and mins at sm (q4_k_layout.ts) and its super-block's d, dmin at dd. pmaddwd against
 * the scales duplicated into lane pairs adds the pair and multiplies by sc_j in one op, exactly (at
 * most 30480 * 2 * 63 < 2^22, so the conversion is exact too); bm holds -sx_j * sum_j (q4kMins).
 */
@inline function q4kGroupInto(acc: v128, d: v128, sm: usize, dd: usize, sx: v128, bm: v128): v128 {
  const scm = i16x8.extend_low_i8x16_u(v128.load64_zero(sm)); // scales in lanes 0-3, mins in 4-7
  const sc = i16x8.shuffle(scm, scm, 0, 0, 1, 1, 2, 2, 3, 3);
  const a = madd(f32x4.convert_i32x4_s(i32x4.dot_i16x8_s(d, sc)), f32x4.mul(sx, v128.load32_splat(dd)), acc);
  return madd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(scm)), f32x4.mul(bm, v128.load32_splat(dd, 4)), a);
}

/**
 * Group b's i16 sums d of row i of a set into acc: q4_0 (k false: f16 scales at w + (b << 1), w the
 * row's) or q4_k (k true: the unit u of a set of `size` rows, q4_k_layout.ts). k is a compile-time
 * constant at every call. c, sx: the token's corrections and activation scales at the group; bm:
 * q4kMins of the group (q4_k only).
 */
@inline function groupInto(k: bool, acc: v128, d: v128, w: usize, u: usize, size: usize, i: usize, b: usize, c: usize, sx: usize, bm: v128): v128 {
  if (k) return q4kGroupInto(acc, d, u + q4kScalesAt(i, b), u + q4kSuperAt(size, i), v128.load(sx), bm);
  return q4GroupInto(acc, d, c, w + (b << 1), sx);
}

/** Row 0's group of block b in a set of `size` rows (q4_0 or q4_k storage); row i's is i * 64 bytes further. */
@inline function groupAt(k: bool, set: usize, size: usize, b: usize): usize {
  // q4_0: (b / 4) groups of size * 64 bytes (b is a multiple of 4).
  return k ? set + q4kUnitAt(size, b) + q4kGroupAt(size, b) : set + b * (size << 4);
}

/** One q4_0 block outside a full group (16 bytes at w; activations in natural order at x), centred and scaled. */
@inline function q4TailBlock(w: usize, sw: usize, x: usize, sx: usize, c: usize, m: v128): f32 {
  const d = i32x4.extadd_pairwise_i16x8_s(nibbleDot(v128.load(w), v128.load(x), v128.load(x, 16), m));
  return <f32>(isum(d) - load<i32>(c)) * f16ToF32(<u32>load<u16>(sw)) * load<f32>(sx);
}

/**
 * q4_0 weights in the relaxed build's storage (interleaved groups, rows in sets of four:
 * quant_layout.ts) against int8 activations from quantize_q8x4_dense (token t at xq + t * K). Relaxed
 * SIMD only. Four rows at a time share the activation loads and read one stream; rows outside a full
 * set in [n0, n1) run alone.
 */
export function matmul_q4_0_i8(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  q4Matmul(false, n0, n1, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/**
 * q4_k weights (q4_k_layout.ts: q4_0's nibble groups with each super-block's scales, mins, d and dmin
 * in front of them, one stream; ws unused) against int8 activations from quantize_q8x4_dense:
 * matmul_q4_0_i8's loops, each group's dot products scaled by the 6-bit scales and the min term added
 * (q4kGroupInto). Relaxed SIMD only.
 */
export function matmul_q4_k_i8(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  q4Matmul(true, n0, n1, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** matmul_q4_0_i8 (k false) and matmul_q4_k_i8 (k true). */
@inline function q4Matmul(k: bool, n0: i32, n1: i32, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3, sb = nb << 1; // sb: one q4_0 row's scale bytes
  const m = i8x16.splat(0x0f);
  let r = <usize>n0;
  // Rows before the first set boundary (a chunk that starts inside a set) alone.
  for (; r < <usize>n1 && setStart(16, r, <usize>N) != r; r++) q4Row(k, r, m, xq, xs, xsum, wq, ws, bias, out, T, K, N);
  const sets = min(<usize>n1, fullSetsEnd(16, <usize>N));
  for (; r + 4 <= sets; r += 4) {
    // Rows r..r+3, one set of four: each activation vector loaded once for the four rows.
    const set = wq + (k ? q4kSetAt(r, <usize>N, nb) : groupsAt(16, r, <usize>N, nb)), sw = ws + r * sb;
    let t: usize = 0;
    for (; t + 2 <= <usize>T; t += 2) q4SetTwoTokens(k, set, sw, sb, r, m, xq, xs, xsum, out, t, K, N);
    for (; t < <usize>T; t++) {
      const xt = xq + t * <usize>K, st = xs + ((t * nb) << 2), ct = xsum + ((t * nb) << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let b: usize = 0; b < nb4; b += 4) {
        // Group b of the four rows: 64 bytes each, one after another.
        const g = groupAt(k, set, 4, b), x = xt + (b << 5), u = set + q4kUnitAt(4, b);
        let d0 = i16x8.splat(0), d1 = i16x8.splat(0), d2 = i16x8.splat(0), d3 = i16x8.splat(0);
        for (let i: usize = 0; i < 64; i += 16) {
          const xl = v128.load(x + i), xh = v128.load(x + i, 64);
          d0 = i16x8.add(d0, nibbleDot(v128.load(g + i), xl, xh, m));
          d1 = i16x8.add(d1, nibbleDot(v128.load(g + i, 64), xl, xh, m));
          d2 = i16x8.add(d2, nibbleDot(v128.load(g + i, 128), xl, xh, m));
          d3 = i16x8.add(d3, nibbleDot(v128.load(g + i, 192), xl, xh, m));
        }
        const c = ct + (b << 2), sx = st + (b << 2);
        const bm = k ? q4kMins(c, v128.load(sx)) : v128.splat<i32>(0);
        a0 = groupInto(k, a0, d0, sw, u, 4, 0, b, c, sx, bm);
        a1 = groupInto(k, a1, d1, sw + sb, u, 4, 1, b, c, sx, bm);
        a2 = groupInto(k, a2, d2, sw + 2 * sb, u, 4, 2, b, c, sx, bm);
        a3 = groupInto(k, a3, d3, sw + 3 * sb, u, 4, 3, b, c, sx, bm);
      }
      const o = out + ((t * <usize>N + r) << 2);
      storeSums(o, a0, a1, a2, a3);
    }
    if (nb4 < nb || bias) q4Tails(k, r, m, xq, xs, xsum, wq, ws, bias, out, T, K, N);
  }
  for (; r < <usize>n1; r++) q4Row(k, r, m, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/**
 * Rows r..r+3 (one set of four) against tokens t and t + 1: each weight vector's nibbles are unpacked
 * once for both tokens, which a pass of several tokens (a short prompt, a speculative check) would
 * otherwise redo per token.
 */
@inline function q4SetTwoTokens(k: bool, set: usize, sw: usize, sb: usize, r: usize, m: v128, xq: usize, xs: usize, xsum: usize, out: usize, t: usize, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const xt = xq + t * <usize>K, xu = xt + <usize>K;
  const st = xs + ((t * nb) << 2), su = st + (nb << 2), ct = xsum + ((t * nb) << 2), cu = ct + (nb << 2);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let b: usize = 0; b < nb4; b += 4) {
    const g = groupAt(k, set, 4, b), x = xt + (b << 5), y = xu + (b << 5), u = set + q4kUnitAt(4, b);
    let d0 = i16x8.splat(0), d1 = i16x8.splat(0), d2 = i16x8.splat(0), d3 = i16x8.splat(0);
    let e0 = i16x8.splat(0), e1 = i16x8.splat(0), e2 = i16x8.splat(0), e3 = i16x8.splat(0);
    for (let i: usize = 0; i < 64; i += 16) {
      const xl = v128.load(x + i), xh = v128.load(x + i, 64), yl = v128.load(y + i), yh = v128.load(y + i, 64);
      let raw = v128.load(g + i);
      let lo = v128.and(raw, m), hi = v128.and(i16x8.shr_u(raw, 4), m);
      d0 = i16x8.add(d0, i16x8.add(dot16(xl, lo), dot16(xh, hi)));
      e0 = i16x8.add(e0, i16x8.add(dot16(yl, lo), dot16(yh, hi)));
      raw = v128.load(g + i, 64);
      lo = v128.and(raw, m); hi = v128.and(i16x8.shr_u(raw, 4), m);
      d1 = i16x8.add(d1, i16x8.add(dot16(xl, lo), dot16(xh, hi)));
      e1 = i16x8.add(e1, i16x8.add(dot16(yl, lo), dot16(yh, hi)));
      raw = v128.load(g + i, 128);
      lo = v128.and(raw, m); hi = v128.and(i16x8.shr_u(raw, 4), m);
      d2 = i16x8.add(d2, i16x8.add(dot16(xl, lo), dot16(xh, hi)));
      e2 = i16x8.add(e2, i16x8.add(dot16(yl, lo), dot16(yh, hi)));
      raw = v128.load(g + i, 192);
      lo = v128.and(raw, m); hi = v128.and(i16x8.shr_u(raw, 4), m);
      d3 = i16x8.add(d3, i16x8.add(dot16(xl, lo), dot16(xh, hi)));
      e3 = i16x8.add(e3, i16x8.add(dot16(yl, lo), dot16(yh, hi)));
    }
    const cx = ct + (b << 2), sx = st + (b << 2), cy = cu + (b << 2), sy = su + (b << 2);
    const bx = k ? q4kMins(cx, v128.load(sx)) : v128.splat<i32>(0), by = k ? q4kMins(cy, v128.load(sy)) : v128.splat<i32>(0);
    a0 = groupInto(k, a0, d0, sw, u, 4, 0, b, cx, sx, bx); b0 = groupInto(k, b0, e0, sw, u, 4, 0, b, cy, sy, by);
    a1 = groupInto(k, a1, d1, sw + sb, u, 4, 1, b, cx, sx, bx); b1 = groupInto(k, b1, e1, sw + sb, u, 4, 1, b, cy, sy, by);
    a2 = groupInto(k, a2, d2, sw + 2 * sb, u, 4, 2, b, cx, sx, bx); b2 = groupInto(k, b2, e2, sw + 2 * sb, u, 4, 2, b, cy, sy, by);
    a3 = groupInto(k, a3, d3, sw + 3 * sb, u, 4, 3, b, cx, sx, bx); b3 = groupInto(k, b3, e3, sw + 3 * sb, u, 4, 3, b, cy, sy, by);
  }
  const o = out + ((t * <usize>N + r) << 2), p = o + (<usize>N << 2);
  storeSums(o, a0, a1, a2, a3);
  storeSums(p, b0, b1, b2, b3);
}

/** Adds rows r..r+3's blocks outside full groups and their biases to their outputs, every token. */
function q4Tails(k: bool, r: usize, m: v128, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5);
  for (let t: usize = 0; t < <usize>T; t++) {
    const xt = xq + t * <usize>K, st = xs + ((t * nb) << 2), ct = xsum + ((t * nb) << 2);
    for (let i: usize = 0; i < 4; i++) {
      const o = out + ((t * <usize>N + r + i) << 2);
      store<f32>(o, load<f32>(o) + q4Tail(k, r + i, m, xt, st, ct, wq, ws, bias, K, N));
    }
  }
}

/**
 * Row r's blocks outside full groups against token xt (scales st, corrections ct), plus its bias. q4_k
 * rows are whole super-blocks (K % 256 == 0): no block of theirs lies outside a full group, only the bias.
 */
@inline function q4Tail(k: bool, r: usize, m: v128, xt: usize, st: usize, ct: usize, wq: usize, ws: usize, bias: usize, K: i32, N: i32): f32 {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  let s: f32 = bias ? load<f32>(bias + (r << 2)) : 0;
  if (k) return s;
  const tail = wq + tailAt(16, r, <usize>N, nb), sw = ws + ((r * nb) << 1);
  for (let b = nb4; b < nb; b++) s += q4TailBlock(tail + ((b - nb4) << 4), sw + (b << 1), xt + (b << 5), st + (b << 2), ct + (b << 2), m);
  return s;
}

/**
 * Row r of q4Matmul on its own (outside a full set of four, or a chunk boundary inside one). k is a
 * run-time flag here: these rows are few, and one copy of the function serves both formats.
 */
function q4Row(k: bool, r: usize, m: v128, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  // The row's place in its set: its groups are i * 64 bytes into the set's.
  const size = setSize(16, r, <usize>N), i = r - setStart(16, r, <usize>N);
  const set = wq + (k ? q4kSetAt(r, <usize>N, nb) : groupsAt(16, r, <usize>N, nb) - (i << 6)), sw = ws + ((r * nb) << 1);
  for (let t: usize = 0; t < <usize>T; t++) {
    const xt = xq + t * <usize>K, st = xs + ((t * nb) << 2), ct = xsum + ((t * nb) << 2);
    let a = f32x4.splat(0);
    for (let b: usize = 0; b < nb4; b += 4) {
      const d = q4Group(groupAt(k, set, size, b) + (i << 6), xt + (b << 5), m);
      const c = ct + (b << 2), sx = st + (b << 2), u = set + q4kUnitAt(size, b);
      if (k) a = groupInto(true, a, d, sw, u, size, i, b, c, sx, q4kMins(c, v128.load(sx)));
      else a = groupInto(false, a, d, sw, u, size, i, b, c, sx, v128.splat<i32>(0));
    }
    store<f32>(out + ((t * <usize>N + r) << 2), hsum(a) + q4Tail(k, r, m, xt, st, ct, wq, ws, bias, K, N));
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
