/**
 * A first-in first-out queue of generations: one model, one KV cache, so requests run one after another
 * and never interleave. A request whose client leaves while it waits is dropped without running.
 */
export class GenerationQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waitingCount = 0;
  private running = false;

  /** Requests waiting, not counting the one running. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Whether a generation is running now. */
  get busy(): boolean {
    return this.running;
  }

  /** Resolves when every task queued so far has settled. */
  idle(): Promise<void> {
    return this.tail.then(() => {});
  }

  /**
   * Runs `task` after every task queued before it has finished.
   * @param task - the generation
   * @param signal - aborts the wait (the task is then never started) and is the task's to honour once running
   * @throws the signal's reason when aborted while waiting; whatever `task` throws
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.waitingCount++;
    const turn = this.tail.then(async () => {
      this.waitingCount--;
      signal?.throwIfAborted();
      this.running = true;
      try {
        return await task();
      } finally {
        this.running = false;
      }
    });
    // The next task waits for this one to settle, whether it succeeded or not.
    this.tail = turn.catch(() => {});
    return turn;
  }
}
