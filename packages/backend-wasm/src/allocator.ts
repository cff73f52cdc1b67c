/**
 * First-fit free-list allocator over one linear memory's byte range. Blocks are 64-byte aligned (a cache
 * line, so threads writing neighbouring blocks never share one). Freed blocks merge with free
 * neighbours; the top of the heap only moves up, so the memory never has to shrink (wasm memories cannot).
 */
export class FreeListAllocator {
  /** Sorted, non-adjacent free ranges below `top`. */
  private readonly free: { start: number; size: number }[] = [];
  private readonly sizes = new Map<number, number>();
  /** End of the highest block ever handed out. */
  top: number;
  /** Bytes currently handed out. */
  used = 0;

  /**
   * @param base - first usable byte (aligned up)
   * @param limit - end of the usable range (exclusive)
   */
  constructor(base: number, readonly limit: number) {
    this.top = align(base);
  }

  /** Largest block that could be allocated right now. */
  available(): number {
    let best = this.limit - this.top;
    for (const f of this.free) best = Math.max(best, f.size);
    return best;
  }

  /**
   * Allocates `bytes` (rounded up to 64).
   * @returns the block's offset, or -1 when it does not fit
   */
  alloc(bytes: number): number {
    const size = align(Math.max(bytes, 1));
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i]!;
      if (f.size >= size) {
        const start = f.start;
        if (f.size === size) this.free.splice(i, 1);
        else { f.start += size; f.size -= size; }
        return this.take(start, size);
      }
    }
    if (this.top + size > this.limit) return -1;
    const start = this.top;
    this.top += size;
    return this.take(start, size);
  }

  /** Returns a block. @throws Error when `offset` is not a live block */
  release(offset: number): void {
    const size = this.sizes.get(offset);
    if (size === undefined) throw new Error(`allocator: no block at ${offset}`);
    this.sizes.delete(offset);
    this.used -= size;
    if (offset + size === this.top) {
      this.top = offset;
      // The block below may now touch the top: fold it in too.
      const last = this.free[this.free.length - 1];
      if (last && last.start + last.size === this.top) { this.top = last.start; this.free.pop(); }
      return;
    }
    let i = 0;
    while (i < this.free.length && this.free[i]!.start < offset) i++;
    const prev = this.free[i - 1];
    const next = this.free[i];
    if (prev && prev.start + prev.size === offset) {
      prev.size += size;
      if (next && prev.start + prev.size === next.start) { prev.size += next.size; this.free.splice(i, 1); }
    } else if (next && offset + size === next.start) {
      next.start = offset;
      next.size += size;
    } else {
      this.free.splice(i, 0, { start: offset, size });
    }
  }

  private take(start: number, size: number): number {
    this.sizes.set(start, size);
    this.used += size;
    return start;
  }
}

/** Rounds up to a multiple of 64. */
export function align(n: number): number {
  return Math.ceil(n / 64) * 64;
}
