import type { DeviceTokens, Tensor } from '../backend/types.js';
import { ContextOverflowError } from '../errors.js';
import type { Qwen2Model } from './qwen2-model.js';
import type { KVSequence } from './sequence.js';

/** Stands for a token fed from the device whose id the host has not read yet (never equal to an id). */
const UNREAD = -1;

/**
 * A model's KV sequence together with the ids whose keys and values it holds, so that a new prompt
 * reuses the prefix it shares with what came before (a chat continuing) instead of recomputing it.
 * Every way of feeding tokens goes through here, so the ids always describe the cache.
 */
export class CachedSequence {
  /** The id at each filled position (`UNREAD` where the host has not read it yet). */
  private readonly ids: number[] = [];

  constructor(readonly model: Qwen2Model, readonly seq: KVSequence) {}

  /** Positions filled. */
  get length(): number {
    return this.seq.length;
  }

  /** Capacity in tokens. */
  get capacity(): number {
    return this.seq.capacity;
  }

  /** How many leading ids of `ids` the cache holds already. */
  commonPrefix(ids: readonly number[]): number {
    let n = 0;
    while (n < this.ids.length && n < ids.length && this.ids[n] === ids[n]) n++;
    return n;
  }

  /** Forgets every position. */
  reset(): void {
    this.truncate(0);
  }

  /** Forgets positions from `length` on. */
  truncate(length: number): void {
    this.seq.truncate(length);
    this.ids.length = length;
  }

  /**
   * Feeds `ids`, reusing the cached prefix they share with what the cache holds, and returns the last
   * position's logits (on the backend; overwritten by the next pass).
   * @throws RangeError on an empty `ids`; ContextOverflowError when they do not fit
   */
  prefill(ids: readonly number[]): Tensor {
    if (ids.length === 0) throw new RangeError('the prompt is empty: at least one token is needed');
    if (ids.length > this.capacity) throw new ContextOverflowError(0, ids.length, this.capacity);
    // The last token must run again to give its logits.
    this.truncate(Math.min(this.commonPrefix(ids), ids.length - 1));
    return this.forward(ids.slice(this.length));
  }

  /**
   * One pass over several sequences: appends `ids[i]` (one token or several) to `caches[i]` and returns
   * the logits of each one's last token. @see Qwen2Model.forwardBatch
   */
  static forwardBatch(caches: readonly CachedSequence[], ids: readonly (readonly number[])[]): Tensor {
    const model = caches[0]?.model;
    if (!model || caches.some((c) => c.model !== model)) throw new RangeError('forwardBatch: the sequences must all belong to one model (and there must be at least one)');
    try {
      const logits = model.forwardBatch(caches.map((c) => c.seq), ids);
      caches.forEach((c, i) => c.ids.push(...ids[i]!));
      return logits;
    } catch (e) {
      for (const c of caches) c.unknownAfterFailure();
      throw e;
    }
  }

  /** Appends `ids` and returns the last one's logits. @see Qwen2Model.forward */
  forward(ids: readonly number[]): Tensor {
    try {
      const logits = this.model.forward(this.seq, ids);
      this.ids.push(...ids);
      return logits;
    } catch (e) {
      this.unknownAfterFailure();
      throw e;
    }
  }

  /**
   * Appends tokens still on the device; the host names each with {@link settle} once it has read it.
   * @see Qwen2Model.forwardOnDevice
   */
  forwardOnDevice(tokens: DeviceTokens): Tensor {
    const logits = this.model.forwardOnDevice(this.seq, tokens);
    for (let i = 0; i < tokens.count; i++) this.ids.push(UNREAD);
    return logits;
  }

  /** Names the earliest token fed by {@link forwardOnDevice} that the host had not read. */
  settle(id: number): void {
    const at = this.ids.indexOf(UNREAD);
    if (at >= 0) this.ids[at] = id;
  }

  /** Appends `ids` and hands each position's logits to `onRow`. @see Qwen2Model.forwardRows */
  forwardRows(ids: readonly number[], onRow: (row: Float32Array, position: number) => void): Promise<void> {
    return this.appending(ids, () => this.model.forwardRows(this.seq, ids, onRow));
  }

  /** Appends `ids` and returns every position's logits. @see Qwen2Model.forwardAll */
  forwardAll(ids: readonly number[]): Promise<Float32Array[]> {
    return this.appending(ids, () => this.model.forwardAll(this.seq, ids));
  }

  /** Appends `ids` and returns every position's argmax. @see Qwen2Model.forwardArgmax */
  forwardArgmax(ids: readonly number[]): Promise<Int32Array> {
    return this.appending(ids, () => this.model.forwardArgmax(this.seq, ids));
  }

  private async appending<T>(ids: readonly number[], run: () => Promise<T>): Promise<T> {
    try {
      const out = await run();
      this.ids.push(...ids);
      return out;
    } catch (e) {
      this.unknownAfterFailure();
      throw e;
    }
  }

  /** A pass that failed may have filled some of its chunks: nothing past the ids known is kept. */
  private unknownAfterFailure(): void {
    this.truncate(Math.min(this.ids.length, this.seq.length));
  }

  /** Frees the KV cache. */
  free(): void {
    this.seq.free();
  }
}
