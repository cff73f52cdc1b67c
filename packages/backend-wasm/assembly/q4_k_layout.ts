// Storage of q4_k weights (ggml's Q4_K): at upload each 144-byte super-block (f16 d, f16 dmin, 12 bytes
// of packed 6-bit scales and mins, 128 bytes of nibbles for 256 values) becomes a 152-byte one that the
// q4_0 kernels' integer dot products read as they are:
//
//   scales  16 bytes: per group of four 32-value sub-blocks its four 6-bit scales, then its four 6-bit
//           mins (one 8-byte load gives a group's both)
//   supers  8 bytes: d and dmin as f32. d * sc and dmin * m are then exact f32 products (an f16 times a
//           6-bit integer: at most 17 significant bits), and a value is rebuilt exactly as ggml's
//           dequantize_row_q4_K does: fround(fround(d * sc) * q) - fround(dmin * m)
//   nibbles 128 bytes: each sub-block as one q4_0 block (byte k: value k in the low nibble, value k+16
//           in the high one), in the relaxed build each group of four interleaved word by word exactly
//           as relayout_q4_0 stores q4_0
//
// and, in the relaxed build, rows are stored in q4_0's sets (quant_layout.ts setStart / setSize: four
// rows, then a pair and/or a row alone) super-block by super-block: a set's unit u holds the scales of
// its rows' super-block u (16 bytes a row), their supers (8 bytes a row), their first groups (64 bytes a
// row) and their second groups. The plain build keeps rows as they come (sets of one row).
//
// Why one stream: with q4_0's nibble storage kept whole and each set's metadata (3 bytes a block and
// row) after the set's nibbles, the decode kernel streamed its weights at 0.4x q4_0's speed even with
// the metadata reads taken out (1 thread, 3584x3584 at T = 1, weights cycled through DRAM; 0.9x in
// cache): skipping each set's metadata cost the prefetcher its stream. Read in storage order, every
// byte once, the stream is as plain as q4_0's (decode at 0.95-1.04x q4_0, bench/matmul.mjs).
//
// A block's dot product with int8/int16 activations xq (scale sx) is sx * (d * sc * dot(q, xq) -
// dmin * m * sum(xq)), whose sum(xq) the activation quantizers already store for q4_0's centring (as 8 *
// the sum). 152 bytes per 256 values (4.75 bits a value) against 144 in a GGUF file and q4_0's 4.5.
//
// The repack runs in place over the weight's own storage: the host's blocks are put at its end
// (q4kHostOffset: 8 bytes per super-block in), so that super-block j's output, which ends at 152(j+1),
// never reaches input not yet read, which starts at 8S + 144(j+1) (S super-blocks in all, j < S). A
// loader can thus fill the final storage directly (weightBuffer) and no copy of the weight is made.
import { f16ToF32, transposed4 } from './common';
import { blockOfGroup, Q4_INTERLEAVED, setSize, setStart } from './quant_layout';

/** Bytes of one stored super-block of one row: scales 16, supers 8, nibbles 128. */
export const Q4K_SUPER_BYTES: usize = 152;

/** Bytes a row of nb 32-value blocks takes (nb / 8 super-blocks). */
@inline export function q4kRowBytes(nb: usize): usize {
  return (nb >> 3) * Q4K_SUPER_BYTES;
}

/** Offset from a q4_k weight's base (N rows of nb blocks) of the set holding row r. */
@inline export function q4kSetAt(r: usize, N: usize, nb: usize): usize {
  return setStart(16, r, N) * q4kRowBytes(nb);
}

/** Offset from a set's base (`size` rows) of the unit holding its rows' super-block of block b. */
@inline export function q4kUnitAt(size: usize, b: usize): usize {
  return (b >> 3) * size * Q4K_SUPER_BYTES;
}

/** Offset from a unit (`size` rows) of row 0's group of block b (row i's is i * 64 further). */
@inline export function q4kGroupAt(size: usize, b: usize): usize {
  return size * 24 + ((b >> 2) & 1) * (size << 6);
}

/** Offset from a unit of row i's scales for the group of block b (scale of block b at + (b & 3), its min 4 further). */
@inline export function q4kScalesAt(i: usize, b: usize): usize {
  return (i << 4) + ((b & 4) << 1);
}

/** Offset from a unit (`size` rows) of row i's d (f32; dmin 4 bytes further). */
@inline export function q4kSuperAt(size: usize, i: usize): usize {
  return (size << 4) + (i << 3);
}

/**
 * Where row r (of N, nb blocks each) keeps block b: its unit (offset from the weight's base) and the
 * row's place in the set (i) and the set's size, for the helpers above. Slow paths only (embed, lone
 * rows, the plain build, panel unpacking).
 */
@inline export function q4kUnit(r: usize, N: usize, nb: usize, b: usize): usize {
  return q4kSetAt(r, N, nb) + q4kUnitAt(setSize(16, r, N), b);
}

/** Block b (16 bytes, natural q4_0 layout) of row r of a q4_k weight at q (N rows of nb blocks). */
@inline export function q4kBlock(q: usize, r: usize, N: usize, nb: usize, b: usize): v128 {
  const size = setSize(16, r, N), i = r - setStart(16, r, N);
  const g = q + q4kUnit(r, N, nb, b) + q4kGroupAt(size, b) + (i << 6);
  if (!Q4_INTERLEAVED) return v128.load(g + ((b & 3) << 4));
  return blockOfGroup(g, b & 3);
}

/** Offset from a q4_k weight's base of the byte holding values k (low nibble) and k+16 (high) of block b of row r, k < 16. */
@inline export function q4kByteOffset(r: usize, N: usize, nb: usize, b: usize, k: usize): usize {
  const size = setSize(16, r, N), i = r - setStart(16, r, N);
  const g = q4kUnit(r, N, nb, b) + q4kGroupAt(size, b) + (i << 6);
  if (!Q4_INTERLEAVED) return g + ((b & 3) << 4) + k;
  return g + ((k >> 2) << 4) + ((b & 3) << 2) + (k & 3);
}

/** Bytes from a q4_k weight's storage base to where the host's super-blocks go before repack_q4_k. */
@inline export function q4kHostOffset(rows: usize, K: usize): usize {
  return (rows * (K >> 8)) << 3;
}

/**
 * Repacks a q4_k weight of `rows` x K values (K % 256 == 0) in place: ggml's super-blocks, at
 * q + q4kHostOffset, become this build's storage from q on (see the header), then (relaxed build) rows
 * are interleaved in sets through `scratch` (four rows: 19K/8 bytes each).
 */
export function repack_q4_k(q: usize, rows: i32, K: i32, scratch: usize): void {
  const S = <usize>rows * <usize>(K >> 8);
  const src = q + q4kHostOffset(<usize>rows, <usize>K);
  for (let j: usize = 0; j < S; j++) repackSuper(src + j * 144, q + j * Q4K_SUPER_BYTES);
  if (Q4_INTERLEAVED) interleaveSets(q, rows, K, scratch);
}

/**
 * One super-block: ggml's 144 bytes at h -> scales, supers and nibbles at o (o <= h - 8: the output
 * overlaps the input, so everything is loaded before anything is stored). The scales and mins come out
 * of ggml's get_scale_min_k4 packing on three words: sub-blocks 0-3 keep 6 bits of scales[0-7]; 4-7
 * take the low or high nibble of scales[8-11] and the top two bits of scales[0-7] above it.
 */
@inline function repackSuper(h: usize, o: usize): void {
  const dBits = <u32>load<u16>(h), mBits = <u32>load<u16>(h, 2);
  const u0 = load<u32>(h, 4), u1 = load<u32>(h, 8), u2 = load<u32>(h, 12);
  const p = h + 16;
  const a0 = v128.load(p), b0 = v128.load(p, 16), a1 = v128.load(p, 32), b1 = v128.load(p, 48);
  const a2 = v128.load(p, 64), b2 = v128.load(p, 80), a3 = v128.load(p, 96), b3 = v128.load(p, 112);
  // Sub-block pair c's bytes 32c..32c+31 hold sub-block 2c in their low nibbles, 2c+1 in their high ones.
  const k0 = lowBlock(a0, b0), k1 = highBlock(a0, b0), k2 = lowBlock(a1, b1), k3 = highBlock(a1, b1);
  const k4 = lowBlock(a2, b2), k5 = highBlock(a2, b2), k6 = lowBlock(a3, b3), k7 = highBlock(a3, b3);
  store<u32>(o, u0 & 0x3f3f3f3f);
  store<u32>(o, u1 & 0x3f3f3f3f, 4);
  store<u32>(o, (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4), 8);
  store<u32>(o, ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4), 12);
  // f16 -> f32 exactly (subnormals included); an infinite or NaN d would become a large finite value.
  store<f32>(o, f16ToF32(dBits), 16);
  store<f32>(o, f16ToF32(mBits), 20);
  const n = o + 24;
  if (Q4_INTERLEAVED) {
    v128.store(n, transposed4(k0, k1, k2, k3, 0)); v128.store(n, transposed4(k0, k1, k2, k3, 1), 16);
    v128.store(n, transposed4(k0, k1, k2, k3, 2), 32); v128.store(n, transposed4(k0, k1, k2, k3, 3), 48);
    v128.store(n, transposed4(k4, k5, k6, k7, 0), 64); v128.store(n, transposed4(k4, k5, k6, k7, 1), 80);
    v128.store(n, transposed4(k4, k5, k6, k7, 2), 96); v128.store(n, transposed4(k4, k5, k6, k7, 3), 112);
  } else {
    v128.store(n, k0); v128.store(n, k1, 16); v128.store(n, k2, 32); v128.store(n, k3, 48);
    v128.store(n, k4, 64); v128.store(n, k5, 80); v128.store(n, k6, 96); v128.store(n, k7, 112);
  }
}

/** The q4_0 block of the low nibbles of a (its values 0-15) and b (16-31). */
@inline function lowBlock(a: v128, b: v128): v128 {
  return v128.or(v128.and(a, i8x16.splat(0x0f)), v128.and(i16x8.shl(b, 4), i8x16.splat(<i8>0xf0)));
}

/** The q4_0 block of the high nibbles of a (its values 0-15) and b (16-31). */
@inline function highBlock(a: v128, b: v128): v128 {
  return v128.or(v128.and(i16x8.shr_u(a, 4), i8x16.splat(0x0f)), v128.and(b, i8x16.splat(<i8>0xf0)));
}

/**
 * Rows stored one after another (super-blocks of 152 bytes) -> sets of rows unit by unit (see the
 * header), in place through `scratch` (one set's rows).
 */
function interleaveSets(q: usize, rows: i32, K: i32, scratch: usize): void {
  const R = <usize>(K >> 8), rowBytes = R * Q4K_SUPER_BYTES;
  for (let r: usize = 0; r < <usize>rows; ) {
    const size = setSize(16, r, <usize>rows);
    const set = q + r * rowBytes;
    if (size > 1) {
      for (let i: usize = 0; i < rowBytes * size; i += 8) store<u64>(scratch + i, load<u64>(set + i));
      for (let u: usize = 0; u < R; u++) {
        const unit = set + u * size * Q4K_SUPER_BYTES;
        for (let i: usize = 0; i < size; i++) {
          const s = scratch + i * rowBytes + u * Q4K_SUPER_BYTES;
          v128.store(unit + (i << 4), v128.load(s));
          store<u64>(unit + (size << 4) + (i << 3), load<u64>(s, 16));
          const g0 = unit + size * 24 + (i << 6), g1 = g0 + (size << 6);
          v128.store(g0, v128.load(s, 24)); v128.store(g0, v128.load(s, 40), 16); v128.store(g0, v128.load(s, 56), 32); v128.store(g0, v128.load(s, 72), 48);
          v128.store(g1, v128.load(s, 88)); v128.store(g1, v128.load(s, 104), 16); v128.store(g1, v128.load(s, 120), 32); v128.store(g1, v128.load(s, 136), 48);
        }
      }
    }
    r += size;
  }
}
