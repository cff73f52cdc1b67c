/** Opens models over HTTP (a folder URL, or the Hub's resolve URLs in browsers), with optional Cache API caching. */
import { INDEX_FILE, parseIndex, SINGLE_FILE } from '../checkpoint.js';
import { CacheStoreError, openCachedUrlFolder, type BrowserCacheOptions, type CachedUrlFolderOptions } from '../browser/cached-url-folder.js';
import { openModelFolder, type LoadProgress, type OpenedModel } from '../open-folder.js';
import { openUrlFolder, type UrlFolderOptions } from './url-folder.js';
import { ggufPartNames } from '../gguf/open-gguf.js';

/** Options shared by URL sources. */
export interface RemoteOpenOptions extends UrlFolderOptions {
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  /** Cache files with the Cache API (download whole once, read slices from the cache afterwards). */
  cache?: BrowserCacheOptions;
  /** Open this GGUF file of the folder rather than a transformers checkpoint. */
  gguf?: string;
}

/**
 * Opens the model folder at `base`: with `cache`, every file is downloaded once into the Cache API
 * (weights first, with overall progress); without, tensors are read with Range requests on demand.
 * When the cache cannot store the files (quota exceeded; private windows allow little), the model is
 * read without it, and `console.warn` says why: the page works, it only downloads again next time.
 */
export async function openRemoteModel(base: string, source: string, options: RemoteOpenOptions): Promise<OpenedModel> {
  const { signal, onProgress } = options;
  const { gguf } = options;
  const uncached = () => openModelFolder(openUrlFolder(base, options, source), source, { signal, onProgress, gguf });
  if (!options.cache) return uncached();
  try {
    return await openCached(base, source, options, options.cache);
  } catch (e) {
    if (!(e instanceof CacheStoreError)) throw e;
    console.warn(`qwen2-ts: ${source}: ${e.message}; reading the model over the network without caching it (free some storage to cache it, or pass browserCache: false)`);
    return uncached();
  }
}

async function openCached(base: string, source: string, options: RemoteOpenOptions, cache: NonNullable<RemoteOpenOptions['cache']>): Promise<OpenedModel> {
  const { signal, onProgress } = options;
  const folderOptions: CachedUrlFolderOptions = { ...options, ...cache };
  const folder = await openCachedUrlFolder(base, folderOptions, source);
  if (options.gguf !== undefined) {
    await folder.prefetch(ggufPartNames(options.gguf), signal);
    return openModelFolder(folder, source, { signal, onProgress, gguf: options.gguf });
  }
  // config.json first: a wrong URL or a refused token fails on it, before any weight is fetched.
  if ((await folder.readText('config.json', signal)) !== undefined) {
    const indexText = await folder.readText(INDEX_FILE, signal);
    const weights = indexText === undefined ? [SINGLE_FILE] : [...new Set(parseIndex(`${source}/${INDEX_FILE}`, indexText).values())];
    await folder.prefetch(weights, signal);
  }
  return openModelFolder(folder, source, { signal, onProgress });
}
