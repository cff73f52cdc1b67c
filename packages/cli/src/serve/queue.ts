/**
 * A first-in first-out queue of generations on one model: at most `concurrency` run at once (the
 * model's `parallel` sequences, which it decodes in one batch; 1: one after another, never interleaved).
 * A request whose client leaves while it waits is dropped without running.
 */
export class GenerationQueue {
  private readonly waiters: (() => void)[] = [];
  private runningCount = 0;
  private settled: Promise<void> = Promise.resolve();
  private settle: (() => void) | undefined;

  /** @param concurrency - generations run at once (default 1) */
  constructor(readonly concurrency = 1) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }

  /** Requests waiting, not counting those running. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Whether a generation is running now. */
  get busy(): boolean {
    return this.runningCount > 0;
  }

  /** Generations running now. */
  get running(): number {
    return this.runningCount;
  }

  /** Resolves when every task queued so far has settled. */
  idle(): Promise<void> {
    return this.settled;
  }

  /**
   * Runs `task` once fewer than `concurrency` tasks run and every task queued before it has started.
   * @param task - the generation
   * @param signal - aborts the wait (the task is then never started) and is the task's to honour once running
   * @throws the signal's reason when aborted while waiting; whatever `task` throws
   */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.runningCount + this.waiters.length === 0) {
      this.settled = new Promise<void>((resolve) => (this.settle = resolve));
    }
    if (this.runningCount >= this.concurrency || this.waiters.length > 0) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    } else {
      this.runningCount++;
    }
    try {
      signal?.throwIfAborted();
      return await task();
    } finally {
      this.finish();
    }
  }

  /** Hands the finished task's place to the first waiter, or frees it. */
  private finish(): void {
    const next = this.waiters.shift();
    if (next) {
      next(); // keeps the place: runningCount unchanged
      return;
    }
    this.runningCount--;
    if (this.runningCount === 0) this.settle?.();
  }
}
