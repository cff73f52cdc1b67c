import { openModel, type GenerationConfig, type OpenedModel, type Qwen2Config } from '@qwen2-ts/loader';
import { Qwen2Tokenizer, type ChatMessage, type TokenizerFiles } from '@qwen2-ts/tokenizer';
import type { Backend, DeviceTokens, Tensor } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { ContextOverflowError } from '../errors.js';
import { loadModelWeights } from '../model/weights.js';
import { Qwen2Model } from '../model/qwen2-model.js';
import type { KVSequence } from '../model/sequence.js';
import { TokenHistory } from '../sampling/history.js';
import { randomSeed, SeededRandom } from '../sampling/rng.js';
import { resolveSampling } from '../generate/sampling-options.js';
import { StopStringMatcher } from '../generate/stop-strings.js';
import { createGenerationStream } from '../generate/stream.js';
import { yieldToEventLoop } from '../generate/yield-to-event-loop.js';
import { JsonConstraint } from '../constrain/json-constraint.js';
import { logSoftmaxAt, tokenLogprob, type TokenLogprob } from '../generate/logprobs.js';
import { argmax } from '../argmax.js';
import { sampleFromLogits } from '../sampling/sample.js';
import { compileResponseFormat, type ValueNode } from '../constrain/json-schema.js';
import { TokenVocabulary } from '../constrain/token-vocabulary.js';
import { createOpenAI, type OpenAIChat } from './openai.js';
import type { ChatOptions, GenerateOptions, GenerationChunk, GenerationResult, GenerationStream, LoadOptions } from './types.js';
import { chatOutput, messagesForTemplate, parseToolCalls } from './tool-calls.js';

/** Default KV cache capacity when `maxContext` is not given. */
const DEFAULT_CONTEXT = 4096;
/** Default `maxNewTokens`. */
const DEFAULT_MAX_NEW_TOKENS = 512;

/**
 * A loaded Qwen2 model: weights on a backend, one KV cache, the tokenizer, and generation.
 *
 * Calls are serialized (one sequence, one cache); a new prompt that starts with the tokens already in
 * the cache (a chat continuing) reuses their keys and values instead of recomputing them.
 */
export class Qwen2 {
  /** The OpenAI-shaped chat API: `model.openai.chat.completions.create({ messages, stream })`. */
  readonly openai: OpenAIChat;
  /** Bytes the weights take on the backend. */
  readonly weightsBytes: number;
  private readonly cached: number[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(
    readonly config: Qwen2Config,
    readonly tokenizer: Qwen2Tokenizer,
    readonly backend: Backend,
    readonly generationConfig: GenerationConfig | undefined,
    /** Where the model came from (path, URL or Hub id). */
    readonly source: string,
    private readonly model: Qwen2Model,
    private readonly seq: KVSequence,
    private readonly ownsBackend: boolean,
  ) {
    this.weightsBytes = model.weights.bytes;
    this.openai = createOpenAI(this);
  }

  /**
   * Loads a model: opens it (folder, URL or Hub id, or an `OpenedModel` from `@qwen2-ts/loader`), builds the
   * tokenizer, converts and uploads the weights, and preallocates the KV cache.
   * @param spec - what `openModel` accepts (folder path, URL, Hub id, directory handle, File[]), or an
   *   already opened model (not closed by this call)
   * @param options - backend (default: the reference backend), dtype, maxContext, tokenizer, progress, signal
   * @throws the loader's errors (ModelNotFoundError, HubError, ConfigError, SafetensorsError), TokenizerError,
   *   ModelWeightsError, WeightFormatError, RangeError for a bad maxContext, or the signal's reason
   */
  static async load(spec: string | FileSystemDirectoryHandle | File[] | OpenedModel, options: LoadOptions = {}): Promise<Qwen2> {
    const given = isOpenedModel(spec);
    const opened = given ? spec : await openModel(spec, options);
    const ownsBackend = !options.backend;
    const backend = options.backend ?? new ReferenceBackend();
    try {
      const t = options.tokenizer;
      // A tokenizer object (duck-typed, so a copy of the class from another bundle works too) or files.
      const tokenizer = t instanceof Qwen2Tokenizer || typeof (t as { encode?: unknown } | undefined)?.encode === 'function'
        ? (t as Qwen2Tokenizer)
        : Qwen2Tokenizer.fromFiles((t as TokenizerFiles | undefined) ?? opened.tokenizerFiles);
      const config = opened.config;
      const maxContext = options.maxContext ?? Math.min(config.maxPositionEmbeddings, DEFAULT_CONTEXT);
      let overall = 0;
      const weights = await loadModelWeights(opened.checkpoint, config, backend, {
        format: options.dtype ?? 'auto',
        signal: options.signal,
        readAheadBytes: options.readAheadBytes,
        // A model opened here reports its own reads through the loader; one handed in is reported here.
        onProgress: !given || !options.onProgress ? undefined : (p) => {
          overall = p.loaded;
          options.onProgress!({ file: p.tensor, loaded: p.loaded, total: p.total, overallLoaded: overall, overallTotal: p.total, phase: 'read' });
        },
      });
      const model = new Qwen2Model(backend, config, weights, { maxChunk: options.maxChunk });
      let seq: KVSequence;
      try {
        seq = model.createSequence(maxContext);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return new Qwen2(config, tokenizer, backend, opened.generationConfig, opened.source, model, seq, ownsBackend);
    } catch (e) {
      if (ownsBackend) await backend.dispose();
      throw e;
    } finally {
      // The weights now live on the backend; a model opened here has nothing more to read.
      if (!given) await opened.close();
    }
  }

  /** KV cache capacity in tokens. */
  get maxContext(): number {
    return this.seq.capacity;
  }

  /**
   * Generates a continuation of `prompt` (text, encoded with special tokens recognized, or token ids).
   * Iterate the stream for chunks as they come; await it (or `.result`) for the whole response.
   * @throws (through the stream) ContextOverflowError when the prompt does not fit the context,
   *   RangeError on an empty prompt or invalid options
   */
  generate(prompt: string | number[], options: GenerateOptions = {}): GenerationStream {
    return createGenerationStream((emit) => this.exclusive(() => {
      // Compiled before any work, so that a schema it cannot honour fails at once.
      const grammar = options.responseFormat === undefined ? undefined : compileResponseFormat(options.responseFormat);
      const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      return this.run(ids, options, emit, grammar);
    }));
  }

  /**
   * Applies the tokenizer's chat template (with the generation prompt) and generates the reply.
   * @throws (through the stream) an Error when the tokenizer has no chat template
   */
  chat(messages: ChatMessage[], options: ChatOptions = {}): GenerationStream {
    return createGenerationStream((emit) => this.exclusive(async () => {
      const { tools: offered, grammar } = chatOutput(options);
      const ids = this.chatIds(messagesForTemplate(messages), offered);
      const result = await this.run(ids, options, emit, grammar);
      const parsed = offered ? parseToolCalls(result.text) : undefined;
      return parsed ? { ...result, toolCalls: parsed.toolCalls } : result;
    }));
  }

  /** @internal the prompt ids of a chat */
  chatIds(messages: ChatMessage[], tools?: unknown[]): number[] {
    if (!this.tokenizer.hasChatTemplate) throw new Error(`${this.source}: the tokenizer has no chat template (tokenizer_config.json chat_template); use generate() with a plain prompt`);
    const text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, ...(tools ? { tools } : {}) });
    return this.tokenizer.encode(text);
  }

  /**
   * Logits of the last position of `ids`, or of every position with `allPositions`.
   * @throws ContextOverflowError, RangeError on an empty input or an id outside the vocabulary
   */
  logits(ids: number[], options: { allPositions?: boolean } = {}): Promise<Float32Array[]> {
    return this.exclusive(async () => {
      if (options.allPositions) {
        this.resetCache();
        const rows = await this.model.forwardAll(this.seq, ids);
        this.cached.push(...ids);
        return rows;
      }
      return [await this.backend.read(this.prefill(ids))];
    });
  }

  /**
   * Log-probabilities of each token of `continuation` after `prompt` (natural log), and their sum.
   * @throws RangeError when either part is empty; ContextOverflowError
   */
  score(prompt: string | number[], continuation: string | number[]): Promise<{ tokenLogprobs: number[]; total: number }> {
    return this.exclusive(async () => {
      const p = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      const c = typeof continuation === 'string' ? this.tokenizer.encode(continuation) : [...continuation];
      if (p.length === 0 || c.length === 0) throw new RangeError('score: the prompt and the continuation must each have at least one token');
      if (p.length + c.length - 1 > this.seq.capacity) throw new ContextOverflowError(0, p.length + c.length - 1, this.seq.capacity);
      const tokenLogprobs = [logSoftmaxAt(await this.backend.read(this.prefill(p)), c[0]!)];
      if (c.length > 1) {
        // Each row reduced as its chunk is done: a long continuation holds no logits per position.
        const rest = c.slice(0, -1);
        await this.model.forwardRows(this.seq, rest, (row, i) => tokenLogprobs.push(logSoftmaxAt(row, c[i + 1]!)));
        this.cached.push(...rest);
      }
      return { tokenLogprobs, total: tokenLogprobs.reduce((a, b) => a + b, 0) };
    });
  }

  /**
   * Log-probability of each token of `prompt` after the ones before it (the first has none: null), with
   * the `top` most likely tokens at each position: what OpenAI's `echo` with `logprobs` reports, for
   * evaluation harnesses. Rows are reduced chunk by chunk, so long prompts need no memory per position.
   * @throws RangeError on an empty prompt or `top` outside 0-20; ContextOverflowError
   */
  promptLogprobs(prompt: string | number[], top = 0): Promise<{ ids: number[]; logprobs: (TokenLogprob | null)[] }> {
    return this.exclusive(async () => {
      const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      if (ids.length === 0) throw new RangeError('promptLogprobs: the prompt is empty');
      if (!Number.isInteger(top) || top < 0 || top > 20) throw new RangeError(`top must be an integer from 0 to 20, got ${top}`);
      if (ids.length > this.seq.capacity) throw new ContextOverflowError(0, ids.length, this.seq.capacity);
      this.resetCache();
      const logprobs: (TokenLogprob | null)[] = [null];
      // Row i predicts token i + 1; the last row predicts past the prompt and is not needed.
      await this.model.forwardRows(this.seq, ids, (row, i) => {
        if (i + 1 < ids.length) logprobs.push(tokenLogprob(row, ids[i + 1]!, top));
      });
      this.cached.push(...ids);
      return { ids, logprobs };
    });
  }

  /** Frees the weights, cache and activations (and the backend when `load` created it). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.exclusive(async () => {
      this.disposed = true;
      this.seq.free();
      this.model.dispose();
      if (this.ownsBackend) await this.backend.dispose();
    });
  }

  // ---- internals ------------------------------------------------------------------------------------

  /** Runs calls one at a time, in order. */
  private exclusive<T>(work: () => T | Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.disposed) throw new Error('this Qwen2 model was disposed');
      return work();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private resetCache(): void {
    this.seq.truncate(0);
    this.cached.length = 0;
  }

  /**
   * Feeds `ids`, reusing the cached prefix they share with the previous call, and returns the last
   * position's logits (on the backend).
   */
  private prefill(ids: number[]): Tensor {
    if (ids.length === 0) throw new RangeError('the prompt is empty: at least one token is needed');
    if (ids.length > this.seq.capacity) throw new ContextOverflowError(0, ids.length, this.seq.capacity);
    let common = 0;
    while (common < this.cached.length && common < ids.length && this.cached[common] === ids[common]) common++;
    if (common === ids.length) common--; // the last token must run again to give its logits
    this.seq.truncate(common);
    this.cached.length = common;
    const rest = ids.slice(common);
    try {
      const logits = this.model.forward(this.seq, rest);
      this.cached.push(...rest);
      return logits;
    } catch (e) {
      this.resetCache();
      throw e;
    }
  }

  /** Generates after `ids`; `grammar` is what the output must follow (`responseFormat`'s, or a required tool call). */
  private async run(ids: number[], options: GenerateOptions, emit: (c: GenerationChunk) => Promise<void>, grammar?: ValueNode): Promise<GenerationResult> {
    const start = performance.now();
    const maxNew = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`maxNewTokens must be an integer >= 0, got ${maxNew}`);
    const sampling = resolveSampling(options, this.generationConfig);
    const stopIds = new Set(options.stopTokenIds ?? []);
    if (!options.ignoreEos) {
      for (const id of this.generationConfig?.eosTokenIds ?? this.config.eosTokenIds) stopIds.add(id);
      if (this.tokenizer.eosTokenId !== undefined) stopIds.add(this.tokenizer.eosTokenId);
    }
    const constraint = grammar && new JsonConstraint(grammar, TokenVocabulary.of(this.tokenizer, this.config.vocabSize), stopIds);
    const topLogprobs = options.logprobs === true ? 0 : options.logprobs === false ? undefined : options.logprobs;
    if (topLogprobs !== undefined && (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > 20)) {
      throw new RangeError(`logprobs must be a boolean or an integer from 0 to 20, got ${String(options.logprobs)}`);
    }
    const logprobs: TokenLogprob[] | undefined = topLogprobs === undefined ? undefined : [];
    const rng = new SeededRandom(options.seed ?? randomSeed());
    const history = new TokenHistory(ids);
    const decoder = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    const stopper = new StopStringMatcher(options.stop ?? []);
    const generated: number[] = [];
    let text = '';
    let finishReason: GenerationResult['finishReason'] = 'length';
    const reused = Math.min(this.commonPrefix(ids), ids.length - 1);
    let firstTokenAt = 0;
    let lastTokenAt = 0;
    const signal = options.signal;
    let stoppedByString = false;
    let decodePasses = 0;

    if (signal?.aborted) finishReason = 'abort';
    else if (maxNew > 0) {
      const b = this.backend;
      const greedy = sampling.temperature === 0 && sampling.repetitionPenalty === 1 && sampling.presencePenalty === 0 && sampling.frequencyPenalty === 0;
      // On a backend that keeps the drawn token on its device, each step is recorded before the host has
      // read the token it embeds, so the device runs step n+1 while the host reads and emits token n. A
      // draw made before the host has its previous token counts that token in its history on the device.
      // A step recorded ahead of a token that ends the generation is taken back.
      // A constraint, and log-probabilities, need each step's logits on the host.
      const onDevice = !constraint && !logprobs && b.argmaxOnDevice !== undefined && b.embedOnDevice !== undefined && (greedy || b.sampleOnDevice !== undefined);
      const draw = (from: Tensor, previous?: DeviceTokens): DeviceTokens => greedy
        ? b.argmaxOnDevice!(from)
        : b.sampleOnDevice!(from, { ...sampling, history: history.toParams(), uniform: rng.uniform() }, previous);
      let logits = this.prefill(ids);
      let drawn = onDevice ? draw(logits) : undefined;
      let ahead: DeviceTokens | undefined;
      const takeBackAhead = (): void => {
        if (!ahead) return;
        ahead.ids().catch(() => {}); // nobody will read it
        this.seq.truncate(this.seq.length - 1);
        ahead = undefined;
      };
      for (;;) {
        let next: number;
        let logprob: TokenLogprob | undefined;
        if (constraint || logprobs) {
          // On the host: the backend's argmax and sample are these same functions (its conformance suite).
          const row = await b.read(logits);
          const params = greedy ? 'greedy' as const : { ...sampling, history: history.toParams(), uniform: rng.uniform() };
          const chosen = constraint ? constraint.choose(row, params) : params === 'greedy' ? argmax(row) : sampleFromLogits(row, params);
          if (chosen === undefined) {
            finishReason = 'stop';
            break;
          }
          next = chosen;
          if (logprobs) logprob = tokenLogprob(row, next, topLogprobs!);
        } else if (drawn) {
          if (generated.length + 1 < maxNew && this.seq.length < this.seq.capacity && !signal?.aborted) {
            ahead = draw(this.model.forwardOnDevice(this.seq, drawn), drawn);
          }
          next = (await drawn.ids())[0]!;
        } else {
          next = greedy
            ? (await b.argmax(logits))[0]!
            : await b.sample(logits, { ...sampling, history: history.toParams(), uniform: rng.uniform() });
        }
        lastTokenAt = performance.now();
        if (generated.length === 0) firstTokenAt = lastTokenAt;
        if (stopIds.has(next)) {
          finishReason = 'stop';
          takeBackAhead();
          break;
        }
        generated.push(next);
        history.add(next);
        constraint?.accept(next);
        if (logprob) logprobs!.push(logprob);
        const piece = stopper.push(decoder.push(next));
        text += piece.text;
        await emit(logprob ? { tokenId: next, text: piece.text, logprob } : { tokenId: next, text: piece.text });
        await yieldToEventLoop();
        if (piece.stopped) {
          finishReason = 'stop';
          stoppedByString = true;
          takeBackAhead();
          break;
        }
        if (constraint?.finished) {
          // The document is whole and nothing may follow it: no step for an end-of-sequence token.
          finishReason = 'stop';
          break;
        }
        // A step recorded ahead was recorded because this token is neither the last allowed nor the last that fits.
        if (!ahead && (generated.length >= maxNew || this.seq.length >= this.seq.capacity)) break;
        if (signal?.aborted) {
          finishReason = 'abort';
          takeBackAhead();
          break;
        }
        if (ahead) {
          drawn = ahead;
          ahead = undefined;
        } else {
          logits = this.model.forward(this.seq, [next]);
          if (onDevice) drawn = draw(logits);
        }
        this.cached.push(next);
        decodePasses++;
      }
    }
    if (!stoppedByString) {
      const rest = stopper.push(decoder.flush());
      const tail = rest.stopped ? rest.text : rest.text + stopper.flush();
      if (rest.stopped) finishReason = 'stop';
      if (tail) {
        text += tail;
        await emit({ tokenId: -1, text: tail });
      }
    }
    const prefillMs = firstTokenAt ? firstTokenAt - start : 0;
    const decodeMs = lastTokenAt - firstTokenAt;
    return {
      ids: generated,
      text,
      finishReason,
      promptTokens: ids.length,
      prefillTokensPerSecond: prefillMs > 0 ? ((ids.length - reused) / prefillMs) * 1000 : 0,
      decodeTokensPerSecond: decodeMs > 0 ? (decodePasses / decodeMs) * 1000 : 0,
      timeToFirstTokenMs: prefillMs,
      ...(logprobs ? { logprobs } : {}),
    };
  }

  private commonPrefix(ids: number[]): number {
    let n = 0;
    while (n < this.cached.length && n < ids.length && this.cached[n] === ids[n]) n++;
    return n;
  }
}

function isOpenedModel(spec: unknown): spec is OpenedModel {
  return typeof spec === 'object' && spec !== null && !Array.isArray(spec) && 'checkpoint' in spec && 'config' in spec;
}
