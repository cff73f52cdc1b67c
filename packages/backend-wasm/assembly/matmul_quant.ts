// Prefill matmuls (T >= 4 tokens, QUANT_GEMM_MIN_T in src/backend.ts) for q8_0 and q4_0 weights on
// integer dot products; decode (T < 4) is matvec_quant.ts (matmul_q4.ts for q4_0 in the plain build).
//
// A 16-row panel of the weight is unpacked once into integers and f32 block scales; the activations
// were quantized once per call. Both use one operand layout (common.ts storeGroupedVector): rows in pairs
// interleaved vector by vector, so a tile steps one address per pair; and groups of four 32-value blocks
// interleaved word by word, so the multiply-add instructions, which sum neighbouring products into
// 32-bit lanes, leave block j's exact dot product in lane j: no per-block reduction, one conversion and
// one scaling per four blocks. Tiles of 2 rows x 4 tokens (eight integer accumulators).
//   I8   relaxed SIMD, q4_0: nibbles 0..15 x int8 activations (quantize_q8x4, ggml's rounding, as in
//        decode) by i16x8.relaxed_dot_i8x16_i7x16_s (pmaddubsw: 16 multiply-adds against 4 for an f32
//        FMA), summed in i16 (eight products of at most 2 * 127 * 15 per lane: 30480, no overflow),
//        centred exactly with the activations' 8 * sum per block.
//   I16  q8_0 (both builds) and q4_0 (plain SIMD128): weights widened to i16 (q4_0 centred to -8..7)
//        x int16 activations (quantize_q16x4, amax/32767, as in decode) by i32x4.dot_i16x8_s (pmaddwd:
//        8 multiply-adds), summed in i32.
//
// Against the f32 GEMM on dequantized panels (this file's previous method, exact f32 activations), at
// Qwen2-0.5B shapes and 64 tokens on one thread: I8 1.6x, I16 1.2x (relaxed build; 1.4x in the plain
// build, which has no fused multiply-add).
//
// q4_k (ggml's Q4_K, q4_k_layout.ts) stores its nibbles as q4_0's groups and so shares their unpack
// and the tiles; its panel gets two f32 arrays instead of one, d * sc and -dmin * m / 8 per block, and
// a group's dot products become sx * (d * sc * dot - dmin * m * sum) with the activations' 8 * sum
// per block (groupInto). That min term, one more multiply-add per group, row and token, puts q4_k's
// GEMM at 1.05-1.11x q4_0's time at Qwen2-7B and 0.5B shapes (bench/matmul.mjs, T = 64, 2 threads).
//
// Weight storage (quant_layout.ts): q8_0 and (relaxed build) q4_0 / q4_k groups of four blocks
// interleaved, rows in sets; f16 scales one per block apart (q4_0, q8_0) or each super-block's scales
// and mins in front of its groups (q4_k). q4_0 blocks are 16 bytes: byte j holds value j (low nibble)
// and j+16 (high nibble), minus 8 (q4_k: not centred).
import { dot16, f16ToF32, gemmRow, hsum, isum, madd, storeGroupedVector } from './common';
import { PANEL } from './matmul_float';
import { q4kBlock, q4kGroupAt, q4kScalesAt, q4kSetAt, q4kSuperAt, q4kUnitAt } from './q4_k_layout';
import { groupStride, groupsAt, q4Block, q8Half, Q4_INTERLEAVED, setSize, setStart } from './quant_layout';

@inline function scaleAt(ws: usize, blk: usize): f32 {
  return f16ToF32(<u32>load<u16>(ws + (blk << 1)));
}

const I8 = 0, I16 = 1;

/** Bytes of one unpacked block's values: 32 int8 or 32 int16. */
@inline function blockBytes(kind: i32): usize { return kind == I8 ? 32 : 64; }

/**
 * Unpacks rows [r0, r0+rows) of a q8_0/q4_0/q4_k weight into pq (the GEMM operand layout) and ps (f32
 * block scales, nb per row; q4_k: d * sc, then -dmin * m / 8 at pm, PANEL * nb floats further). I8
 * (q4_0, q4_k): uncentred nibbles. I16: values widened to i16, q4_0 centred (q4_k not).
 */
@inline function unpackPanel(kind: i32, q4: bool, k: bool, wq: usize, ws: usize, pq: usize, ps: usize, K: i32, N: i32, r0: i32, rows: i32): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const pm = ps + <usize>PANEL * (nb << 2);
  const vpb = blockBytes(kind) >> 4;
  const m = i8x16.splat(0x0f);
  for (let r: usize = 0; r < <usize>rows; r++) {
    const wr = <usize>r0 + r, first = wr * nb; // the weight row and its first block
    const row = gemmRow(pq, r, nb * blockBytes(kind));
    // q4_k: the row's set, its size and the row's place in it (q4_k_layout.ts).
    const kset = k ? wq + q4kSetAt(wr, <usize>N, nb) : 0, ksize = k ? setSize(16, wr, <usize>N) : 0, ki = k ? wr - setStart(16, wr, <usize>N) : 0;
    let b: usize = 0;
    if (kind == I16 && !q4) {
      // q8_0 is stored interleaved (quant_layout.ts): stored vector v holds values 4v..4v+3 of block j
      // in word j; widened, its pairs (4v, 4v+1) and (4v+2, 4v+3) are operand vectors 2v and 2v+1.
      const src = wq + groupsAt(32, wr, <usize>N, nb), gs = groupStride(32, wr, <usize>N);
      for (; b < nb4; b += 4) {
        const g = src + (b >> 2) * gs, o = row + (b << 7);
        for (let v: usize = 0; v < 8; v++) {
          const raw = v128.load(g + (v << 4));
          const lo = i16x8.extend_low_i8x16_s(raw), hi = i16x8.extend_high_i8x16_s(raw);
          v128.store(o + (v << 6), i32x4.shuffle(lo, hi, 0, 2, 4, 6));
          v128.store(o + (v << 6), i32x4.shuffle(lo, hi, 1, 3, 5, 7), 32);
        }
      }
    }
    if (kind == I8 && Q4_INTERLEAVED) {
      // Stored interleaved (quant_layout.ts, q4_k_layout.ts): group vector i's nibbles are operand
      // vectors i and 4+i.
      const src = wq + groupsAt(16, wr, <usize>N, nb), gs = groupStride(16, wr, <usize>N);
      for (; b < nb4; b += 4) {
        const g = k ? kset + q4kUnitAt(ksize, b) + q4kGroupAt(ksize, b) + (ki << 6) : src + (b >> 2) * gs, o = row + (b << 6);
        for (let i: usize = 0; i < 4; i++) {
          const raw = v128.load(g + (i << 4));
          v128.store(o + (i << 5), v128.and(raw, m));
          v128.store(o + (i << 5), v128.and(i16x8.shr_u(raw, 4), m), 128);
        }
      }
    }
    for (; b < nb; b++) {
      // The block's values 0-15 and 16-31 as i8x16.
      let lo: v128, hi: v128;
      if (q4) {
        const raw = k ? q4kBlock(wq, wr, <usize>N, nb, b) : q4Block(wq, wr, <usize>N, nb, b);
        lo = v128.and(raw, m); hi = v128.and(i16x8.shr_u(raw, 4), m);
        if (kind == I16 && !k) { lo = i8x16.sub(lo, i8x16.splat(8)); hi = i8x16.sub(hi, i8x16.splat(8)); }
      } else {
        lo = q8Half(wq, wr, <usize>N, nb, b, 0); hi = q8Half(wq, wr, <usize>N, nb, b, 1);
      }
      if (kind == I8) {
        storeGroupedVector(row, b, nb4, vpb, 0, lo, 32); storeGroupedVector(row, b, nb4, vpb, 1, hi, 32);
      } else {
        storeGroupedVector(row, b, nb4, vpb, 0, i16x8.extend_low_i8x16_s(lo), 32); storeGroupedVector(row, b, nb4, vpb, 1, i16x8.extend_high_i8x16_s(lo), 32);
        storeGroupedVector(row, b, nb4, vpb, 2, i16x8.extend_low_i8x16_s(hi), 32); storeGroupedVector(row, b, nb4, vpb, 3, i16x8.extend_high_i8x16_s(hi), 32);
      }
    }
    if (k) {
      // A group's four scales and four mins in one load (q4_k_layout.ts), times d and -dmin / 8 (the
      // min's factor takes the 1/8 of the activations' corrections, 8 * sum, and the sign): every
      // product exact in f32. Rows are whole super-blocks, so every block is in a group.
      for (b = 0; b < nb; b += 4) {
        const u = kset + q4kUnitAt(ksize, b), dd = u + q4kSuperAt(ksize, ki), o = (r * nb + b) << 2;
        const scm = i16x8.extend_low_i8x16_u(v128.load64_zero(u + q4kScalesAt(ki, b)));
        v128.store(ps + o, f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(scm)), v128.load32_splat(dd)));
        v128.store(pm + o, f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(scm)), f32x4.splat(load<f32>(dd, 4) * -0.125)));
      }
    } else {
      for (b = 0; b < nb; b++) store<f32>(ps + ((r * nb + b) << 2), scaleAt(ws, first + b));
    }
  }
}

/** Exact integer dot of one natural-order block (a tail block that fills no group; vectors 32 bytes apart) as four i32 partials. */
@inline function tailDot(kind: i32, w: usize, x: usize): v128 {
  if (kind == I8) return i32x4.extadd_pairwise_i16x8_s(i16x8.add(dot16(v128.load(x), v128.load(w)), dot16(v128.load(x, 32), v128.load(w, 32))));
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(x), v128.load(w)), i32x4.dot_i16x8_s(v128.load(x, 32), v128.load(w, 32))),
    i32x4.add(i32x4.dot_i16x8_s(v128.load(x, 64), v128.load(w, 64)), i32x4.dot_i16x8_s(v128.load(x, 96), v128.load(w, 96))));
}

/**
 * Sum over the tail blocks [b0, nb) of one row and token, centred (I8) and scaled. Never reached by
 * q4_k, whose rows are whole super-blocks (K % 256 == 0), so every block lies in a full group.
 */
@inline function tailBlocks(kind: i32, w: usize, sw: usize, x: usize, sx: usize, cx: usize, b0: usize, nb: usize): f32 {
  const stride = blockBytes(kind) << 1; // a block's vectors, interleaved with the pair's other row
  let s: f32 = 0;
  for (let b = b0; b < nb; b++) {
    const d = tailDot(kind, w + b * stride, x + b * stride);
    let v = isum(d);
    if (kind == I8) v -= load<i32>(cx + (b << 2));
    s += <f32>v * load<f32>(sw + (b << 2)) * load<f32>(sx + (b << 2));
  }
  return s;
}

/** Products of one vector pair, in the accumulator's type (i16x8 for I8, i32x4 for I16). */
@inline function product(kind: i32, x: v128, w: v128): v128 {
  return kind == I8 ? dot16(x, w) : i32x4.dot_i16x8_s(x, w);
}
@inline function accumulate(kind: i32, acc: v128, p: v128): v128 {
  return kind == I8 ? i16x8.add(acc, p) : i32x4.add(acc, p);
}

/**
 * A token's share of a group's scaling, loaded once for the rows of a tile: its corrections at c as
 * they are (I8 q4_0's centring), or for q4_k (k) converted and times the activation scales sx (the min
 * term's activation side, 8 * sum * sx); nothing for I16 q4_0 / q8_0.
 */
@inline function tokenCorrections(kind: i32, k: bool, c: usize, sx: v128): v128 {
  if (k) return f32x4.mul(f32x4.convert_i32x4_s(v128.load(c)), sx);
  return kind == I8 ? v128.load(c) : sx;
}

/**
 * A group's accumulator (lane j = block j) centred (I8 q4_0: corrections cv), converted and scaled
 * into acc by the weight scales sw and the activation scales sx; for q4_k (k) sx * sw * dot + mn * cv,
 * with sw = d * sc, mn = -dmin * m / 8 and cv = tokenCorrections = 8 * sum * sx.
 */
@inline function groupInto(kind: i32, k: bool, acc: v128, d: v128, cv: v128, sw: v128, mn: v128, sx: v128): v128 {
  if (k) {
    const dot = kind == I8 ? i32x4.extadd_pairwise_i16x8_s(d) : d;
    return madd(mn, cv, madd(f32x4.convert_i32x4_s(dot), f32x4.mul(sw, sx), acc));
  }
  const dot = kind == I8 ? i32x4.sub(i32x4.extadd_pairwise_i16x8_s(d), cv) : d;
  return madd(f32x4.convert_i32x4_s(dot), f32x4.mul(sw, sx), acc);
}

/**
 * A tile of one or two panel rows (w0: the first row's base in the operand layout, sw0: its scales) x
 * one or two tokens (x0, with scales s0 and corrections c0), stored to out (token t's row) at column
 * col (+1). The second row and token sit 16 bytes after the first. `two_rows` and `two_tokens` are
 * compile-time constants at every call. 2 x 2 keeps 4 integer and 4 f32 accumulators plus 4 loads in
 * V8's 16 vector registers.
 */
@inline function tile(kind: i32, k: bool, two_rows: bool, two_tokens: bool, w0: usize, sw0: usize, x0: usize, s0: usize, c0: usize, nb: usize, N: i32, out: usize, col: i32, bias: usize): void {
  const mo = <usize>PANEL * (nb << 2); // q4_k: from a row's d * sc to its -dmin * m / 8 in the panel
  const bb = blockBytes(kind);
  const w1 = w0 + 16, sw1 = sw0 + (nb << 2);
  const x1 = x0 + 16, s1 = s0 + (nb << 2), c1 = c0 + (nb << 2);
  const nb4 = nb & ~3, groupBytes = bb << 3; // four blocks, interleaved with the pair's other row
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  for (let b: usize = 0; b < nb4; b += 4) {
    let d00 = i32x4.splat(0), d01 = i32x4.splat(0), d10 = i32x4.splat(0), d11 = i32x4.splat(0);
    const pw = w0 + b * (bb << 1), px = x0 + b * (bb << 1);
    for (let v: usize = 0; v < groupBytes; v += 32) {
      const wa = v128.load(pw + v), xa = v128.load(px + v);
      d00 = accumulate(kind, d00, product(kind, xa, wa));
      if (two_tokens) d01 = accumulate(kind, d01, product(kind, v128.load(px + v, 16), wa));
      if (two_rows) {
        const wb = v128.load(pw + v, 16);
        d10 = accumulate(kind, d10, product(kind, xa, wb));
        if (two_tokens) d11 = accumulate(kind, d11, product(kind, v128.load(px + v, 16), wb));
      }
    }
    const sc = b << 2;
    const wsa = v128.load(sw0 + sc), mna = k ? v128.load(sw0 + mo + sc) : wsa;
    const sx0 = v128.load(s0 + sc), cv0 = tokenCorrections(kind, k, c0 + sc, sx0);
    const sx1 = two_tokens ? v128.load(s1 + sc) : sx0, cv1 = two_tokens ? tokenCorrections(kind, k, c1 + sc, sx1) : cv0;
    a00 = groupInto(kind, k, a00, d00, cv0, wsa, mna, sx0);
    if (two_tokens) a01 = groupInto(kind, k, a01, d01, cv1, wsa, mna, sx1);
    if (two_rows) {
      const wsb = v128.load(sw1 + sc), mnb = k ? v128.load(sw1 + mo + sc) : wsb;
      a10 = groupInto(kind, k, a10, d10, cv0, wsb, mnb, sx0);
      if (two_tokens) a11 = groupInto(kind, k, a11, d11, cv1, wsb, mnb, sx1);
    }
  }
  const o0 = out + (<usize>col << 2);
  const next = <usize>N << 2;
  const b0: f32 = bias ? load<f32>(bias + (<usize>col << 2)) : 0;
  store<f32>(o0, hsum(a00) + tailBlocks(kind, w0, sw0, x0, s0, c0, nb4, nb) + b0);
  if (two_tokens) store<f32>(o0 + next, hsum(a01) + tailBlocks(kind, w0, sw0, x1, s1, c1, nb4, nb) + b0);
  if (two_rows) {
    const b1: f32 = bias ? load<f32>(bias + (<usize>col << 2), 4) : 0;
    store<f32>(o0, hsum(a10) + tailBlocks(kind, w1, sw1, x0, s0, c0, nb4, nb) + b1, 4);
    if (two_tokens) store<f32>(o0 + next, hsum(a11) + tailBlocks(kind, w1, sw1, x1, s1, c1, nb4, nb) + b1, 4);
  }
}

/**
 * Two panel rows x four tokens (two pairs: x0 and x2 = x0 + xPair, scales and corrections rowScales
 * apart per token): the main tile. Eight integer accumulators, two weight vectors and one activation
 * vector stay in registers; the eight f32 accumulators, touched once per group, are V8's to spill.
 */
@inline function tile24(kind: i32, k: bool, w0: usize, sw0: usize, x0: usize, xPair: usize, s0: usize, c0: usize, nb: usize, N: i32, out: usize, col: i32, bias: usize): void {
  const bb = blockBytes(kind);
  const rs = nb << 2, mo = <usize>PANEL * rs; // mo: q4_k's -dmin * m / 8 after the panel's d * sc
  const nb4 = nb & ~3, groupBytes = bb << 3;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  for (let b: usize = 0; b < nb4; b += 4) {
    let d00 = i32x4.splat(0), d01 = i32x4.splat(0), d02 = i32x4.splat(0), d03 = i32x4.splat(0);
    let d10 = i32x4.splat(0), d11 = i32x4.splat(0), d12 = i32x4.splat(0), d13 = i32x4.splat(0);
    const pw = w0 + b * (bb << 1), px = x0 + b * (bb << 1), py = px + xPair;
    for (let v: usize = 0; v < groupBytes; v += 32) {
      const wa = v128.load(pw + v), wb = v128.load(pw + v, 16);
      let x = v128.load(px + v);
      d00 = accumulate(kind, d00, product(kind, x, wa)); d10 = accumulate(kind, d10, product(kind, x, wb));
      x = v128.load(px + v, 16);
      d01 = accumulate(kind, d01, product(kind, x, wa)); d11 = accumulate(kind, d11, product(kind, x, wb));
      x = v128.load(py + v);
      d02 = accumulate(kind, d02, product(kind, x, wa)); d12 = accumulate(kind, d12, product(kind, x, wb));
      x = v128.load(py + v, 16);
      d03 = accumulate(kind, d03, product(kind, x, wa)); d13 = accumulate(kind, d13, product(kind, x, wb));
    }
    const sc = b << 2;
    const wsa = v128.load(sw0 + sc), wsb = v128.load(sw0 + rs + sc);
    const mna = k ? v128.load(sw0 + mo + sc) : wsa, mnb = k ? v128.load(sw0 + mo + rs + sc) : wsb;
    let sx = v128.load(s0 + sc), cv = tokenCorrections(kind, k, c0 + sc, sx);
    a00 = groupInto(kind, k, a00, d00, cv, wsa, mna, sx); a10 = groupInto(kind, k, a10, d10, cv, wsb, mnb, sx);
    sx = v128.load(s0 + rs + sc); cv = tokenCorrections(kind, k, c0 + rs + sc, sx);
    a01 = groupInto(kind, k, a01, d01, cv, wsa, mna, sx); a11 = groupInto(kind, k, a11, d11, cv, wsb, mnb, sx);
    sx = v128.load(s0 + 2 * rs + sc); cv = tokenCorrections(kind, k, c0 + 2 * rs + sc, sx);
    a02 = groupInto(kind, k, a02, d02, cv, wsa, mna, sx); a12 = groupInto(kind, k, a12, d12, cv, wsb, mnb, sx);
    sx = v128.load(s0 + 3 * rs + sc); cv = tokenCorrections(kind, k, c0 + 3 * rs + sc, sx);
    a03 = groupInto(kind, k, a03, d03, cv, wsa, mna, sx); a13 = groupInto(kind, k, a13, d13, cv, wsb, mnb, sx);
  }
  const next = <usize>N << 2;
  const o0 = out + (<usize>col << 2), o1 = o0 + next, o2 = o1 + next, o3 = o2 + next;
  const w1 = w0 + 16, sw1 = sw0 + rs, x1 = x0 + 16, x2 = x0 + xPair, x3 = x2 + 16;
  const b0: f32 = bias ? load<f32>(bias + (<usize>col << 2)) : 0;
  const b1: f32 = bias ? load<f32>(bias + (<usize>col << 2), 4) : 0;
  store<f32>(o0, hsum(a00) + tailBlocks(kind, w0, sw0, x0, s0, c0, nb4, nb) + b0);
  store<f32>(o1, hsum(a01) + tailBlocks(kind, w0, sw0, x1, s0 + rs, c0 + rs, nb4, nb) + b0);
  store<f32>(o2, hsum(a02) + tailBlocks(kind, w0, sw0, x2, s0 + 2 * rs, c0 + 2 * rs, nb4, nb) + b0);
  store<f32>(o3, hsum(a03) + tailBlocks(kind, w0, sw0, x3, s0 + 3 * rs, c0 + 3 * rs, nb4, nb) + b0);
  store<f32>(o0, hsum(a10) + tailBlocks(kind, w1, sw1, x0, s0, c0, nb4, nb) + b1, 4);
  store<f32>(o1, hsum(a11) + tailBlocks(kind, w1, sw1, x1, s0 + rs, c0 + rs, nb4, nb) + b1, 4);
  store<f32>(o2, hsum(a12) + tailBlocks(kind, w1, sw1, x2, s0 + 2 * rs, c0 + 2 * rs, nb4, nb) + b1, 4);
  store<f32>(o3, hsum(a13) + tailBlocks(kind, w1, sw1, x3, s0 + 3 * rs, c0 + 3 * rs, nb4, nb) + b1, 4);
}

/**
 * Columns n0..n1 of out[T, N] (+ bias): panels of 16 rows unpacked into `scratch` (16 rows of K values
 * in the operand layout, then their f32 scales, and for q4_k their f32 mins), every pair of tokens run
 * past each pair of rows.
 */
@inline function integerGemm(kind: i32, q4: bool, k: bool, n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  const nb = <usize>(K >> 5);
  const rowBytes = nb * blockBytes(kind), rowScales = nb << 2;
  const pq = scratch, ps = scratch + <usize>PANEL * rowBytes;
  for (let p = n0; p < n1; p += PANEL) {
    const rows = min(PANEL, n1 - p);
    unpackPanel(kind, q4, k, wq, ws, pq, ps, K, N, p, rows);
    let t = 0;
    for (; t + 4 <= T; t += 4) {
      const x0 = gemmRow(xq, t, rowBytes), s0 = xs + <usize>t * rowScales, c0 = xsum + <usize>t * rowScales;
      const o = out + <usize>t * (<usize>N << 2);
      let r = 0;
      for (; r + 2 <= rows; r += 2) tile24(kind, k, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, rowBytes << 1, s0, c0, nb, N, o, p + r, bias);
      if (r < rows) {
        tile(kind, k, false, true, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, s0, c0, nb, N, o, p + r, bias);
        tile(kind, k, false, true, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0 + (rowBytes << 1), s0 + 2 * rowScales, c0 + 2 * rowScales, nb, N, o + 2 * (<usize>N << 2), p + r, bias);
      }
    }
    for (; t < T; t += 2) {
      const x0 = gemmRow(xq, t, rowBytes), s0 = xs + <usize>t * rowScales, c0 = xsum + <usize>t * rowScales;
      const o = out + <usize>t * (<usize>N << 2);
      let r = 0;
      if (t + 2 <= T) {
        for (; r + 2 <= rows; r += 2) tile(kind, k, true, true, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, s0, c0, nb, N, o, p + r, bias);
        if (r < rows) tile(kind, k, false, true, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, s0, c0, nb, N, o, p + r, bias);
      } else {
        for (; r + 2 <= rows; r += 2) tile(kind, k, true, false, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, s0, c0, nb, N, o, p + r, bias);
        if (r < rows) tile(kind, k, false, false, gemmRow(pq, r, rowBytes), ps + <usize>r * rowScales, x0, s0, c0, nb, N, o, p + r, bias);
      }
    }
  }
}

/** q4_0 weights against int8 activations from quantize_q8x4 (relaxed SIMD); scratch: 16*K + 2*K bytes. */
export function matmul_q4_0_i8_gemm(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  integerGemm(I8, true, false, n0, n1, scratch, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** q4_0 weights against int16 activations from quantize_q16x4 (xsum unused); scratch: 32*K + 2*K bytes. */
export function matmul_q4_0_i16_gemm(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  integerGemm(I16, true, false, n0, n1, scratch, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** q4_k weights (ws unused) against int8 activations from quantize_q8x4 (relaxed SIMD); scratch: 16*K + 4*K bytes. */
export function matmul_q4_k_i8_gemm(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  integerGemm(I8, true, true, n0, n1, scratch, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** q4_k weights (ws unused) against int16 activations from quantize_q16x4; scratch: 32*K + 4*K bytes. */
export function matmul_q4_k_i16_gemm(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  integerGemm(I16, true, true, n0, n1, scratch, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}

/** q8_0 weights against int16 activations from quantize_q16x4 (xsum unused); scratch: 32*K + 2*K bytes. */
export function matmul_q8_0_i16_gemm(n0: i32, n1: i32, scratch: usize, xq: usize, xs: usize, xsum: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  integerGemm(I16, false, false, n0, n1, scratch, xq, xs, xsum, wq, ws, bias, out, T, K, N);
}
