import { TokenizerError } from './errors.js';
import type { TokenIndex } from './token-index.js';

/**
 * Open-addressing hash table from a token-id pair (left, right) to its merge (rank, merged id), stored
 * in one Int32Array so that a lookup in the BPE inner loop allocates nothing and hashes two integers.
 */
export class MergeTable {
  /** [left, right, rank, merged] per slot; left = -1 marks an empty slot. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  /** Number of merges stored. */
  size = 0;

  constructor(capacity: number) {
    let slotCount = 1024;
    while (slotCount < capacity * 2.5) slotCount *= 2;
    this.mask = slotCount - 1;
    this.slots = new Int32Array(slotCount * 4).fill(-1);
  }

  private static hash(left: number, right: number): number {
    let h = Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    return Math.imul(h, 0x2c1b3c6d);
  }

  /** Adds a merge; a pair listed twice takes its last rank and result, as in Hugging Face's merge map. */
  add(left: number, right: number, rank: number, merged: number): void {
    let s = MergeTable.hash(left, right) & this.mask;
    const slots = this.slots;
    for (;;) {
      const o = s << 2;
      if (slots[o] === -1) {
        slots[o] = left;
        slots[o + 1] = right;
        slots[o + 2] = rank;
        slots[o + 3] = merged;
        this.size++;
        return;
      }
      if (slots[o] === left && slots[o + 1] === right) {
        slots[o + 2] = rank;
        slots[o + 3] = merged;
        return;
      }
      s = (s + 1) & this.mask;
    }
  }

  /** Offset of the pair's slot (read it with {@link rankAt} / {@link mergedAt}), or -1 when no merge. */
  find(left: number, right: number): number {
    let s = MergeTable.hash(left, right) & this.mask;
    const slots = this.slots;
    for (;;) {
      const o = s << 2;
      const l = slots[o];
      if (l === -1) return -1;
      if (l === left && slots[o + 1] === right) return o;
      s = (s + 1) & this.mask;
    }
  }

  /** Rank of the pair, or -1 when the pair has no merge. */
  rank(left: number, right: number): number {
    const o = this.find(left, right);
    return o < 0 ? -1 : this.slots[o + 2];
  }

  rankAt(offset: number): number {
    return this.slots[offset + 2];
  }

  mergedAt(offset: number): number {
    return this.slots[offset + 3];
  }
}

/**
 * The merge table: pair of ids -> (rank, merged id). Merges are read in place ("left right" strings are
 * never sliced) through the token index.
 * @throws TokenizerError on a malformed merge or one whose parts or result are not in the vocabulary.
 */
export function buildMergeTable(merges: ReadonlyArray<unknown>, file: string, index: TokenIndex): MergeTable {
  const table = new MergeTable(merges.length);
  for (let rank = 0; rank < merges.length; rank++) {
    const m = merges[rank];
    let left: number;
    let right: number;
    let merged: number;
    if (typeof m === 'string') {
      const space = m.indexOf(' ');
      if (space <= 0 || space === m.length - 1 || m.indexOf(' ', space + 1) !== -1) {
        throw new TokenizerError('bad-merges', `${file}: merge ${rank + 1} ${JSON.stringify(m)} is not "left right"`);
      }
      left = index.find(m, 0, space);
      right = index.find(m, space + 1, m.length);
      merged = index.findConcat(m, 0, space, space + 1, m.length);
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      const pair = m[0] + ' ' + m[1];
      const space = m[0].length;
      left = index.find(pair, 0, space);
      right = index.find(pair, space + 1, pair.length);
      merged = index.findConcat(pair, 0, space, space + 1, pair.length);
    } else {
      throw new TokenizerError('bad-merges', `${file}: merge ${rank + 1} is neither "left right" nor [left, right]`);
    }
    if (left < 0 || right < 0 || merged < 0) {
      const what = left < 0 ? 'its left part' : right < 0 ? 'its right part' : 'its result';
      throw new TokenizerError('bad-merges', `${file}: merge ${rank + 1} ${JSON.stringify(m)}: ${what} is not in the vocabulary`);
    }
    table.add(left, right, rank, merged);
  }
  return table;
}
