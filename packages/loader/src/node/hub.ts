/**
 * Node-only: opens `owner/name[@revision]` from the Hugging Face Hub through the shared huggingface_hub
 * cache. Online: HEAD every file (cheap), download only blobs the cache lacks, link the snapshot.
 * Offline (HF_HUB_OFFLINE=1 or `offline: true`), or when the Hub cannot be reached: serve the cached snapshot.
 */
import { HubError, ModelNotFoundError } from '../errors.js';
import { parseHubSpec, resolveUrl, type HubRef } from '../hub/hub-spec.js';
import { INDEX_FILE, parseIndex, SINGLE_FILE } from '../checkpoint.js';
import { TOKENIZER_FILES, type LoadProgress } from '../open-folder.js';
import { DEFAULT_DOWNLOAD, DEFAULT_RETRY, downloadBlob, type RetryPolicy } from './hub-download.js';
import { hubSettings } from './hub-env.js';
import { headFile, HubUnreachableError, type FileMetadata, type HubRequestContext } from './hub-http.js';
import { exists, RepoCache } from './hub-cache.js';
import { withBlobLock } from './blob-lock.js';
import { readFile } from 'node:fs/promises';
import { ggufPartNames } from '../gguf/open-gguf.js';
import { join } from 'node:path';

/** Options for {@link fetchHubSnapshot}. */
export interface HubOpenOptions {
  revision?: string; signal?: AbortSignal; onProgress?: (p: LoadProgress) => void;
  offline?: boolean; token?: string; endpoint?: string; cacheDir?: string; fetch?: typeof fetch;
  /** Retries per file on dropped connections and 5xx (default 5 attempts, 500 ms doubling). */
  retry?: RetryPolicy;
  /** Range requests in flight per large file (default 8; 1 downloads over one connection). */
  downloadConnections?: number;
  /** @internal Bytes per Range request of a parallel download (default 8 MiB; tests use less). */
  downloadChunkBytes?: number;
}

/** The small files of a model, besides weights. config.json is required, the rest optional. */
const SIDE_FILES = ['config.json', 'generation_config.json', ...Object.values(TOKENIZER_FILES)];

/** A snapshot folder in the cache, ready to open as a local folder. */
export interface HubSnapshot { dir: string; commit: string; source: string; fromCache: boolean }

/**
 * Makes sure the files of a Hub model are in the cache and returns the snapshot folder.
 * @throws {@link ModelNotFoundError} unknown repo, revision, or required file;
 *   {@link HubError} unreachable Hub without a cached copy, refused access, failed download
 */
export async function fetchHubSnapshot(spec: string, options: HubOpenOptions & { gguf?: string } = {}): Promise<HubSnapshot> {
  const settings = hubSettings(options);
  const ref = parseHubSpec(spec, options.revision);
  const source = options.gguf === undefined ? `${ref.repoId}@${ref.revision}` : `${ref.repoId}/${options.gguf}@${ref.revision}`;
  const cache = new RepoCache(settings.cacheDir, ref.repoId);
  const { gguf } = options;
  if (settings.offline) return cachedSnapshot(cache, ref, source, options.offline ? 'offline mode is on' : 'HF_HUB_OFFLINE is set', gguf);
  const ctx: HubRequestContext = {
    endpoint: settings.endpoint, token: settings.token, fetch: options.fetch ?? globalThis.fetch, signal: options.signal, source,
    headRetryDelaysMs: [1, 4].map((k) => k * (options.retry ?? DEFAULT_RETRY).delayMs),
  };
  try {
    return gguf === undefined ? await downloadSnapshot(ctx, cache, ref, options) : await downloadGguf(ctx, cache, ref, gguf, options);
  } catch (e) {
    // Like huggingface_hub: no connection at all is not fatal when the cache already has the snapshot.
    if (e instanceof HubUnreachableError) {
      try {
        return await cachedSnapshot(cache, ref, source, 'the Hub is unreachable', gguf);
      } catch {
        throw new HubError(e.message, undefined, { cause: e.cause });
      }
    }
    throw e;
  }
}

async function cachedSnapshot(cache: RepoCache, ref: HubRef, source: string, why: string, gguf?: string): Promise<HubSnapshot> {
  const commit = await cache.commitFor(ref.revision);
  const dir = commit && cache.snapshot(commit);
  if (gguf !== undefined) {
    const parts = ggufPartNames(gguf);
    if (!commit || !dir || !(await Promise.all(parts.map((p) => exists(join(dir, p))))).every(Boolean)) {
      throw new HubError(`${source} is not in the Hugging Face cache at ${cache.root} and ${why}; download it once online or pass a local file with --model <file.gguf>`);
    }
    return { dir, commit, source, fromCache: true };
  }
  if (!commit || !dir || !(await exists(join(dir, 'config.json')))) {
    throw new HubError(`${source} is not in the Hugging Face cache at ${cache.root} and ${why}; download it once online or pass a local folder with --model <dir>`);
  }
  const hasWeights = (await exists(join(dir, INDEX_FILE))) || (await exists(join(dir, SINGLE_FILE)));
  if (!hasWeights) throw new HubError(`${source}: the cached snapshot ${dir} has no weights (${SINGLE_FILE} or ${INDEX_FILE}) and ${why}; download it once online`);
  return { dir, commit, source, fromCache: true };
}

async function downloadSnapshot(ctx: HubRequestContext, cache: RepoCache, ref: HubRef, options: HubOpenOptions): Promise<HubSnapshot> {
  // The first HEAD pins the commit; later files are fetched at that commit so a push in between cannot mix versions.
  const config = await headFile(ctx, ref, 'config.json');
  if (!config) throw new ModelNotFoundError(ctx.source, `${ctx.source} has no config.json on ${ctx.endpoint} (not a transformers model?)`, 'config.json');
  const pinned: HubRef = { repoId: ref.repoId, revision: config.commit };
  const wanted = new Map<string, FileMetadata>([['config.json', { ...config, url: resolveUrl(ctx.endpoint, pinned, 'config.json') }]]);
  const missing: string[] = [];
  const look = async (file: string): Promise<FileMetadata | undefined> => {
    const meta = await headFile(ctx, pinned, file);
    if (meta) wanted.set(file, meta);
    else missing.push(file);
    return meta;
  };
  for (const file of SIDE_FILES.slice(1)) await look(file);
  // Weights: the index (and its shards) when sharded, else the single file.
  let shards: string[] = [];
  const indexMeta = await look(INDEX_FILE);
  if (indexMeta) {
    await fetchBlobs(ctx, cache, pinned, new Map([[INDEX_FILE, indexMeta]]), options);
    const indexText = await readFile(cache.blob(indexMeta.etag), 'utf8');
    shards = [...new Set(parseIndex(`${ctx.source}/${INDEX_FILE}`, indexText).values())];
    for (const shard of shards) {
      if (!(await look(shard))) throw new ModelNotFoundError(ctx.source, `${ctx.source}: shard '${shard}' named by ${INDEX_FILE} is missing on ${ctx.endpoint}`, shard);
    }
  } else if (!(await look(SINGLE_FILE))) {
    throw new ModelNotFoundError(ctx.source, `${ctx.source} has no ${SINGLE_FILE} or ${INDEX_FILE} on ${ctx.endpoint} (only safetensors checkpoints are supported)`, SINGLE_FILE);
  }
  await fetchBlobs(ctx, cache, pinned, wanted, options);
  for (const [file, meta] of wanted) await cache.link(config.commit, file, meta.etag);
  for (const file of missing) await cache.markMissing(config.commit, file);
  await cache.writeRef(ref.revision, config.commit);
  return { dir: cache.snapshot(config.commit), commit: config.commit, source: ctx.source, fromCache: false };
}

/**
 * One GGUF file of a repository (all parts of a split one), not the whole repository: a GGUF repository
 * holds every quantization of the model (Qwen2-7B-Instruct-GGUF: 9 files, 60 GB).
 */
async function downloadGguf(ctx: HubRequestContext, cache: RepoCache, ref: HubRef, file: string, options: HubOpenOptions): Promise<HubSnapshot> {
  const parts = ggufPartNames(file);
  const first = await headFile(ctx, ref, parts[0]!);
  if (!first) throw new ModelNotFoundError(ctx.source, `${ctx.source}: no file '${parts[0]}' in ${ref.repoId} on ${ctx.endpoint}`, parts[0]);
  // The first HEAD pins the commit, as for a transformers model.
  const pinned: HubRef = { repoId: ref.repoId, revision: first.commit };
  const wanted = new Map<string, FileMetadata>([[parts[0]!, { ...first, url: resolveUrl(ctx.endpoint, pinned, parts[0]!) }]]);
  for (const part of parts.slice(1)) {
    const meta = await headFile(ctx, pinned, part);
    if (!meta) throw new ModelNotFoundError(ctx.source, `${ctx.source}: part '${part}' of the split model is missing on ${ctx.endpoint}`, part);
    wanted.set(part, meta);
  }
  await fetchBlobs(ctx, cache, pinned, wanted, options);
  for (const [name, meta] of wanted) await cache.link(first.commit, name, meta.etag);
  await cache.writeRef(ref.revision, first.commit);
  return { dir: cache.snapshot(first.commit), commit: first.commit, source: ctx.source, fromCache: false };
}

/** Downloads the blobs the cache lacks, reporting per-file and overall bytes. */
async function fetchBlobs(ctx: HubRequestContext, cache: RepoCache, ref: HubRef, files: Map<string, FileMetadata>, options: HubOpenOptions): Promise<void> {
  const todo: [string, FileMetadata][] = [];
  for (const [file, meta] of files) if (!(await exists(cache.blob(meta.etag)))) todo.push([file, meta]);
  const overallTotal = todo.reduce((sum, [, m]) => sum + m.size, 0);
  let finished = 0;
  for (const [file, meta] of todo) {
    const blob = cache.blob(meta.etag);
    // Another download of the same blob (other process or call) finishing first counts as ours.
    await withBlobLock(cache.lock(meta.etag), () => exists(blob), () => downloadBlob(ctx, ref, file, meta, blob, (loaded) => {
      options.onProgress?.({ file, loaded, total: meta.size, overallLoaded: finished + loaded, overallTotal, phase: 'download' });
    }, options.retry ?? DEFAULT_RETRY, {
      connections: Math.max(1, Math.floor(options.downloadConnections ?? DEFAULT_DOWNLOAD.connections)),
      chunkBytes: options.downloadChunkBytes ?? DEFAULT_DOWNLOAD.chunkBytes,
    }), ctx.signal);
    finished += meta.size;
  }
}
