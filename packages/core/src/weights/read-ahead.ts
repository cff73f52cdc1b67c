import { SLICED_READ_BYTES, type RangeReadable, type TensorRead } from './read-host-weight.js';

/**
 * Default bytes a load reads ahead of the tensor it converts: two of {@link SLICED_READ_BYTES}'s
 * slices, so the next slice is on its way while this one converts, at a small cost beside the weights.
 */
export const READ_AHEAD_BYTES = 2 * SLICED_READ_BYTES;

/** Most reads in flight at once: small tensors (norms, biases) then wait one round trip together, not each. */
const MAX_READS_AHEAD = 8;

/**
 * A tensor source that fetches a known sequence of reads ahead of their use, so that reading the next
 * tensors (from disk, or over the network, where each request waits a round trip) overlaps converting
 * and uploading this one. Reads ahead never hold more than `budgetBytes` that the consumer has not
 * taken yet (a read larger than that is made when it is asked for). A read asked for out of the planned
 * order goes straight to the source.
 *
 * Call {@link ReadAhead.dispose} when done: it cancels reads still in flight (after a failure).
 */
export class ReadAhead implements RangeReadable {
  private readonly pending: (Promise<Uint8Array> | undefined)[];
  /** Index of the next read the consumer will ask for. */
  private next = 0;
  /** Index of the next read to start. */
  private started = 0;
  /** Bytes of reads started and not yet taken. */
  private buffered = 0;
  private readonly controller = new AbortController();
  private readonly unlink: () => void;

  /**
   * @param reads - the reads the consumer will make, in order ({@link tensorReads} of each tensor)
   * @param budgetBytes - most bytes read ahead and not yet taken (0 reads only what is asked for)
   * @param signal - aborts reads in flight with its reason
   */
  constructor(private readonly source: RangeReadable, private readonly reads: readonly TensorRead[], private readonly budgetBytes: number, signal?: AbortSignal) {
    this.pending = new Array(reads.length);
    const onAbort = () => this.controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.unlink = () => signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    const readRange = source.readRange?.bind(source);
    if (readRange) {
      this.readRange = (name, byteOffset, byteLength, options) => {
        const r = this.reads[this.next];
        if (r && r.name === name && r.byteOffset === byteOffset && r.byteLength === byteLength) return this.take();
        return readRange(name, byteOffset, byteLength, options);
      };
    }
    this.fill();
  }

  read(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const r = this.reads[this.next];
    if (r && r.byteOffset === undefined && !r.blocks && r.name === name) return this.take();
    return this.source.read(name, options);
  }

  /** A GGUF tensor's blocks: the planned read when it is next (so reading them overlaps the tensors before). */
  readGgmlBlocks(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const r = this.reads[this.next];
    if (r && r.blocks && r.name === name) return this.take();
    if (!this.source.readGgmlBlocks) return Promise.reject(new Error(`read-ahead: the source cannot read '${name}' as ggml blocks`));
    return this.source.readGgmlBlocks(name, options);
  }

  /** Present when the source reads ranges (readers plan by whether it is). */
  readonly readRange?: (name: string, byteOffset: number, byteLength: number, options?: { signal?: AbortSignal }) => Promise<Uint8Array>;

  /** Cancels reads in flight (their results are no longer wanted). */
  dispose(): void {
    this.unlink();
    if (this.started > this.next) this.controller.abort(new Error('read-ahead disposed'));
  }

  private take(): Promise<Uint8Array> {
    if (this.started === this.next) this.start();
    const promise = this.pending[this.next]!;
    this.pending[this.next] = undefined;
    this.buffered -= this.reads[this.next]!.byteLength;
    this.next++;
    this.fill();
    return promise;
  }

  private fill(): void {
    while (this.started < this.reads.length && this.started - this.next < MAX_READS_AHEAD && this.buffered + this.reads[this.started]!.byteLength <= this.budgetBytes) this.start();
  }

  private start(): void {
    const r = this.reads[this.started]!;
    const options = { signal: this.controller.signal };
    const promise = r.blocks ? this.source.readGgmlBlocks!(r.name, options)
      : r.byteOffset === undefined ? this.source.read(r.name, options) : this.source.readRange!(r.name, r.byteOffset, r.byteLength, options);
    // Failures surface when the read is taken; one never taken (after an earlier failure) is not an unhandled rejection.
    promise.catch(() => {});
    this.pending[this.started++] = promise;
    this.buffered += r.byteLength;
  }
}
