/**
 * Node-only: downloads one blob into the cache: bytes go to `blobs/{etag}.incomplete`, an interrupted
 * download resumes from there with a Range request, the size and checksum (sha256 for LFS, git blob
 * sha1 otherwise) are verified, and only then is the file renamed (atomically) to `blobs/{etag}`.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HubError } from '../errors.js';
import { hubFetch, hubResponseError, requestHeaders, type FileMetadata, type HubRequestContext } from './hub-http.js';
import { DEFAULT_CHUNK_BYTES, DEFAULT_CONNECTIONS, parallelRangeStream } from '../remote/parallel-ranges.js';
import type { HubRef } from '../hub/hub-spec.js';

/** Retry policy for one file. */
export interface RetryPolicy { attempts: number; delayMs: number }
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, delayMs: 500 };

/** How one file is fetched: over how many connections, in chunks of how many bytes. */
export interface DownloadPlan { connections: number; chunkBytes: number }
export const DEFAULT_DOWNLOAD: DownloadPlan = { connections: DEFAULT_CONNECTIONS, chunkBytes: DEFAULT_CHUNK_BYTES };

/** Yields the chunks of each part in turn; stops (cancelling what is left) when the consumer stops. */
async function* concatenate(first: AsyncIterable<Uint8Array>, rest: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* first;
    yield* rest as unknown as AsyncIterable<Uint8Array>;
  } finally {
    await rest.cancel().catch(() => {});
  }
}

/** The hash an ETag stands for: sha256 (LFS, 64 hex digits), git blob sha1 (40), or none we can check. */
function checksumFor(etag: string, size: number): { hash: Hash; kind: string } | undefined {
  if (/^[0-9a-f]{64}$/.test(etag)) return { hash: createHash('sha256'), kind: 'sha256' };
  if (/^[0-9a-f]{40}$/.test(etag)) {
    const hash = createHash('sha1');
    hash.update(`blob ${size}\0`); // git hashes a header before the content
    return { hash, kind: 'git sha1' };
  }
  return undefined;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashExisting(path: string, hash: Hash, length: number, signal?: AbortSignal): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, signal })) hash.update(chunk as Buffer);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/**
 * Downloads a blob into `blobPath` (resuming `blobPath.incomplete` if present). A file larger than one
 * chunk goes over `plan.connections` Range requests at once, its chunks written in order, so the
 * partial file stays a prefix (huggingface_hub resumes it too) and the checksum is computed as it
 * arrives; a server that ignores Range sends it over one connection.
 * @param onBytes - called with the bytes of this file on disk so far
 * @throws {@link HubError} after the retries are spent, or on a checksum/size mismatch that persists;
 *   the signal's reason when aborted (the partial file is kept for the next resume)
 */
export async function downloadBlob(
  ctx: HubRequestContext,
  ref: HubRef,
  file: string,
  meta: FileMetadata,
  blobPath: string,
  onBytes: (loaded: number) => void,
  retry: RetryPolicy = DEFAULT_RETRY,
  plan: DownloadPlan = DEFAULT_DOWNLOAD,
): Promise<void> {
  const incomplete = `${blobPath}.incomplete`;
  await mkdir(dirname(blobPath), { recursive: true });
  let lastError: unknown;
  for (let attempt = 0; attempt < retry.attempts; attempt++) {
    if (attempt > 0) await sleep(retry.delayMs * 2 ** (attempt - 1), ctx.signal);
    let have = await sizeOf(incomplete);
    if (have > meta.size) {
      await rm(incomplete, { force: true });
      have = 0;
    }
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    // In parallel, the first request asks for the first chunk only; the rest follow once it answers 206.
    const parallel = plan.connections > 1 && meta.size - have > plan.chunkBytes;
    const firstEnd = have + plan.chunkBytes - 1;
    if (parallel) headers.range = `bytes=${have}-${firstEnd}`;
    else if (have > 0) headers.range = `bytes=${have}-`;
    let response: Response;
    try {
      response = await hubFetch(ctx, meta.url, { method: 'GET', redirect: 'follow', headers: requestHeaders(ctx, meta.url, headers) });
    } catch (e) {
      if (ctx.signal?.aborted) throw e;
      lastError = e;
      continue;
    }
    if (response.status === 416) {
      // Our partial file does not fit what the server has: start over.
      await response.body?.cancel();
      await rm(incomplete, { force: true });
      lastError = new HubError(`${file}: the server refused to resume (HTTP 416)`, 416);
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      const error = hubResponseError(ctx, ref, file, response);
      if (response.status < 500 && response.status !== 429) throw error;
      lastError = error;
      continue;
    }
    if (have > 0 && response.status !== 206) have = 0; // the server ignored Range: rewrite from the start
    if (response.status === 206 && Number(/^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1]) !== have) {
      // A range we did not ask for: do not splice it in; start over.
      await response.body?.cancel();
      await rm(incomplete, { force: true });
      lastError = new HubError(`${file}: the server answered a resume request with the wrong range (${response.headers.get('content-range')})`);
      continue;
    }
    const checksum = checksumFor(meta.etag, meta.size);
    if (checksum && have > 0) await hashExisting(incomplete, checksum.hash, have, ctx.signal);
    const handle = await open(incomplete, have > 0 ? 'a' : 'w');
    let written = have;
    onBytes(written);
    try {
      if (!response.body) throw new HubError(`${file}: empty response body`);
      let body = response.body as unknown as AsyncIterable<Uint8Array>;
      if (parallel && response.status === 206 && Number(/^bytes \d+-(\d+)\//.exec(response.headers.get('content-range') ?? '')?.[1]) === firstEnd) {
        // The rest from where the redirects ended (the CDN), without asking the Hub again per chunk.
        const url = response.url || meta.url;
        const fetchRange = (start: number, end: number, signal: AbortSignal) =>
          ctx.fetch(url, { method: 'GET', headers: requestHeaders(ctx, url, { 'accept-encoding': 'identity', range: `bytes=${start}-${end}` }), signal });
        body = concatenate(body, parallelRangeStream(fetchRange, url, firstEnd + 1, meta.size, { chunkBytes: plan.chunkBytes, connections: plan.connections, signal: ctx.signal }));
      }
      for await (const chunk of body) {
        if (written + chunk.byteLength > meta.size) throw new HubError(`${file}: the server sent more than the announced ${meta.size} bytes`);
        await handle.write(chunk);
        checksum?.hash.update(chunk);
        written += chunk.byteLength;
        onBytes(written);
      }
    } catch (e) {
      await handle.close();
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      lastError = e; // dropped connection or the like: resume from what is on disk
      continue;
    }
    await handle.close();
    if (written !== meta.size) {
      lastError = new HubError(`${file}: connection closed after ${written} of ${meta.size} bytes`);
      continue;
    }
    if (checksum) {
      const digest = checksum.hash.digest('hex');
      if (digest !== meta.etag) {
        await rm(incomplete, { force: true });
        lastError = new HubError(`${file}: downloaded bytes have ${checksum.kind} ${digest}, the Hub announced ${meta.etag} (corrupted download)`);
        continue;
      }
    }
    await rename(incomplete, blobPath);
    return;
  }
  if (lastError instanceof HubError) {
    throw new HubError(`could not download ${ref.repoId}@${ref.revision}/${file} after ${retry.attempts} attempts: ${lastError.message}`, lastError.status, { cause: lastError });
  }
  throw new HubError(`could not download ${ref.repoId}@${ref.revision}/${file} after ${retry.attempts} attempts: ${String((lastError as Error)?.message ?? lastError)}`, undefined, { cause: lastError });
}
