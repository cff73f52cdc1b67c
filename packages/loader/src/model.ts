import { ModelNotFoundError } from './errors.js';
import { openModelFolder, type LoadProgress, type OpenedModel } from './open-folder.js';
import { isNode } from './runtime.js';

/** Options of {@link openModel}. Hub-only options are ignored by other sources. */
export interface OpenModelOptions {
  /** Hub revision (branch, tag or commit); `owner/name@rev` in the spec wins. Default 'main'. */
  revision?: string;
  signal?: AbortSignal;
  /** Bytes done/total per file and overall, for downloads and then for lazy tensor reads. */
  onProgress?: (p: LoadProgress) => void;
  /** Serve Hub models from the cache only (default: HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Hub token (default: HF_TOKEN, then the token file huggingface_hub writes). */
  token?: string;
  /** Hub endpoint (default: HF_ENDPOINT, then https://huggingface.co). */
  endpoint?: string;
  /** Hub cache folder (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** fetch implementation for Hub and URL sources (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[^\s@]+)?$/;

/**
 * Opens a Qwen2 model from any source: reads and validates config.json (and generation_config.json),
 * reads the tokenizer files, and opens the safetensors checkpoint for lazy reads.
 * @param spec - a local folder path, an http(s) URL of a folder, 'owner/name' or 'owner/name@revision' (Hub),
 *   a FileSystemDirectoryHandle, or the File[] of an `<input webkitdirectory>`
 * @param options - see {@link OpenModelOptions}
 * @throws {@link ModelNotFoundError} missing folder, repo, revision or file;
 *   {@link HubError} Hub unreachable, auth required, or not in the offline cache;
 *   {@link ConfigError}; {@link SafetensorsError}; the signal's reason when aborted
 */
export async function openModel(spec: string | FileSystemDirectoryHandle | File[], options: OpenModelOptions = {}): Promise<OpenedModel> {
  options.signal?.throwIfAborted();
  if (typeof spec !== 'string') throw new ModelNotFoundError(String(spec), 'browser sources are not supported yet');
  if (isNode()) {
    const { openLocalFolder, localPathExists } = await import('./node/local-folder.js');
    if (!HUB_ID.test(spec) || (await localPathExists(spec))) {
      return openModelFolder(await openLocalFolder(spec), spec, options);
    }
  }
  throw new ModelNotFoundError(spec, `${spec}: not a local folder`);
}
