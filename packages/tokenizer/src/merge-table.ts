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
