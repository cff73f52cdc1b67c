// Storage of quantized weights as the kernels read them: at upload, each row's full groups of four
// blocks are interleaved word by word (same bytes; blocks after the last full group stay as stored).
//
// q4_0, relaxed build only (relayout_q4_0): vector i of a group holds word i of blocks 0-3 in its words
// 0-3. Its low nibbles are then values 4i..4i+3 and its high nibbles values 16+4i..16+4i+3 of each
// block, in the word of that block: exactly the integer kernels' operand layout (common.ts storeGroupedVector). The
// decode kernel reads a group with four loads and no shuffles, and its int8 dot products leave block
// j's sum in lane j (no per-block reduction); the GEMM panel unpack is two masks per vector.
// The plain build keeps q4_0 as stored (its int16 kernels read the natural block layout).
//
// Both formats (q4_0 in the relaxed build only) also store rows in sets of four (setRows) whose groups
// alternate: group k of each row of the set in turn, ..., then the set's blocks
// outside full groups, row by row; rows after the last full set form a pair and/or a row alone. The
// decode kernels take a set at a time, sharing the activation loads, and so read one sequential
// stream: with the rows one after another, two rows at once ran at 0.5-0.6x of one row at a time at
// most shapes (q4_0, K = 1024, 1536, 2048, 3584, 4864); interleaved, 1.15-1.29x at every shape, and
// sets of four rows another 1.0-1.4x (q4_0) and 0.97-1.3x (q8_0) (A/B per matvec, one thread, weights
// streamed from memory).
//
// q4_k (q4_k_layout.ts) stores its nibbles as these q4_0 groups, in the same sets of rows, with its
// scales and mins inside the stream (one unit per super-block of the set's rows).
import { transposed4 } from './common';

/** Whether this build stores q4_0 weights interleaved (a compile-time constant). */
export const Q4_INTERLEAVED: bool = ASC_FEATURE_RELAXED_SIMD;

/**
 * Interleaves the full groups of every row of a q4_0 weight (rows x K values at q) in place, then
 * every set of rows (setRows), through `scratch` (2K bytes: four rows).
 */
export function relayout_q4_0(q: usize, rows: i32, K: i32, scratch: usize): void {
  relayoutGroups(q, rows, K, 16);
  interleaveSets(q, rows, K, 16, scratch);
}

/**
 * Rows stored together, their groups alternating: 4 (1, i.e. as stored, for q4_0 (bb = 16) in the
 * plain build). Rows after the last full set form a pair and/or a last row alone (setStart, setSize).
 * The upload's relayout scratch is sized for it (SET_ROWS in src/backend.ts).
 */
@inline function setRows(bb: usize): usize {
  return bb == 16 && !Q4_INTERLEAVED ? 1 : 4;
}

/** End of the rows in full sets of setRows (of N rows). */
@inline export function fullSetsEnd(bb: usize, N: usize): usize {
  return N - N % setRows(bb);
}

/** First row of the set holding row r (N rows). */
@inline export function setStart(bb: usize, r: usize, N: usize): usize {
  const full = fullSetsEnd(bb, N);
  if (r < full) return r - r % setRows(bb);
  return N - full >= 2 && r < full + 2 ? full : r;
}

/** Rows in the set holding row r (N rows): setRows, or 2 or 1 after the last full set. */
@inline export function setSize(bb: usize, r: usize, N: usize): usize {
  const full = fullSetsEnd(bb, N);
  if (r < full) return setRows(bb);
  return N - full >= 2 && r < full + 2 ? 2 : 1;
}

/** Every set of rows of a weight whose blocks are `bb` bytes interleaved group by group (in place, through `scratch`: one set's rows). */
@inline function interleaveSets(q: usize, rows: i32, K: i32, bb: usize, scratch: usize): void {
  const nb = <usize>(K >> 5), nb4 = nb & ~3;
  const rowBytes = nb * bb, groups = nb4 * bb, tail = rowBytes - groups, group = bb << 2;
  for (let r: usize = 0; r < <usize>rows; ) {
    const size = setSize(bb, r, <usize>rows);
    const set = q + r * rowBytes;
    if (size > 1) {
      copyBytes(scratch, set, rowBytes * size);
      for (let i: usize = 0; i < size; i++) {
        const row = scratch + i * rowBytes;
        for (let k: usize = 0; k < groups; k += group) copyBytes(set + k * size + i * group, row + k, group);
        copyBytes(set + groups * size + i * tail, row + groups, tail);
      }
    }
    r += size;
  }
}

/** n bytes (a multiple of 16) from src to dst. */
@inline function copyBytes(dst: usize, src: usize, n: usize): void {
  for (let i: usize = 0; i < n; i += 16) v128.store(dst + i, v128.load(src + i));
}

/** Offset from a q4_0 (bb = 16) or q8_0 (bb = 32) weight's base of row r's first group of four blocks (N rows of nb blocks). */
@inline export function groupsAt(bb: usize, r: usize, N: usize, nb: usize): usize {
  const s = setStart(bb, r, N);
  return s * nb * bb + (r - s) * (bb << 2);
}

/** Bytes from one of row r's groups to its next. */
@inline export function groupStride(bb: usize, r: usize, N: usize): usize {
  return setSize(bb, r, N) * (bb << 2);
}

/** Offset from the weight's base of row r's first block outside full groups (the others follow, bb bytes apart). */
@inline export function tailAt(bb: usize, r: usize, N: usize, nb: usize): usize {
  const nb4 = nb & ~3, s = setStart(bb, r, N);
  return s * nb * bb + setSize(bb, r, N) * nb4 * bb + (r - s) * (nb - nb4) * bb;
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
  if (b >= nb4) return tailAt(16, r, N, nb) + ((b - nb4) << 4) + k;
  if (!Q4_INTERLEAVED) return ((r * nb + b) << 4) + k;
  return groupsAt(16, r, N, nb) + (b >> 2) * groupStride(16, r, N) + ((k >> 2) << 4) + ((b & 3) << 2) + (k & 3);
}

/**
 * Block b (16 bytes, natural layout) of row r of a q4_0 weight at q (N rows of nb blocks) in this
 * build's storage. For kernels that read whole natural blocks; in the relaxed build only the slow paths
 * do (the plain build's kernels, which the relaxed build never runs, and blocks outside full groups).
 */
@inline export function q4Block(q: usize, r: usize, N: usize, nb: usize, b: usize): v128 {
  const nb4 = nb & ~3;
  if (b >= nb4) return v128.load(q + tailAt(16, r, N, nb) + ((b - nb4) << 4));
  if (!Q4_INTERLEAVED) return v128.load(q + ((r * nb + b) << 4));
  return blockOfGroup(q + groupsAt(16, r, N, nb) + (b >> 2) * groupStride(16, r, N), b & 3);
}

/**
 * The 16 natural bytes of block j out of the four interleaved group vectors at g. The transpose is its
 * own inverse: word i of block j is word j of group vector i.
 */
@inline export function blockOfGroup(g: usize, j: usize): v128 {
  const v0 = v128.load(g), v1 = v128.load(g, 16), v2 = v128.load(g, 32), v3 = v128.load(g, 48);
  return j == 0 ? transposed4(v0, v1, v2, v3, 0) : j == 1 ? transposed4(v0, v1, v2, v3, 1) : j == 2 ? transposed4(v0, v1, v2, v3, 2) : transposed4(v0, v1, v2, v3, 3);
}

// ---- q8_0 ------------------------------------------------------------------------------------------
// q8_0 weights are stored interleaved in both builds: each row's full groups of four 32-byte blocks
// as eight vectors, vector 4a+i holding in word j word i of block j's half a (values 16a+4i..16a+4i+3).
// The decode kernel widens a vector's even and odd bytes to i16 (the int16 activations come in the
// matching order, quantize_q16q8), and pmaddwd leaves block j's sum in lane j: no per-block reduction.
// The GEMM unpack reads whole groups directly; block tails and embed go through q8Half / q8ByteOffset.

/**
 * Interleaves the full groups of every row of a q8_0 weight (rows x K int8 at q) in place, then every
 * set of rows (setRows), through `scratch` (4K bytes: four rows).
 */
export function relayout_q8_0(q: usize, rows: i32, K: i32, scratch: usize): void {
  relayoutGroups(q, rows, K, 32);
  interleaveSets(q, rows, K, 32, scratch);
}

/** Half a (values 16a..16a+15) of block b of row r of a q8_0 weight at q (N rows of nb blocks), natural order. */
@inline export function q8Half(q: usize, r: usize, N: usize, nb: usize, b: usize, a: usize): v128 {
  const nb4 = nb & ~3;
  if (b >= nb4) return v128.load(q + tailAt(32, r, N, nb) + ((b - nb4) << 5) + (a << 4));
  return blockOfGroup(q + groupsAt(32, r, N, nb) + (b >> 2) * groupStride(32, r, N) + (a << 6), b & 3);
}

/** Offset from a q8_0 weight's base of value k (0..31) of block b of row r, in its stored order. */
@inline export function q8ByteOffset(r: usize, N: usize, nb: usize, b: usize, k: usize): usize {
  const nb4 = nb & ~3;
  if (b >= nb4) return tailAt(32, r, N, nb) + ((b - nb4) << 5) + k;
  return groupsAt(32, r, N, nb) + (b >> 2) * groupStride(32, r, N) + ((k >> 2) << 4) + ((b & 3) << 2) + (k & 3);
}
