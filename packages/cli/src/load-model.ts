/**
 * Opening a model for a command: the model source (local folder or Hub id, with download progress),
 * the backend, then core's `Qwen2.load` with load progress.
 */
import type { DtypeOption, KVCacheDtype, Qwen2, SpeculativeOptions } from '@qwen2-ts/core';
import type { LoadProgress, OpenedModel } from '@qwen2-ts/loader';
import { BACKEND_NAMES, selectBackend, type BackendName, type CudaOptions } from './backends.js';
import { MODEL_FLAGS, type Args } from './util/args.js';
import type { StatusOutput } from './util/progress.js';
import { CliError, UsageError } from './util/errors.js';
import { hasTokenizerFiles, tokenizerlessStandIn } from './no-tokenizer.js';
import type { SpeculativeFlags } from './speculative-flags.js';

export const DTYPES = ['auto', 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'] as const;

/** The model-related flags of a command, validated. */
export interface ModelFlags {
  spec: string;
  backend?: BackendName;
  dtype: DtypeOption;
  threads?: number;
  maxContext?: number;
  /** `--kv-cache`: how the KV cache stores keys and values. */
  kvCacheDtype?: KVCacheDtype;
  /** Sequences decoded at once (`qwen2 serve --parallel`); default 1. */
  parallel?: number;
  /** The cuda backend's options (`--prefill-precision`, `--programmatic-launch`). */
  cuda?: CudaOptions;
}

/**
 * Reads and checks `--model`, `--backend`, `--dtype`, `--threads`, `--max-context`, `--kv-cache`, and the cuda
 * backend's `--prefill-precision` and `--programmatic-launch` (refused with another backend).
 */
export function modelFlags(args: Args): ModelFlags {
  const flags: ModelFlags = {
    spec: args.requiredString('model', 'a local model folder or a Hugging Face id such as Qwen/Qwen2-0.5B-Instruct'),
    dtype: (args.choice('dtype', DTYPES) ?? 'auto') as DtypeOption,
  };
  const backend = args.choice('backend', BACKEND_NAMES);
  if (backend) flags.backend = backend;
  const threads = args.int('threads', undefined, 1, 1024);
  if (threads !== undefined) flags.threads = threads;
  const maxContext = args.int('max-context', undefined, 1);
  if (maxContext !== undefined) flags.maxContext = maxContext;
  const kvCache = args.choice('kv-cache', ['f32', 'f16'] as const);
  if (kvCache) flags.kvCacheDtype = kvCache;
  const cuda: CudaOptions = {};
  const given: string[] = [];
  const precision = args.choice('prefill-precision', ['f32', '16-bit'] as const);
  if (precision) {
    cuda.prefillPrecision = precision;
    given.push('--prefill-precision');
  }
  if (args.flag('programmatic-launch')) {
    cuda.programmaticDependentLaunch = true;
    given.push('--programmatic-launch');
  }
  if (given.length > 0) {
    if (backend && backend !== 'cuda') {
      throw new UsageError(`${given.join(' and ')} ${given.length > 1 ? 'apply' : 'applies'} to the cuda backend only (--backend ${backend} was given)`, args.command);
    }
    flags.cuda = cuda;
  }
  return flags;
}

export { MODEL_FLAGS };

/** Phase labels of load progress events (loader phases and whatever core adds). */
function phaseLabel(phase: string): string {
  switch (phase) {
    case 'download': return 'downloading';
    case 'read': return 'loading weights';
    default: return phase;
  }
}

/**
 * A progress callback that draws the loader's and core's progress events: per-file and overall bars
 * while downloading, one overall bar while reading/converting/uploading weights.
 */
export function loadProgressBars(status: StatusOutput): (p: LoadProgress | { phase: string; loaded?: number; total?: number; overallLoaded?: number; overallTotal?: number; file?: string }) => void {
  return (p) => {
    const overallDone = p.overallLoaded ?? p.loaded ?? 0;
    const overallTotal = p.overallTotal ?? p.total ?? 0;
    const lines = [];
    if (p.phase === 'download' && p.file) lines.push({ label: p.file, done: p.loaded ?? 0, total: p.total ?? 0 });
    lines.push({ label: p.phase === 'download' ? 'total' : phaseLabel(p.phase), done: overallDone, total: overallTotal });
    status.draw(lines, overallTotal > 0 && overallDone >= overallTotal);
  };
}

/** Opens the model source (folder, URL or Hub id), showing download progress. */
export async function openModelSource(spec: string, status: StatusOutput, signal?: AbortSignal): Promise<OpenedModel> {
  const { openModel } = await import('@qwen2-ts/loader');
  const bars = loadProgressBars(status);
  try {
    // Only downloads here: weight reads are reported by core's load, which also converts and uploads.
    return await openModel(spec, { onProgress: (p) => p.phase === 'download' && bars(p), ...(signal ? { signal } : {}) });
  } finally {
    status.done();
  }
}

/** A model ready to run, and what it took to get there. */
export interface LoadedModel {
  model: Qwen2;
  /** Wall time to read, convert and upload the weights and start the backend, in ms (downloads excluded). */
  loadMs: number;
  /**
   * The decoder matrices' format: the `--dtype` asked for, or for `auto` the checkpoint's own float format
   * (q4_0 / q8_0 for an AWQ or GPTQ checkpoint).
   */
  dtype: string;
  /** False when the model folder has no tokenizer files (token ids in and out only). */
  hasTokenizer: boolean;
  /** The speculative decoding options the flags asked for (with the loaded draft model), if any. */
  speculative?: SpeculativeOptions;
  /** Frees the model's device memory and closes its files. */
  dispose(): Promise<void>;
}

/**
 * Fails early, with the command line's wording, when a model cannot chat: no tokenizer files, or a
 * tokenizer without a chat template (a base model).
 */
export function requireChatTemplate(model: Qwen2, spec: string, usePlainPrompt: string): void {
  if (!model.tokenizer.hasChatTemplate) {
    throw new CliError(`${spec} has no chat template (tokenizer_config.json "chat_template"; a base model?): ${usePlainPrompt}`);
  }
}

/**
 * Opens a model and loads it onto a backend.
 * @throws the loader's typed errors (HubError, ModelNotFoundError, ...), core's, and CliError for a backend that cannot run
 */
export async function loadModel(flags: ModelFlags, status: StatusOutput, signal?: AbortSignal, speculative?: SpeculativeFlags): Promise<LoadedModel> {
  const opened = await openModelSource(flags.spec, status, signal);
  const started = performance.now();
  try {
    const backend = await selectBackend(
      flags.backend,
      { ...(flags.threads !== undefined ? { threads: flags.threads } : {}), ...(flags.cuda ? { cuda: flags.cuda } : {}) },
      (m) => status.note(m),
    );
    const { Qwen2 } = await import('@qwen2-ts/core');
    const { Qwen2Tokenizer } = await import('@qwen2-ts/tokenizer');
    const hasTokenizer = hasTokenizerFiles(opened.tokenizerFiles);
    let model: Qwen2;
    try {
      model = await Qwen2.load(opened, {
        backend,
        ...(hasTokenizer ? {} : { tokenizer: tokenizerlessStandIn(Qwen2Tokenizer, opened.source, opened.config.vocabSize) }),
        dtype: flags.dtype,
        ...(flags.maxContext !== undefined ? { maxContext: flags.maxContext } : {}),
        ...(flags.kvCacheDtype ? { kvCacheDtype: flags.kvCacheDtype } : {}),
        ...(flags.parallel !== undefined ? { parallel: flags.parallel } : {}),
        onProgress: loadProgressBars(status),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      await backend.dispose().catch(() => {});
      throw err;
    } finally {
      status.done();
    }
    let draft: Qwen2 | undefined;
    if (speculative?.draft) {
      try {
        draft = await loadDraftModel(model, speculative.draft, status, signal);
      } catch (err) {
        await model.dispose().catch(() => {});
        await backend.dispose().catch(() => {});
        throw err;
      }
    }
    return {
      model,
      loadMs: performance.now() - started,
      dtype: flags.dtype === 'auto' ? model.weightFormat : flags.dtype,
      hasTokenizer,
      ...(speculative ? { speculative: { draft: draft ?? 'prompt-lookup', ...(speculative.maxTokens !== undefined ? { maxTokens: speculative.maxTokens } : {}) } } : {}),
      async dispose() {
        await draft?.dispose();
        await model.dispose();
        // The CLI created the backend, so it frees it too (a no-op if the model already did).
        await backend.dispose().catch(() => {});
        await opened.close().catch(() => {});
      },
    };
  } catch (err) {
    await opened.close().catch(() => {});
    throw err;
  }
}

/**
 * Loads `--draft-model` on the model's backend, with the model's context size and KV cache storage, and checks before any
 * generation that it shares the model's tokenizer.
 */
async function loadDraftModel(model: Qwen2, draft: { spec: string; dtype: DtypeOption }, status: StatusOutput, signal?: AbortSignal): Promise<Qwen2> {
  const opened = await openModelSource(draft.spec, status, signal);
  try {
    if (!hasTokenizerFiles(opened.tokenizerFiles)) throw new CliError(`--draft-model ${draft.spec} has no tokenizer files: a draft must share the model's tokenizer`);
    const { Qwen2, sharedVocabulary } = await import('@qwen2-ts/core');
    const { Qwen2Tokenizer } = await import('@qwen2-ts/tokenizer');
    const tokenizer = Qwen2Tokenizer.fromFiles(opened.tokenizerFiles);
    try {
      sharedVocabulary(model.tokenizer, tokenizer);
    } catch (e) {
      throw new CliError(`--draft-model ${draft.spec}: ${(e as Error).message.replace(/^speculative: /, '')}`);
    }
    try {
      return await Qwen2.load(opened, {
        backend: model.backend,
        tokenizer,
        dtype: draft.dtype,
        maxContext: Math.min(model.maxContext, opened.config.maxPositionEmbeddings),
        kvCacheDtype: model.kvCacheDtype,
        onProgress: loadProgressBars(status),
        ...(signal ? { signal } : {}),
      });
    } finally {
      status.done();
    }
  } finally {
    await opened.close().catch(() => {});
  }
}
