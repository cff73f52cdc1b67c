/**
 * One large download as several Range requests at once, delivered in order. A CDN often serves one
 * connection at a fraction of what the link can take (huggingface_hub's hf_transfer exists for this), so
 * a multi-gigabyte checkpoint arrives several times sooner over a few connections. Uses fetch and
 * ReadableStream only: browser-safe.
 */
import { RemoteFileError } from '../errors.js';
import { readBodyInto } from './read-body.js';

/** Default bytes per request. */
export const DEFAULT_CHUNK_BYTES = 8 << 20;
/** Default requests in flight per file. */
export const DEFAULT_CONNECTIONS = 8;

/** Options of {@link parallelRangeStream}. */
export interface ParallelRangeOptions {
  /** Bytes per request (default {@link DEFAULT_CHUNK_BYTES}). */
  chunkBytes?: number;
  /**
   * Requests in flight, and chunks held, at most (default {@link DEFAULT_CONNECTIONS}): memory stays
   * below `connections x chunkBytes` whatever the file's size.
   */
  connections?: number;
  /** Aborts every request in flight with its reason. */
  signal?: AbortSignal;
}

/** Asks for bytes `start..end` (inclusive, as a Range header counts) of the file. */
export type RangeFetcher = (start: number, end: number, signal: AbortSignal) => Promise<Response>;

/**
 * Bytes `[start, end)` of a file as a stream of chunks in order, fetched `connections` requests at a
 * time. The stream errors (after delivering the chunks before it) when a request fails, answers with
 * another range or status than asked, or ends early; cancelling it aborts the requests in flight.
 * @param name - the file, for messages (a URL)
 */
export function parallelRangeStream(fetchRange: RangeFetcher, name: string, start: number, end: number, options: ParallelRangeOptions = {}): ReadableStream<Uint8Array> {
  const chunkBytes = Math.max(1, options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  const connections = Math.max(1, options.connections ?? DEFAULT_CONNECTIONS);
  const controller = new AbortController();
  const { signal } = options;
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const done = () => signal?.removeEventListener('abort', onAbort);
  // Chunks requested and not yet delivered, in file order.
  const queue: Promise<Uint8Array>[] = [];
  let requested = start;
  const topUp = () => {
    while (queue.length < connections && requested < end) {
      const from = requested;
      requested = Math.min(end, from + chunkBytes);
      const chunk = readChunk(fetchRange, name, from, requested, controller.signal);
      chunk.catch(() => {}); // reported when its turn comes; one never reached is not an unhandled rejection
      queue.push(chunk);
    }
  };
  return new ReadableStream<Uint8Array>({
    start() {
      topUp();
      if (queue.length === 0) done();
    },
    async pull(stream) {
      const next = queue.shift();
      if (!next) {
        done();
        stream.close();
        return;
      }
      try {
        stream.enqueue(await next);
      } catch (e) {
        controller.abort(e);
        done();
        stream.error(e);
        return;
      }
      topUp();
      if (queue.length === 0) {
        done();
        stream.close();
      }
    },
    cancel(reason) {
      controller.abort(reason ?? new Error('download cancelled'));
      done();
    },
  }, { highWaterMark: 0 });
}

/** One Range request, read whole into a buffer of exactly the bytes asked for. */
async function readChunk(fetchRange: RangeFetcher, name: string, start: number, end: number, signal: AbortSignal): Promise<Uint8Array> {
  const response = await fetchRange(start, end - 1, signal);
  const range = /^bytes (\d+)-(\d+)\//.exec(response.headers.get('content-range') ?? '');
  if (response.status !== 206 || !range || Number(range[1]) !== start || Number(range[2]) !== end - 1 || !response.body) {
    await response.body?.cancel().catch(() => {});
    throw new RemoteFileError(name, `${name}: asked for bytes ${start}-${end - 1}, got HTTP ${response.status} ${response.headers.get('content-range') ?? ''}`.trim(), response.status);
  }
  const out = new Uint8Array(end - start);
  const filled = await readBodyInto(response.body, out, name, start, signal);
  if (filled !== out.byteLength) throw new RemoteFileError(name, `${name}: bytes ${start}-${end - 1} ended after ${filled} of ${out.byteLength}`);
  return out;
}
