import type { GenerationChunk, GenerationResult, GenerationStream } from '../api/types.js';

/**
 * Builds a {@link GenerationStream} around a producer that starts at once. While someone iterates the
 * stream, `emit` resolves only when the consumer asks for the next chunk, so generation is paced by the
 * reader (and an abort issued while handling a chunk stops generation before the next token). Without
 * an iterator, chunks are just queued. A failure reaches both the iterator and `result` (and is not
 * reported as unhandled when only one of them is used).
 */
export function createGenerationStream(produce: (emit: (chunk: GenerationChunk) => Promise<void>) => Promise<GenerationResult>): GenerationStream {
  const queue: { chunk: GenerationChunk; taken: () => void }[] = [];
  let done = false;
  let iterating = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const emit = (chunk: GenerationChunk): Promise<void> => new Promise<void>((taken) => {
    queue.push({ chunk, taken: iterating ? taken : () => {} });
    if (!iterating) taken();
    notify();
  });
  const result = Promise.resolve()
    .then(() => produce(emit))
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
      iterating = true;
      let pending: (() => void) | undefined;
      try {
        for (;;) {
          while (queue.length > 0) {
            const item = queue.shift()!;
            pending = item.taken;
            yield item.chunk;
            // The consumer asked for more: let the producer go on.
            pending();
            pending = undefined;
          }
          if (done) {
            if (failure) throw failure.error;
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        // The consumer stopped early (break/return): never leave the producer waiting.
        iterating = false;
        pending?.();
        for (const item of queue) item.taken();
      }
    },
  };
}
