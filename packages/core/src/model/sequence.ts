import type { Backend, KVCache } from '../backend/types.js';
import { ContextOverflowError } from '../errors.js';

/**
 * One sequence's state: its preallocated KV cache and how many positions of it are filled. Tokens are
 * appended at `length`; nothing is ever copied or grown.
 */
export class KVSequence {
  /** Positions filled so far (the next token goes at this position). */
  length = 0;

  constructor(readonly backend: Backend, readonly cache: KVCache) {}

  /** Capacity in tokens. */
  get capacity(): number {
    return this.cache.spec.maxTokens;
  }

  /** Throws unless `tokens` more fit. @throws {@link ContextOverflowError} */
  ensureRoom(tokens: number): void {
    if (this.length + tokens > this.capacity) throw new ContextOverflowError(this.length, tokens, this.capacity);
  }

  /** Forgets positions from `length` on (for example to reuse a shared prompt prefix). */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new RangeError(`truncate: ${length} outside 0..${this.length}`);
    this.length = length;
  }

  /** Frees the cache on the backend. */
  free(): void {
    this.backend.free(this.cache);
  }
}
