import { MergeTable } from './merge-table.js';

/** Words with more symbols than this use the heap-based merge loop instead of rescanning. */
const SMALL_WORD = 48;
const NO_MERGE = 0x7fffffff;
const POS_SCALE = 4294967296; // heap key = rank * 2^32 + position (exact in a double)

/**
 * Byte-pair encoding by merge rank, identical to Hugging Face's BPE model (no dropout, no unknown token):
 * repeatedly merge the adjacent pair with the lowest rank, leftmost first. Short words rescan a small
 * array (fastest for typical words); long words use a binary heap over a linked list, O(n log n), so a
 * 100 KB word stays fast.
 */
export class BytePairEncoder {
  private ranks = new Int32Array(SMALL_WORD);
  private merged = new Int32Array(SMALL_WORD);

  constructor(private readonly merges: MergeTable) {}

  /** Merges `symbols[0..count)` and appends the resulting ids to `out`. `symbols` is overwritten. */
  encode(symbols: Int32Array, count: number, out: number[]): void {
    if (count <= SMALL_WORD) this.encodeSmall(symbols, count, out);
    else this.encodeLarge(symbols, count, out);
  }

  private encodeSmall(sym: Int32Array, n: number, out: number[]): void {
    const merges = this.merges;
    const ranks = this.ranks;
    const merged = this.merged;
    const pairRank = (i: number) => {
      const o = merges.find(sym[i], sym[i + 1]);
      if (o < 0) {
        ranks[i] = NO_MERGE;
      } else {
        ranks[i] = merges.rankAt(o);
        merged[i] = merges.mergedAt(o);
      }
    };
    for (let i = 0; i + 1 < n; i++) pairRank(i);
    while (n > 1) {
      let best = NO_MERGE;
      let at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (ranks[i] < best) {
          best = ranks[i];
          at = i;
        }
      }
      if (at < 0) break;
      sym[at] = merged[at];
      for (let i = at + 1; i + 1 < n; i++) {
        sym[i] = sym[i + 1];
        ranks[i] = ranks[i + 1];
        merged[i] = merged[i + 1];
      }
      n--;
      if (at > 0) pairRank(at - 1);
      if (at + 1 < n) pairRank(at);
    }
    for (let i = 0; i < n; i++) out.push(sym[i]);
  }

  private encodeLarge(sym: Int32Array, n: number, out: number[]): void {
    const merges = this.merges;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap(n);
    for (let i = 0; i + 1 < n; i++) {
      const r = merges.rank(sym[i], sym[i + 1]);
      if (r >= 0) heap.push(r * POS_SCALE + i);
    }
    while (heap.size > 0) {
      const key = heap.pop();
      const rank = Math.floor(key / POS_SCALE);
      const pos = key - rank * POS_SCALE;
      if (!alive[pos]) continue;
      const right = next[pos];
      if (right < 0) continue;
      // Stale entry: the pair at pos changed since it was pushed. Ranks are unique per pair, so an
      // equal rank means the very same pair is still there.
      const o = merges.find(sym[pos], sym[right]);
      if (o < 0 || merges.rankAt(o) !== rank) continue;
      sym[pos] = merges.mergedAt(o);
      alive[right] = 0;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = merges.rank(sym[before], sym[pos]);
        if (r >= 0) heap.push(r * POS_SCALE + before);
      }
      if (after >= 0) {
        const r = merges.rank(sym[pos], sym[after]);
        if (r >= 0) heap.push(r * POS_SCALE + pos);
      }
    }
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
  }
}

/** Binary min-heap of doubles. */
class MinHeap {
  private data: Float64Array;
  size = 0;
  constructor(capacity: number) {
    this.data = new Float64Array(Math.max(16, capacity));
  }
  push(v: number): void {
    if (this.size === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    const d = this.data;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p] <= v) break;
      d[i] = d[p];
      i = p;
    }
    d[i] = v;
  }
  pop(): number {
    const d = this.data;
    const top = d[0];
    const last = d[--this.size];
    let i = 0;
    const n = this.size;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && d[c + 1] < d[c]) c++;
      if (d[c] >= last) break;
      d[i] = d[c];
      i = c;
    }
    d[i] = last;
    return top;
  }
}
