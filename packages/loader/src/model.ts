import { ModelNotFoundError } from './errors.js';
import { directoryHandleFolder, filesFolder } from './browser/browser-folder.js';
import { HUB_ID, DEFAULT_ENDPOINT, parseHubSpec } from './hub/hub-spec.js';
import { openModelFolder, type LoadProgress, type OpenedModel } from './open-folder.js';
import { openRemoteModel } from './remote/open-remote.js';
import type { BrowserCacheOptions } from './browser/cached-url-folder.js';
import { isNode } from './runtime.js';
import { firstGgufPart, isGgufName } from './gguf/open-gguf.js';

/** A GGUF file of a Hub repository: `owner/name/path/to/file.gguf`, optionally `@revision`. */
const HUB_GGUF = /^([A-Za-z0-9][\w.-]*\/[\w.-]+)\/([^@\s]+\.gguf)(@[^\s@]+)?$/i;

/** Options of {@link openModel}. Hub-only options are ignored by other sources. */
export interface OpenModelOptions {
  /** Hub revision (branch, tag or commit); `owner/name@rev` in the spec wins. Default 'main'. */
  revision?: string;
  signal?: AbortSignal;
  /** Bytes done/total per file and overall: downloads first, then lazy tensor reads (phase 'read'). */
  onProgress?: (p: LoadProgress) => void;
  /** Serve Hub models from the cache only (default: HF_HUB_OFFLINE). Node only. */
  offline?: boolean;
  /**
   * Range requests in flight per large Hub file in Node (default 8; 1 downloads over one connection): a
   * CDN serves each connection at a fraction of a fast link, so a multi-gigabyte checkpoint arrives
   * sooner over several (as with huggingface_hub's hf_transfer). Chunks are written in order, so an
   * interrupted download resumes like huggingface_hub's. Memory: up to 8 MiB per connection.
   */
  downloadConnections?: number;
  /** Hub token (default in Node: HF_TOKEN, then the token file huggingface_hub writes). */
  token?: string;
  /** Hub endpoint (default: HF_ENDPOINT, then https://huggingface.co). */
  endpoint?: string;
  /** Hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). Node only. */
  cacheDir?: string;
  /** fetch implementation for Hub and URL sources (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /**
   * Cache URL and Hub downloads with the Cache API so a page reload does not download again. Default:
   * on in browsers (when `caches` exists), off in Node (where URL sources use Range reads and the Hub
   * uses the huggingface_hub cache on disk). `false` turns it off; an object picks the storage, cache
   * name or storage estimate.
   */
  browserCache?: boolean | BrowserCacheOptions;
}

function isFolderHandle(spec: unknown): spec is FileSystemDirectoryHandle {
  return typeof spec === 'object' && spec !== null && (spec as { kind?: string }).kind === 'directory' && typeof (spec as { getFileHandle?: unknown }).getFileHandle === 'function';
}

function browserCacheOption(options: OpenModelOptions): BrowserCacheOptions | undefined {
  const { browserCache } = options;
  if (browserCache === false) return undefined;
  if (typeof browserCache === 'object') return browserCache;
  if (browserCache === true) return {};
  return !isNode() && typeof (globalThis as { caches?: unknown }).caches === 'object' ? {} : undefined;
}

/**
 * The Hub without a file system (browsers): its resolve URLs serve CORS and redirects to a CDN, so the
 * Hub is a URL folder at `{endpoint}/{repo}/resolve/{revision}/`, cached with the Cache API when available.
 * @internal exported for tests
 */
export async function openHubOverHttp(spec: string, options: OpenModelOptions, gguf?: string): Promise<OpenedModel> {
  const ref = parseHubSpec(spec, options.revision);
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const base = `${endpoint}/${ref.repoId}/resolve/${encodeURIComponent(ref.revision)}/`;
  const { signal, onProgress } = options;
  const source = gguf === undefined ? `${ref.repoId}@${ref.revision}` : `${ref.repoId}/${gguf}@${ref.revision}`;
  return openRemoteModel(base, source, { fetch: options.fetch, signal, onProgress, cache: browserCacheOption(options), headers, gguf });
}

/** The one GGUF model among file names (the parts of a split one count as one), or undefined when there is none. */
function pickGguf(names: string[], where: string): string | undefined {
  const ggufs = names.filter(isGgufName).sort();
  if (ggufs.length === 0) return undefined;
  // A split model's parts count once, by their first part.
  const models = [...new Set(ggufs.map(firstGgufPart))];
  if (models.length > 1) {
    throw new ModelNotFoundError(where, `${where} has no config.json and ${models.length} GGUF models (${models.join(', ')}); name the file to open, e.g. ${where.replace(/\/+$/, '')}/${models[0]}`);
  }
  return models[0];
}

/** Names of the entries of a picked folder (none where the browser cannot list it). */
async function handleFileNames(dir: FileSystemDirectoryHandle): Promise<string[]> {
  const keys = (dir as unknown as { keys?: () => AsyncIterable<string> }).keys;
  const names: string[] = [];
  if (typeof keys === 'function') for await (const name of keys.call(dir)) names.push(name);
  return names;
}

/** A file path inside a Hub repository lands in the cache's snapshot folder under that path: no way out of it. */
function checkRepositoryPath(spec: string, file: string): void {
  if (file.split('/').some((part) => part === '' || part === '.' || part === '..' || part.includes('\\'))) {
    throw new ModelNotFoundError(spec, `'${spec}': the GGUF file's path inside the repository must not hold empty, '.' or '..' parts`);
  }
}

/** A spec naming one GGUF file: the folder it lies in and its name there. */
function splitFileSpec(spec: string): { dir: string; file: string } {
  const at = spec.lastIndexOf('/');
  return at < 0 ? { dir: '.', file: spec } : { dir: spec.slice(0, at) || '/', file: spec.slice(at + 1) };
}

/**
 * Opens a Qwen2 model from any source: reads and validates config.json (and generation_config.json),
 * reads the tokenizer files, and opens the safetensors checkpoint for lazy reads.
 * A GGUF model (llama.cpp's format) opens from the path or URL of its `.gguf` file (any part of a split
 * one), from `owner/name/file.gguf[@revision]` on the Hub (only that file is downloaded), or from a
 * folder without config.json holding one GGUF model.
 * @param spec - a local folder path, an http(s) URL of a folder, 'owner/name' or 'owner/name@revision' (Hub),
 *   a `.gguf` file's path or URL, 'owner/name/file.gguf[@revision]' (a Hub repository's GGUF file),
 *   a FileSystemDirectoryHandle, or the File[] of an `<input webkitdirectory>`
 * @param options - see {@link OpenModelOptions}
 * @returns the opened model; call `close()` when done
 * @throws {@link ModelNotFoundError} missing folder, repo, revision or file;
 *   {@link HubError} Hub unreachable (without a cached copy), access refused, failed download, not in the offline cache;
 *   {@link RemoteFileError} a URL source failed; {@link ConfigError}; {@link SafetensorsError};
 *   the signal's reason when aborted
 */
export async function openModel(spec: string | FileSystemDirectoryHandle | File[], options: OpenModelOptions = {}): Promise<OpenedModel> {
  options.signal?.throwIfAborted();
  const { signal, onProgress } = options;
  if (Array.isArray(spec)) {
    const folder = filesFolder(spec);
    const names = spec.map((f) => f.name);
    const gguf = names.includes('config.json') ? undefined : pickGguf(names, folder.source);
    return openModelFolder(folder, folder.source, { signal, onProgress, gguf });
  }
  if (isFolderHandle(spec)) {
    const folder = directoryHandleFolder(spec);
    const gguf = (await folder.readText('config.json', signal)) === undefined ? pickGguf(await handleFileNames(spec), spec.name) : undefined;
    return openModelFolder(folder, spec.name, { signal, onProgress, gguf });
  }
  if (typeof spec !== 'string') throw new TypeError('openModel: spec must be a path, URL, Hub id, FileSystemDirectoryHandle or File[]');
  const remote = { fetch: options.fetch, signal, onProgress, cache: browserCacheOption(options) };
  if (/^https?:\/\//i.test(spec)) {
    const url = new URL(spec);
    if (!isGgufName(url.pathname)) return openRemoteModel(spec, spec, remote);
    const { dir, file } = splitFileSpec(url.pathname);
    // The file's folder, with the link's query string (a signed link's signature), which the folder adds to its files.
    const base = new URL(`${dir}/`, url);
    base.search = url.search;
    return openRemoteModel(base.href, spec, { ...remote, gguf: decodeURIComponent(file) });
  }
  const hubGguf = HUB_GGUF.exec(spec);

  if (isNode()) {
    const { openLocalFolder, localPathExists, localFileNames, pathOf } = await import('./node/local-folder.js');
    const path = pathOf(spec);
    if (isGgufName(path) && (!hubGguf || (await localPathExists(path)))) {
      const { dir, file } = splitFileSpec(path.replace(/\\/g, '/'));
      return openModelFolder(await openLocalFolder(dir), spec, { signal, onProgress, gguf: file });
    }
    if (hubGguf) {
      checkRepositoryPath(spec, hubGguf[2]!);
      const { fetchHubSnapshot } = await import('./node/hub.js');
      const snapshot = await fetchHubSnapshot(`${hubGguf[1]}${hubGguf[3] ?? ''}`, { ...options, gguf: hubGguf[2] });
      return openModelFolder(await openLocalFolder(snapshot.dir), snapshot.source, { signal, onProgress, gguf: hubGguf[2] });
    }
    if (!HUB_ID.test(spec) || (await localPathExists(path))) {
      const folder = await openLocalFolder(path);
      // A folder of GGUF files (a downloaded GGUF repository) has no config.json.
      const gguf = (await folder.readText('config.json', signal)) === undefined ? pickGguf(await localFileNames(path), spec) : undefined;
      return openModelFolder(folder, spec, { signal, onProgress, gguf });
    }
    const { fetchHubSnapshot } = await import('./node/hub.js');
    let snapshot;
    try {
      snapshot = await fetchHubSnapshot(spec, options);
    } catch (e) {
      // 'models/qwen' may have been meant as a folder: say that none exists before blaming the Hub.
      if (e instanceof ModelNotFoundError && e.file === undefined) throw new ModelNotFoundError(spec, `${e.message}; there is no local folder '${path}' either`);
      throw e;
    }
    return openModelFolder(await openLocalFolder(snapshot.dir), snapshot.source, { signal, onProgress });
  }
  if (hubGguf) {
    checkRepositoryPath(spec, hubGguf[2]!);
    return openHubOverHttp(`${hubGguf[1]}${hubGguf[3] ?? ''}`, options, hubGguf[2]);
  }
  if (HUB_ID.test(spec)) return openHubOverHttp(spec, options);
  throw new ModelNotFoundError(spec, `${spec}: not a URL or Hub id (owner/name), and local folders need Node (in browsers pass a FileSystemDirectoryHandle or File[])`);
}
