/**
 * The real dependencies of the worker's engine: the loader opens the source (downloading into the
 * browser cache), a backend is created, and core converts and uploads the weights onto it.
 */
import { Qwen2, type Backend } from '@qwen2-ts/core';
import { openModel } from '@qwen2-ts/loader';
import type { ModelSource } from '../model-source.js';
import type { ChatModel, EngineDeps } from './engine.js';
import type { BackendKind } from './protocol.js';

/** The spec `openModel` takes for a page source. */
function specOf(source: ModelSource): string | FileSystemDirectoryHandle | File[] {
  switch (source.kind) {
    case 'hub':
      return source.id;
    case 'url':
      return source.url;
    case 'directory':
      return source.handle;
    case 'files':
      return source.files;
  }
}

/** Creates a backend; each is imported only when chosen, so the other's code is never loaded. */
async function createBackend(kind: BackendKind, threads: number): Promise<Backend> {
  if (kind === 'webgpu') {
    const { webgpuBackend } = await import('@qwen2-ts/backend-webgpu');
    return webgpuBackend();
  }
  const { wasmBackend } = await import('@qwen2-ts/backend-wasm');
  return wasmBackend({ threads });
}

/** Opens, creates the backend, loads; on failure frees what was made. */
export const loadModel: EngineDeps['loadModel'] = async (source, { backend: kind, dtype, kvCache, threads, signal, onProgress }) => {
  // Progress comes from the loader only: downloads, then the checkpoint reads core makes while loading
  // (per file, so the bar's bytes are the files'); core's own per-tensor events would repeat the reads.
  const opened = await openModel(specOf(source), { signal, onProgress });
  let backend: Backend | undefined;
  try {
    backend = await createBackend(kind, threads);
    signal.throwIfAborted();
    const model = await Qwen2.load(opened, { backend, dtype, kvCacheDtype: kvCache ?? 'f32', signal });
    const owned = backend;
    const chatModel: ChatModel = {
      config: model.config,
      tokenizer: model.tokenizer,
      backend: model.backend,
      weightsBytes: model.weightsBytes,
      weightFormat: model.weightFormat,
      chat: (messages, options) => model.chat(messages, options),
      // Qwen2 frees what it made; the backend and the opened files are ours to release.
      async dispose() {
        await model.dispose();
        await owned.dispose();
        await opened.close();
      },
    };
    return { model: chatModel, source: opened.source };
  } catch (e) {
    await backend?.dispose().catch(() => {});
    await opened.close().catch(() => {});
    throw e;
  }
};
