/**
 * Browser caching of downloaded models with the Cache API: each file is downloaded whole once (with
 * progress), stored under its URL, and then read as slices of the cached Blob, so a page reload reads
 * from disk instead of the network. Browser-safe: no Node APIs.
 */
import { ModelNotFoundError, RemoteFileError } from '../errors.js';
import type { LoadProgress } from '../open-folder.js';
import { blobFile, type ModelFolder } from '../random-access.js';
import { accessHint, joinUrl, type UrlFolderOptions } from '../remote/url-folder.js';

/**
 * The Cache API refused to open or store: storage quota exceeded, a private window's small quota,
 * storage disabled, or a storage failure (Chromium reports some as UnknownError).
 * @internal caught by openRemoteModel, which then reads the model without the cache
 */
export class CacheStoreError extends Error {
  constructor(what: string, cause: DOMException) {
    super(`${what} (${cause.name}: ${cause.message})`, { cause });
    this.name = 'CacheStoreError';
  }
}

/**
 * `cache.put` with its storage failures told apart: a DOMException (other than an abort) is the
 * storage's; a TypeError is the download's (the body failed), which stays what it is.
 */
async function store(cache: Cache, url: string, response: Response, signal?: AbortSignal): Promise<void> {
  try {
    await cache.put(url, response);
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (e instanceof DOMException && e.name !== 'AbortError') throw new CacheStoreError(`the browser cache cannot store ${url}`, e);
    throw e;
  }
}

/** Default Cache API cache name. */
export const DEFAULT_CACHE_NAME = 'qwen2-ts-models';

/** Where and how downloaded models are cached in a browser (`browserCache`'s object form). */
export interface BrowserCacheOptions {
  /** Cache API storage (default: globalThis.caches). */
  storage?: CacheStorage;
  /** Cache name (default `'qwen2-ts-models'`). */
  cacheName?: string;
  /**
   * The origin's storage quota and usage (default: `navigator.storage.estimate`, when there is one).
   * Files that would not fit are not downloaded into the cache only to be refused at the end.
   */
  estimate?: () => Promise<StorageEstimate>;
}

/** Options for {@link openCachedUrlFolder}. */
export interface CachedUrlFolderOptions extends UrlFolderOptions, BrowserCacheOptions {
  onProgress?: (p: LoadProgress) => void;
}

/** The storage estimate function of this runtime, when it has one. */
function defaultEstimate(): (() => Promise<StorageEstimate>) | undefined {
  const storage = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage;
  return typeof storage?.estimate === 'function' ? () => storage.estimate() : undefined;
}

/**
 * Refuses, before downloading, files the cache has no room for: the Cache API takes a file only once its
 * whole body has arrived, so a quota failure would otherwise come after the whole download. An estimate
 * that cannot be had, or lacks its numbers, lets the download go ahead.
 */
async function checkRoom(estimate: (() => Promise<StorageEstimate>) | undefined, bytes: number, what: string): Promise<void> {
  if (!estimate || bytes <= 0) return;
  let e: StorageEstimate;
  try {
    e = await estimate();
  } catch {
    return;
  }
  if (typeof e.quota !== 'number' || typeof e.usage !== 'number') return;
  const free = e.quota - e.usage;
  if (free >= bytes) return;
  const bytesText = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);
  throw new CacheStoreError(`the browser cache has room for ${bytesText(Math.max(0, free))} and ${what} needs ${bytesText(bytes)}`,
    new DOMException(`storage quota ${bytesText(e.quota)}, ${bytesText(e.usage)} used`, 'QuotaExceededError'));
}

/** A cached URL folder, plus a way to fetch several files up front with overall progress. */
export interface CachedUrlFolder extends ModelFolder {
  /** Downloads the listed files the cache lacks, reporting bytes per file and over all of them. */
  prefetch(paths: string[], signal?: AbortSignal): Promise<void>;
}

/**
 * Opens a URL folder whose files go through the Cache API.
 * @param base - folder URL
 * @param source - name for messages
 * @throws Error when no Cache API is available
 */
export async function openCachedUrlFolder(base: string, options: CachedUrlFolderOptions = {}, source = base): Promise<CachedUrlFolder> {
  const storage = options.storage ?? (globalThis as { caches?: CacheStorage }).caches;
  if (!storage) throw new Error('the Cache API is not available in this runtime');
  const name = options.cacheName ?? DEFAULT_CACHE_NAME;
  let cache: Cache;
  try {
    cache = await storage.open(name);
  } catch (e) {
    // Storage disabled (some privacy settings), or an origin without storage: a SecurityError.
    if (e instanceof DOMException) throw new CacheStoreError(`the browser cache '${name}' cannot be opened`, e);
    throw e;
  }
  const doFetch = options.fetch ?? globalThis.fetch;

  const request = async (url: string, init: RequestInit, signal?: AbortSignal): Promise<Response> => {
    try {
      return await doFetch(url, { ...init, headers: { ...options.headers, ...(init.headers as Record<string, string>) }, signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw new RemoteFileError(url, `cannot reach ${url} (${(e as Error).message}); check the URL and your network`, undefined, { cause: e });
    }
  };

  /** Downloads one file into the cache; `report` gets the bytes so far. Returns false on 404. */
  const download = async (path: string, signal: AbortSignal | undefined, report: (loaded: number, total: number) => void): Promise<boolean> => {
    const url = joinUrl(base, path);
    const response = await request(url, {}, signal);
    if (response.status === 404) {
      await response.body?.cancel();
      // Remember the absence too, so a reload (even offline) does not ask again for optional files.
      await store(cache, url, new Response(null, { status: 404 }), signal);
      return false;
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new RemoteFileError(url, `${url}: HTTP ${response.status}${accessHint(response.status)}`, response.status);
    }
    const total = Number(response.headers.get('content-length') ?? NaN);
    let loaded = 0;
    const counted = response.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        loaded += chunk.byteLength;
        report(loaded, Number.isFinite(total) ? Math.max(total, loaded) : loaded);
        controller.enqueue(chunk);
      },
    }));
    // put() only stores the entry once the whole body has arrived, so an interrupted download leaves nothing behind.
    await store(cache, url, new Response(counted, { headers: { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream' } }), signal);
    // Only "fewer bytes" is checked: a browser may transparently decompress a gzip-encoded text file,
    // making the body longer than Content-Length (and cross-origin it cannot see Content-Encoding).
    if (Number.isFinite(total) && loaded < total) {
      await cache.delete(url);
      throw new RemoteFileError(url, `${url}: download ended after ${loaded} of ${total} bytes`);
    }
    return true;
  };

  const cached = async (path: string) => cache.match(joinUrl(base, path));

  const ensure = async (path: string, signal?: AbortSignal): Promise<Response | undefined> => {
    const hit = await cached(path);
    if (hit) return hit.status === 404 ? undefined : hit;
    const found = await download(path, signal, (loaded, total) => options.onProgress?.({ file: path, loaded, total, overallLoaded: loaded, overallTotal: total, phase: 'download' }));
    return found ? cached(path) : undefined;
  };

  return {
    source,
    async readText(path, signal) {
      return (await ensure(path, signal))?.text();
    },
    async openFile(path, signal) {
      const response = await ensure(path, signal);
      if (!response) throw new ModelNotFoundError(source, `no such file: ${joinUrl(base, path)} (HTTP 404)`, path);
      return blobFile(joinUrl(base, path), await response.blob());
    },
    async prefetch(paths, signal) {
      const todo: { path: string; size: number }[] = [];
      for (const path of paths) {
        if ((await cached(path))?.ok) continue;
        const url = joinUrl(base, path);
        const head = await request(url, { method: 'HEAD' }, signal);
        if (head.status === 404) throw new ModelNotFoundError(source, `no such file: ${url} (HTTP 404)`, path);
        todo.push({ path, size: Number(head.headers.get('content-length') ?? 0) });
      }
      const overallTotal = todo.reduce((sum, f) => sum + f.size, 0);
      await checkRoom(options.estimate ?? defaultEstimate(), overallTotal, todo.length === 1 ? todo[0]!.path : `${todo.length} weight files`);
      let finished = 0;
      for (const { path, size } of todo) {
        await download(path, signal, (loaded, total) => options.onProgress?.({ file: path, loaded, total, overallLoaded: finished + loaded, overallTotal, phase: 'download' }));
        finished += size;
      }
    },
  };
}
