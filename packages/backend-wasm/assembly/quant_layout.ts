// Storage of quantized weights as the kernels read them: at upload, each row's full groups of four
// blocks are interleaved word by word (same bytes; blocks after the last full group stay as stored).
//
// q4_0, relaxed build only (relayout_q4_0): vector i of a group holds word i of blocks 0-3 in its words
// 0-3. Its low nibbles are then values 4i..4i+3 and its high nibbles values 16+4i..16+4i+3 of each
// block, in the word of that block: exactly the GEMMs' operand layout (common.ts storeGemmVector). The
// decode kernel reads a group with four loads and no shuffles, and its int8 dot products leave block
// j's sum in lane j (no per-block reduction); the GEMM panel unpack is two masks per vector.
// Rows are also stored in pairs (2p, 2p+1) whose groups alternate: group k of row 2p, group k of row
// 2p+1 (64 bytes each), ..., then the pair's blocks outside full groups, row 2p's first; a last row
// without a partner keeps its groups together. The decode kernel takes two rows at a time sharing the
// activation loads, and so reads one sequential stream: with the rows one after another, two streams
// ran at 0.5-0.6x of one row at a time at most shapes (K = 1024, 1536, 2048, 3584, 4864), 1.1-1.2x at
// K = 896; interleaved, 1.15-1.29x at every shape (A/B per matvec, one thread, weights streamed from
// memory). The plain build keeps q4_0 as stored (its int16 kernels read the natural block layout).
import { transposed4 } from './common';

/** Whether this build stores q4_0 weights interleaved (a compile-time constant). */
export const Q4_INTERLEAVED: bool = ASC_FEATURE_RELAXED_SIMD;

/**
 * Interleaves the full groups of every row of a q4_0 weight (rows x K values at q) in place, then
 * every pair of rows, through `scratch` (2 * K / 2 bytes).
 */
export function relayout_q4_0(q: usize, rows: i32, K: i32, scratch: usize): void {
  relayoutGroups(q, rows, K, 16);
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const rowBytes = nb << 4, groups = nb4 << 4, tail = rowBytes - groups;
  for (let r: usize = 0; r + 1 < <usize>rows; r += 2) {
    const pair = q + r * rowBytes;
    copyBytes(scratch, pair, rowBytes << 1);
    for (let k: usize = 0; k < groups; k += 64) {
      copyBytes(pair + (k << 1), scratch + k, 64);
      copyBytes(pair + (k << 1) + 64, scratch + rowBytes + k, 64);
    }
    copyBytes(pair + (groups << 1), scratch + groups, tail);
    copyBytes(pair + (groups << 1) + tail, scratch + rowBytes + groups, tail);
  }
}

/** n bytes (a multiple of 16) from src to dst. */
@inline function copyBytes(dst: usize, src: usize, n: usize): void {
  for (let i: usize = 0; i < n; i += 16) v128.store(dst + i, v128.load(src + i));
}

/** Whether row r of a q4_0 weight of N rows is stored in a pair with its neighbour. */
@inline function q4Paired(r: usize, N: usize): bool {
  return Q4_INTERLEAVED && (r | 1) < N;
}

/** Offset from a q4_0 weight's base of row r's first group of four blocks (nb blocks per row). */
@inline export function q4GroupsAt(r: usize, N: usize, nb: usize): usize {
  return q4Paired(r, N) ? (((r & ~1) * nb) << 4) + ((r & 1) << 6) : (r * nb) << 4;
}

/** Bytes from one of row r's groups to its next. */
@inline export function q4GroupStride(r: usize, N: usize): usize {
  return q4Paired(r, N) ? 128 : 64;
}

/** Offset from a q4_0 weight's base of row r's first block outside full groups (the others follow, 16 bytes apart). */
@inline export function q4TailAt(r: usize, N: usize, nb: usize): usize {
  const nb4 = nb & ~3;
  if (!q4Paired(r, N)) return ((r * nb) << 4) + (nb4 << 4);
  return (((r & ~1) * nb) << 4) + (nb4 << 5) + ((r & 1) * ((nb - nb4) << 4));
}

/**
 * Every row's full groups of four blocks of `bb` bytes (16: q4_0, 32: q8_0), in place: the 4x4 word
 * transpose of the four blocks' first 16 bytes (and of their second 16 bytes for q8_0, stored after).
 */
@inline function relayoutGroups(q: usize, rows: i32, K: i32, bb: usize): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  for (let r: usize = 0; r < <usize>rows; r++) {
    const row = q + r * nb * bb;
    for (let b: usize = 0; b < nb4; b += 4) {
      const p = row + b * bb;
      // Everything is loaded before anything is stored: the group is rewritten in place.
      const a0 = v128.load(p), a1 = v128.load(p + bb), a2 = v128.load(p + 2 * bb), a3 = v128.load(p + 3 * bb);
      let b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      if (bb == 32) { b0 = v128.load(p, 16); b1 = v128.load(p + bb, 16); b2 = v128.load(p + 2 * bb, 16); b3 = v128.load(p + 3 * bb, 16); }
      v128.store(p, transposed4(a0, a1, a2, a3, 0)); v128.store(p, transposed4(a0, a1, a2, a3, 1), 16);
      v128.store(p, transposed4(a0, a1, a2, a3, 2), 32); v128.store(p, transposed4(a0, a1, a2, a3, 3), 48);
      if (bb == 32) {
        v128.store(p, transposed4(b0, b1, b2, b3, 0), 64); v128.store(p, transposed4(b0, b1, b2, b3, 1), 80);
        v128.store(p, transposed4(b0, b1, b2, b3, 2), 96); v128.store(p, transposed4(b0, b1, b2, b3, 3), 112);
      }
    }
  }
}

/**
 * Offset from a q4_0 weight's base of the byte holding values k (low nibble) and k+16 (high nibble) of
 * block b of row r, for k < 16, in this build's storage (N rows of nb blocks).
 */
@inline export function q4ByteOffset(r: usize, N: usize, nb: usize, b: usize, k: usize): usize {
  const nb4 = nb & ~3;
  if (b >= nb4) return q4TailAt(r, N, nb) + ((b - nb4) << 4) + k;
  if (!Q4_INTERLEAVED) return ((r * nb + b) << 4) + k;
  return q4GroupsAt(r, N, nb) + (b >> 2) * q4GroupStride(r, N) + ((k >> 2) << 4) + ((b & 3) << 2) + (k & 3);
}

/**
 * Block b (16 bytes, natural layout) of row r of a q4_0 weight at q (N rows of nb blocks) in this
 * build's storage. For kernels that read whole natural blocks; in the relaxed build only the slow paths
 * do (the plain build's kernels, which the relaxed build never runs, and blocks outside full groups).
 */
@inline export function q4Block(q: usize, r: usize, N: usize, nb: usize, b: usize): v128 {
  const nb4 = nb & ~3;
  if (b >= nb4) return v128.load(q + q4TailAt(r, N, nb) + ((b - nb4) << 4));
  if (!Q4_INTERLEAVED) return v128.load(q + ((r * nb + b) << 4));
  return blockOfGroup(q + q4GroupsAt(r, N, nb) + (b >> 2) * q4GroupStride(r, N), b & 3);
}

/**
 * The 16 natural bytes of block j out of the four interleaved group vectors at g. The transpose is its
 * own inverse: word i of block j is word j of group vector i.
 */
@inline function blockOfGroup(g: usize, j: usize): v128 {
  const v0 = v128.load(g), v1 = v128.load(g, 16), v2 = v128.load(g, 32), v3 = v128.load(g, 48);
  return j == 0 ? transposed4(v0, v1, v2, v3, 0) : j == 1 ? transposed4(v0, v1, v2, v3, 1) : j == 2 ? transposed4(v0, v1, v2, v3, 2) : transposed4(v0, v1, v2, v3, 3);
}

// ---- q8_0 ------------------------------------------------------------------------------------------
// q8_0 weights are stored interleaved in both builds: each row's full groups of four 32-byte blocks
// as eight vectors, vector 4a+i holding in word j word i of block j's half a (values 16a+4i..16a+4i+3).
// The decode kernel widens a vector's even and odd bytes to i16 (the int16 activations come in the
// matching order, quantize_q16q8), and pmaddwd leaves block j's sum in lane j: no per-block reduction.
// The GEMM unpack reads whole groups directly; block tails and embed go through q8Half / q8ByteOffset.

/** Interleaves the full groups of every row of a q8_0 weight (rows x K int8 at q) in place. */
export function relayout_q8_0(q: usize, rows: i32, K: i32): void {
  relayoutGroups(q, rows, K, 32);
}

/** Half a (values 16a..16a+15) of block b of the q8_0 row at `row`, natural order. */
@inline export function q8Half(row: usize, b: usize, a: usize, nb4: usize): v128 {
  if (b >= nb4) return v128.load(row + (b << 5) + (a << 4));
  return blockOfGroup(row + ((b & ~3) << 5) + (a << 6), b & 3);
}

/** Offset within a row of value k (0..31) of block b of a q8_0 weight in its stored order. */
@inline export function q8ByteOffset(b: usize, k: usize, nb4: usize): usize {
  if (b >= nb4) return (b << 5) + k;
  return ((b & ~3) << 5) + ((k >> 2) << 4) + ((b & 3) << 2) + (k & 3);
}
