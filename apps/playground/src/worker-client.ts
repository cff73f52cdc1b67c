/** The page's side of the worker protocol: requests as promises, streamed events as callbacks. */
import type { PromptMessage } from './conversation.js';
import type { ModelSource } from './model-source.js';
import type { ProgressEvent } from './progress.js';
import type { SamplingOptions } from './settings.js';
import type { BackendKind, KVCacheKind, LoadedInfo, ReplyStats, SerializedError, WeightDtype, WorkerEvent, WorkerRequest } from './worker/protocol.js';

/** The bits of `Worker` the client uses (a real Worker, or an in-process stand-in in tests). */
export interface WorkerLike {
  postMessage(message: WorkerRequest): void;
  addEventListener(type: 'message', listener: (e: { data: WorkerEvent }) => void): void;
  addEventListener(type: 'error', listener: (e: { message?: string }) => void): void;
}

/** An error the worker reported, keeping the original class name (ModelNotFoundError, HubError, ...). */
export class WorkerError extends Error {
  constructor(serialized: SerializedError) {
    super(serialized.message);
    this.name = serialized.name;
  }
}

interface Pending {
  resolve(e: Extract<WorkerEvent, { type: 'done' }>): void;
  reject(e: Error): void;
  onEvent?(e: WorkerEvent): void;
}

/** A reply being generated: its request id (to stop it) and its final stats. */
export interface ReplyHandle {
  readonly id: number;
  readonly done: Promise<ReplyStats>;
}

/** Talks to the inference worker. */
export class InferenceClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly worker: WorkerLike) {
    worker.addEventListener('message', (e) => this.receive(e.data));
    // A worker that fails to start or crashes fails everything in flight, with the browser's reason.
    worker.addEventListener('error', (e) => {
      const err = new WorkerError({ name: 'WorkerError', message: `the inference worker failed${e.message ? `: ${e.message}` : ''}` });
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  /**
   * Loads a model (replacing the current one).
   * @throws {@link WorkerError} with the loader's or backend's error name and message
   */
  async load(
    source: ModelSource,
    options: { backend: BackendKind; dtype: WeightDtype; kvCache?: KVCacheKind; threads: number },
    onProgress: (p: ProgressEvent) => void,
  ): Promise<{ id: number; done: Promise<LoadedInfo> }> {
    const id = this.nextId++;
    const done = this.request({ type: 'load', id, source, ...options }, (e) => {
      if (e.type === 'progress') onProgress(e.progress);
    }).then((e) => e.loaded!);
    return { id, done };
  }

  /** Starts a reply; `onToken` sees each token as it streams. */
  chat(messages: PromptMessage[], options: SamplingOptions, onToken: (tokenId: number, text: string, atMs: number) => void): ReplyHandle {
    const id = this.nextId++;
    const done = this.request({ type: 'chat', id, messages, options }, (e) => {
      if (e.type === 'token') onToken(e.tokenId, e.text, e.at);
    }).then((e) => e.reply!);
    return { id, done };
  }

  /** Aborts a load or reply; its own promise settles (a reply with finishReason 'abort'). */
  async stop(target: number): Promise<void> {
    const id = this.nextId++;
    await this.request({ type: 'stop', id, target });
  }

  /** Frees the loaded model. */
  async unload(): Promise<void> {
    const id = this.nextId++;
    await this.request({ type: 'unload', id });
  }

  private request(req: WorkerRequest, onEvent?: (e: WorkerEvent) => void): Promise<Extract<WorkerEvent, { type: 'done' }>> {
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject, ...(onEvent ? { onEvent } : {}) });
      this.worker.postMessage(req);
    });
  }

  private receive(e: WorkerEvent): void {
    const p = this.pending.get(e.id);
    if (!p) return;
    if (e.type === 'done') {
      this.pending.delete(e.id);
      p.resolve(e);
    } else if (e.type === 'error') {
      this.pending.delete(e.id);
      p.reject(new WorkerError(e.error));
    } else {
      p.onEvent?.(e);
    }
  }
}
