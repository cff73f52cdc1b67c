import type { CachedSequence } from '../model/cached-sequence.js';

interface Waiter {
  exclusive: boolean;
  ids: readonly number[] | undefined;
  grant: (slot: CachedSequence) => void;
}

/**
 * A model's KV sequences ("slots") and the order work gets them in. Shared work (a generation that
 * decodes in a batch) runs alongside other shared work, one slot each; exclusive work (anything that
 * runs passes of its own between awaits, and disposal) runs alone. Work starts in the order it was asked
 * for: a waiting exclusive call holds back the shared calls asked for after it, so nothing starves.
 *
 * Each call gets the free slot whose cached tokens share the longest prefix with its prompt (a chat
 * continuing finds its earlier turns), the least recently used among equals.
 */
export class SequenceSlots {
  private readonly free: CachedSequence[];
  private readonly queue: Waiter[] = [];
  private running = 0;
  private exclusiveRunning = false;

  constructor(readonly all: readonly CachedSequence[]) {
    if (all.length === 0) throw new RangeError('SequenceSlots: at least one sequence is needed');
    this.free = [...all];
  }

  /** Calls running now. */
  get busy(): number {
    return this.running;
  }

  /**
   * Runs `work` on a slot of its own once one is free and no exclusive call runs or waits before it.
   * @param ids - the prompt, to pick the slot that already holds most of it
   */
  shared<T>(ids: readonly number[] | undefined, work: (slot: CachedSequence) => Promise<T>): Promise<T> {
    return this.enter(false, ids, work);
  }

  /** Runs `work` alone, once every call asked for before it has finished. */
  exclusive<T>(ids: readonly number[] | undefined, work: (slot: CachedSequence) => Promise<T>): Promise<T> {
    return this.enter(true, ids, work);
  }

  private async enter<T>(exclusive: boolean, ids: readonly number[] | undefined, work: (slot: CachedSequence) => Promise<T>): Promise<T> {
    const slot = await new Promise<CachedSequence>((grant) => {
      this.queue.push({ exclusive, ids, grant });
      this.pump();
    });
    try {
      return await work(slot);
    } finally {
      this.running--;
      if (exclusive) this.exclusiveRunning = false;
      // Most recently used last: among equal prefixes, the oldest cache is overwritten first.
      this.free.push(slot);
      this.pump();
    }
  }

  private pump(): void {
    for (;;) {
      const next = this.queue[0];
      if (!next || this.exclusiveRunning) return;
      if (next.exclusive ? this.running > 0 : this.free.length === 0) return;
      this.queue.shift();
      this.running++;
      if (next.exclusive) this.exclusiveRunning = true;
      next.grant(this.take(next.ids));
    }
  }

  /** Removes and returns the free slot that shares the longest prefix with `ids`. */
  private take(ids: readonly number[] | undefined): CachedSequence {
    let best = 0;
    let bestLength = -1;
    this.free.forEach((slot, i) => {
      const n = ids ? slot.commonPrefix(ids) : 0;
      if (n > bestLength) {
        best = i;
        bestLength = n;
      }
    });
    return this.free.splice(best, 1)[0]!;
  }
}
