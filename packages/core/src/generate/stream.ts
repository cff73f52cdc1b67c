import type { GenerationChunk, GenerationResult, GenerationStream } from '../api/types.js';

/**
 * Builds a {@link GenerationStream} around a producer that starts at once: chunks are queued until the
 * consumer reads them, and the result settles when the producer does. A failure reaches both the
 * iterator and `result` (and is not reported as unhandled when only one of them is used).
 */
export function createGenerationStream(produce: (emit: (chunk: GenerationChunk) => void) => Promise<GenerationResult>): GenerationStream {
  const queue: GenerationChunk[] = [];
  let done = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const result = Promise.resolve()
    .then(() => produce((chunk) => {
      queue.push(chunk);
      notify();
    }))
    .then(
      (r) => {
        done = true;
        notify();
        return r;
      },
      (error: unknown) => {
        done = true;
        failure = { error };
        notify();
        throw error;
      },
    );
  result.catch(() => {});

  return {
    result,
    then(onFulfilled, onRejected) {
      return result.then(onFulfilled, onRejected);
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (done) {
          if (failure) throw failure.error;
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}
