/**
 * The inference worker's logic, apart from the worker globals so that it can be tested in Node with any
 * implementation of its dependencies: one model at a time, one request of each kind at a time, every
 * request answered by exactly one `done` or `error` event.
 */
import type { ModelSource } from '../model-source.js';
import type { PromptMessage } from '../conversation.js';
import type { ProgressEvent } from '../progress.js';
import type { SamplingOptions } from '../settings.js';
import {
  serializeError,
  type BackendKind,
  type ChatRequest,
  type LoadRequest,
  type LoadedInfo,
  type MemoryUse,
  type KVCacheKind,
  type WeightDtype,
  type WorkerEvent,
  type WorkerRequest,
} from './protocol.js';

/** The parts of core's `Qwen2` the worker uses. */
export interface ChatModel {
  readonly config: { numHiddenLayers: number; hiddenSize: number; vocabSize: number };
  readonly tokenizer: { readonly hasChatTemplate: boolean };
  readonly backend: { readonly info: LoadedInfo['backend']; memory(): MemoryUse };
  readonly weightsBytes: number;
  /** How the matrices are stored (what 'auto' chose: the checkpoint's float format, or q4_0 / q8_0 for AWQ / GPTQ). */
  readonly weightFormat: string;
  chat(messages: PromptMessage[], options: SamplingOptions & { signal?: AbortSignal }): ChatStream;
  dispose(): Promise<void>;
}

/** core's `GenerationStream`. */
export interface ChatStream extends AsyncIterable<{ tokenId: number; text: string }> {
  readonly result: Promise<{
    ids: number[];
    text: string;
    finishReason: 'stop' | 'length' | 'abort';
    promptTokens: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
    timeToFirstTokenMs: number;
  }>;
}

/** How the engine reaches the loader, the backends and core. */
export interface EngineDeps {
  /** Opens the source, creates the backend and loads the weights onto it. */
  loadModel(
    source: ModelSource,
    options: { backend: BackendKind; dtype: WeightDtype; kvCache?: KVCacheKind; threads: number; signal: AbortSignal; onProgress: (p: ProgressEvent) => void },
  ): Promise<{ model: ChatModel; source: string }>;
  /** Milliseconds, monotonic. */
  now(): number;
  /**
   * Resolves after the event loop has run other tasks (a macrotask), so that messages from the page (a
   * stop) are received while a reply streams.
   */
  yieldToEventLoop(): Promise<void>;
}

/** Minimum time between two progress events sent to the page for unfinished files. */
export const PROGRESS_INTERVAL_MS = 50;

/**
 * Longest time a streaming reply keeps the worker's event loop busy before letting it take messages.
 * core's generation loop awaits only promises that are already resolved (microtasks) with a CPU backend,
 * so without this a stop request would wait in the queue until the whole reply was done.
 */
export const YIELD_INTERVAL_MS = 10;

/** Thrown for a chat before any model is loaded. */
export class NoModelError extends Error {
  override readonly name = 'NoModelError';
  constructor() {
    super('load a model first');
  }
}

/** Handles requests; `post` sends events to the page. */
export class Engine {
  private model: ChatModel | undefined;
  private readonly running = new Map<number, AbortController>();
  /** Loads and chats run one after another (a chat must not race a model swap). */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: EngineDeps,
    private readonly post: (e: WorkerEvent) => void,
  ) {}

  /** Takes one request from the page. Never throws: failures become `error` events. */
  handle(req: WorkerRequest): void {
    switch (req.type) {
      case 'stop':
        this.running.get(req.target)?.abort(new DOMException('stopped by the user', 'AbortError'));
        this.post({ type: 'done', id: req.id });
        return;
      case 'load':
        this.enqueue(req.id, (signal) => this.load(req, signal));
        return;
      case 'chat':
        this.enqueue(req.id, (signal) => this.chat(req, signal));
        return;
      case 'unload':
        this.enqueue(req.id, async () => {
          await this.unload();
          this.post({ type: 'done', id: req.id });
        });
        return;
    }
  }

  private enqueue(id: number, work: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController();
    this.running.set(id, controller);
    this.queue = this.queue.then(async () => {
      try {
        controller.signal.throwIfAborted();
        await work(controller.signal);
      } catch (e) {
        this.post({ type: 'error', id, error: serializeError(e) });
      } finally {
        this.running.delete(id);
      }
    });
  }

  private async unload(): Promise<void> {
    const old = this.model;
    this.model = undefined;
    await old?.dispose();
  }

  private async load(req: LoadRequest, signal: AbortSignal): Promise<void> {
    const start = this.deps.now();
    let lastProgress = -Infinity;
    // Free the old model first: two models may not fit in the browser's memory at once.
    await this.unload();
    const { model, source } = await this.deps.loadModel(req.source, {
      backend: req.backend,
      dtype: req.dtype,
      ...(req.kvCache ? { kvCache: req.kvCache } : {}),
      threads: req.threads,
      signal,
      onProgress: (progress) => {
        // Downloads report every network chunk (thousands for a real model): send at most one event per
        // PROGRESS_INTERVAL_MS, plus every file's last one, so the page renders what it can show.
        const t = this.deps.now();
        if (progress.loaded < progress.total && t - lastProgress < PROGRESS_INTERVAL_MS) return;
        lastProgress = t;
        this.post({ type: 'progress', id: req.id, progress });
      },
    });
    if (signal.aborted) {
      await model.dispose();
      signal.throwIfAborted();
    }
    this.model = model;
    const loaded: LoadedInfo = {
      source,
      backend: { ...model.backend.info, formats: [...model.backend.info.formats] },
      weightsBytes: model.weightsBytes,
      weightFormat: model.weightFormat,
      layers: model.config.numHiddenLayers,
      hiddenSize: model.config.hiddenSize,
      vocabSize: model.config.vocabSize,
      hasChatTemplate: model.tokenizer.hasChatTemplate,
      memory: { ...model.backend.memory() },
      loadMs: this.deps.now() - start,
    };
    this.post({ type: 'done', id: req.id, loaded });
  }

  private async chat(req: ChatRequest, signal: AbortSignal): Promise<void> {
    const model = this.model;
    if (!model) throw new NoModelError();
    const start = this.deps.now();
    const stream = model.chat(req.messages, { ...req.options, signal });
    let lastYield = start;
    for await (const chunk of stream) {
      const now = this.deps.now();
      this.post({ type: 'token', id: req.id, tokenId: chunk.tokenId, text: chunk.text, at: now - start });
      // The stream is paced by this loop: while it waits here, generation waits too.
      if (now - lastYield >= YIELD_INTERVAL_MS) {
        await this.deps.yieldToEventLoop();
        lastYield = this.deps.now();
      }
    }
    const r = await stream.result;
    this.post({
      type: 'done',
      id: req.id,
      reply: {
        ids: [...r.ids],
        text: r.text,
        finishReason: r.finishReason,
        promptTokens: r.promptTokens,
        prefillTokensPerSecond: r.prefillTokensPerSecond,
        decodeTokensPerSecond: r.decodeTokensPerSecond,
        timeToFirstTokenMs: r.timeToFirstTokenMs,
        memory: { ...model.backend.memory() },
      },
    });
  }
}
