import { openModel, type GenerationConfig, type OpenedModel, type Qwen2Config } from '@qwen2-ts/loader';
import { Qwen2Tokenizer, type ChatMessage, type TokenizerFiles } from '@qwen2-ts/tokenizer';
import type { Backend, DeviceTokens, KVCacheDtype, SamplingParams, Tensor, WeightFormat } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { ContextOverflowError } from '../errors.js';
import { loadModelWeights } from '../model/weights.js';
import { DEFAULT_MAX_CHUNK, Qwen2Model } from '../model/qwen2-model.js';
import type { KVSequence } from '../model/sequence.js';
import { CachedSequence } from '../model/cached-sequence.js';
import { DecodeBatcher } from '../generate/decode-batcher.js';
import { SequenceSlots } from './sequence-slots.js';
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
import { nextGuesses, promptLookup, SpeculationSchedule, type Proposer } from '../generate/speculative.js';
import { sharedVocabulary } from './draft-vocabulary.js';
import { checkGuesses, greedyGuesses, plainStep, type Choice } from './speculative-decoding.js';
import { createOpenAI, type OpenAIChat } from './openai.js';
import type { ChatOptions, GenerateOptions, GenerationChunk, GenerationResult, GenerationStream, LoadOptions, SpeculativeOptions } from './types.js';
import { chatOutput, messagesForTemplate, parseToolCalls } from './tool-calls.js';

/** Default KV cache capacity when `maxContext` is not given. */
const DEFAULT_CONTEXT = 4096;
/** Default `maxNewTokens`. */
const DEFAULT_MAX_NEW_TOKENS = 512;
/** Default `speculative.maxTokens`. */
const DEFAULT_SPECULATIVE_TOKENS = 8;
/** Default `speculative.ngram`. */
const DEFAULT_LOOKUP_NGRAM = 3;

/**
 * A loaded Qwen2 model: weights on a backend, its KV cache (one per sequence it generates at once, see
 * {@link LoadOptions.parallel}), the tokenizer, and generation.
 *
 * Calls are serialized, unless the model was loaded with `parallel` above 1: then generations decode
 * together in batches. A new prompt that starts with the tokens already in a cache (a chat continuing)
 * reuses their keys and values instead of recomputing them.
 */
export class Qwen2 {
  /** The OpenAI-shaped chat API: `model.openai.chat.completions.create({ messages, stream })`. */
  readonly openai: OpenAIChat;
  /** Bytes the weights take on the backend. */
  readonly weightsBytes: number;
  private readonly slots: SequenceSlots;
  private readonly batcher: DecodeBatcher;
  /** The sequence of the exclusive call running now (a draft model's, while its target drafts). */
  private exclusiveSlot: CachedSequence | undefined;
  private disposed = false;

  private constructor(
    readonly config: Qwen2Config,
    readonly tokenizer: Qwen2Tokenizer,
    readonly backend: Backend,
    readonly generationConfig: GenerationConfig | undefined,
    /** Where the model came from (path, URL or Hub id). */
    readonly source: string,
    private readonly model: Qwen2Model,
    seqs: KVSequence[],
    private readonly ownsBackend: boolean,
  ) {
    this.slots = new SequenceSlots(seqs.map((seq) => new CachedSequence(model, seq)));
    this.batcher = new DecodeBatcher(backend, model.maxChunk);
    this.weightsBytes = model.weights.bytes;
    this.openai = createOpenAI(this);
  }

  /**
   * Loads a model: opens it (folder, URL or Hub id, or an `OpenedModel` from `@qwen2-ts/loader`), builds the
   * tokenizer, converts and uploads the weights, and preallocates the KV cache.
   * @param spec - what `openModel` accepts (folder path, URL, Hub id, directory handle, File[]), or an
   *   already opened model (not closed by this call)
   * @param options - backend (default: the reference backend), dtype, maxContext, kvCacheDtype, tokenizer, progress, signal
   * @throws the loader's errors (ModelNotFoundError, HubError, ConfigError, SafetensorsError), TokenizerError,
   *   ModelWeightsError, WeightFormatError, RangeError for a bad maxContext, kvCacheDtype or parallel, or the
   *   signal's reason
   */
  static async load(spec: string | FileSystemDirectoryHandle | File[] | OpenedModel, options: LoadOptions = {}): Promise<Qwen2> {
    // Checked before anything is read: a typo should not surface after minutes of loading.
    if (options.kvCacheDtype !== undefined && options.kvCacheDtype !== 'f32' && options.kvCacheDtype !== 'f16') {
      throw new RangeError(`kvCacheDtype must be 'f32' or 'f16', got ${JSON.stringify(options.kvCacheDtype)}`);
    }
    const parallel = options.parallel ?? 1;
    const maxChunk = options.maxChunk ?? DEFAULT_MAX_CHUNK;
    if (!Number.isInteger(parallel) || parallel < 1 || parallel > maxChunk) {
      throw new RangeError(`parallel must be an integer from 1 to maxChunk (${maxChunk}), got ${String(options.parallel)}`);
    }
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
      const seqs: KVSequence[] = [];
      try {
        for (let i = 0; i < parallel; i++) seqs.push(model.createSequence(maxContext, options.kvCacheDtype ?? 'f32'));
      } catch (e) {
        for (const seq of seqs) seq.free();
        model.dispose();
        throw e;
      }
      return new Qwen2(config, tokenizer, backend, opened.generationConfig, opened.source, model, seqs, ownsBackend);
    } catch (e) {
      if (ownsBackend) await backend.dispose();
      throw e;
    } finally {
      // The weights now live on the backend; a model opened here has nothing more to read.
      if (!given) await opened.close();
    }
  }

  /**
   * How the decoder's matrices are stored (the `dtype` load option; for `'auto'`, the checkpoint's float
   * format, or q4_0 / q8_0 for a 4-bit / 8-bit AWQ or GPTQ checkpoint). Norms and biases are f32; a
   * matrix whose columns are not whole quantization blocks may keep a float format.
   */
  get weightFormat(): WeightFormat {
    const w = this.model.weights;
    return (w.layers[0]?.up ?? w.embed).format;
  }

  /** KV cache capacity in tokens (of each sequence's cache). */
  get maxContext(): number {
    return this.slots.all[0]!.capacity;
  }

  /** Sequences generated at once (the `parallel` load option). */
  get parallel(): number {
    return this.slots.all.length;
  }

  /** How the KV cache stores keys and values (the `kvCacheDtype` load option). */
  get kvCacheDtype(): KVCacheDtype {
    return this.slots.all[0]!.seq.cache.spec.dtype ?? 'f32';
  }

  /**
   * Bytes the KV caches occupy on the backend: every sequence's (`parallel` of them), all `maxContext`
   * positions (they are preallocated).
   */
  get kvCacheBytes(): number {
    return this.slots.all.reduce((sum, slot) => sum + slot.seq.cache.bytes, 0);
  }

  /**
   * Generates a continuation of `prompt` (text, encoded with special tokens recognized, or token ids).
   * Iterate the stream for chunks as they come; await it (or `.result`) for the whole response.
   * @throws (through the stream) ContextOverflowError when the prompt does not fit the context,
   *   RangeError on an empty prompt or invalid options
   */
  generate(prompt: string | number[], options: GenerateOptions = {}): GenerationStream {
    return createGenerationStream((emit) => {
      // Compiled before any work, so that a schema it cannot honour fails at once.
      const grammar = options.responseFormat === undefined ? undefined : compileResponseFormat(options.responseFormat);
      const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      return this.generation(ids, options, (slot, batch) => this.run(slot, batch, ids, options, emit, grammar));
    });
  }

  /**
   * Applies the tokenizer's chat template (with the generation prompt) and generates the reply.
   * @throws (through the stream) an Error when the tokenizer has no chat template
   */
  chat(messages: ChatMessage[], options: ChatOptions = {}): GenerationStream {
    return createGenerationStream((emit) => {
      const { tools: offered, grammar } = chatOutput(options);
      const ids = this.chatIds(messagesForTemplate(messages), offered);
      return this.generation(ids, options, async (slot, batch) => {
        const result = await this.run(slot, batch, ids, options, emit, grammar);
        const parsed = offered ? parseToolCalls(result.text) : undefined;
        return parsed ? { ...result, toolCalls: parsed.toolCalls } : result;
      });
    });
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
    return this.exclusive(ids, async (cache) => {
      if (options.allPositions) {
        cache.reset();
        return cache.forwardAll(ids);
      }
      return [await this.backend.read(cache.prefill(ids))];
    });
  }

  /**
   * Log-probabilities of each token of `continuation` after `prompt` (natural log), and their sum.
   * @throws RangeError when either part is empty; ContextOverflowError
   */
  score(prompt: string | number[], continuation: string | number[]): Promise<{ tokenLogprobs: number[]; total: number }> {
    return this.exclusive(typeof prompt === 'string' ? undefined : prompt, async (cache) => {
      const p = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      const c = typeof continuation === 'string' ? this.tokenizer.encode(continuation) : [...continuation];
      if (p.length === 0 || c.length === 0) throw new RangeError('score: the prompt and the continuation must each have at least one token');
      if (p.length + c.length - 1 > cache.capacity) throw new ContextOverflowError(0, p.length + c.length - 1, cache.capacity);
      const tokenLogprobs = [logSoftmaxAt(await this.backend.read(cache.prefill(p)), c[0]!)];
      if (c.length > 1) {
        // Each row reduced as its chunk is done: a long continuation holds no logits per position.
        const rest = c.slice(0, -1);
        await cache.forwardRows(rest, (row, i) => tokenLogprobs.push(logSoftmaxAt(row, c[i + 1]!)));
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
    return this.exclusive(undefined, async (cache) => {
      const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      if (ids.length === 0) throw new RangeError('promptLogprobs: the prompt is empty');
      if (!Number.isInteger(top) || top < 0 || top > 20) throw new RangeError(`top must be an integer from 0 to 20, got ${top}`);
      if (ids.length > cache.capacity) throw new ContextOverflowError(0, ids.length, cache.capacity);
      cache.reset();
      const logprobs: (TokenLogprob | null)[] = [null];
      // Row i predicts token i + 1; the last row predicts past the prompt and is not needed.
      await cache.forwardRows(ids, (row, i) => {
        if (i + 1 < ids.length) logprobs.push(tokenLogprob(row, ids[i + 1]!, top));
      });
      return { ids, logprobs };
    });
  }

  /** Frees the weights, cache and activations (and the backend when `load` created it). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.exclusive(undefined, async () => {
      this.disposed = true;
      for (const slot of this.slots.all) slot.free();
      this.model.dispose();
      if (this.ownsBackend) await this.backend.dispose();
    });
  }

  // ---- internals ------------------------------------------------------------------------------------

  /**
   * Runs `work` alone, after every call made before it, on the sequence whose cache holds most of `ids`.
   */
  private exclusive<T>(ids: readonly number[] | undefined, work: (cache: CachedSequence) => T | Promise<T>): Promise<T> {
    return this.slots.exclusive(ids, async (cache) => {
      if (this.disposed) throw new Error('this Qwen2 model was disposed');
      this.exclusiveSlot = cache;
      try {
        return await work(cache);
      } finally {
        this.exclusiveSlot = undefined;
      }
    });
  }

  /**
   * Runs a generation of `ids`: in the decoding batch, alongside others, when the model generates
   * several sequences at once; alone otherwise, and when it decodes speculatively (its passes check
   * several tokens of one sequence).
   */
  private generation<T>(ids: readonly number[], options: GenerateOptions, work: (cache: CachedSequence, batch: DecodeBatcher | undefined) => Promise<T>): Promise<T> {
    if (this.parallel === 1 || options.speculative !== undefined) return this.exclusive(ids, (cache) => work(cache, undefined));
    return this.slots.shared(ids, (cache) => {
      if (this.disposed) throw new Error('this Qwen2 model was disposed');
      return work(cache, this.batcher);
    });
  }

  /** Generates after `ids`; `grammar` is what the output must follow (`responseFormat`'s, or a required tool call). */
  private async run(cache: CachedSequence, batch: DecodeBatcher | undefined, ids: number[], options: GenerateOptions, emit: (c: GenerationChunk) => Promise<void>, grammar?: ValueNode): Promise<GenerationResult> {
    const start = performance.now();
    const maxNew = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`maxNewTokens must be an integer >= 0, got ${maxNew}`);
    const sampling = resolveSampling(options, this.generationConfig);
    const stopIds = new Set(options.stopTokenIds ?? []);
    if (!options.ignoreEos) {
      for (const id of this.generationConfig?.eosTokenIds ?? this.config.eosTokenIds) stopIds.add(id);
      if (this.tokenizer.eosTokenId !== undefined) stopIds.add(this.tokenizer.eosTokenId);
    }
    const speculation = options.speculative === undefined ? undefined : this.speculation(options.speculative);
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
    const reused = Math.min(cache.commonPrefix(ids), ids.length - 1);
    let firstTokenAt = 0;
    let lastTokenAt = 0;
    const signal = options.signal;
    let stoppedByString = false;
    let decodePasses = 0;
    const b = this.backend;
    const greedy = sampling.temperature === 0 && sampling.repetitionPenalty === 1 && sampling.presencePenalty === 0 && sampling.frequencyPenalty === 0;
    // A constraint, and log-probabilities, need each step's logits on the host.
    const onHost = constraint !== undefined || logprobs !== undefined;
    // A step recorded ahead on the device (see below) that a token ending the generation makes useless.
    let ahead: DeviceTokens | undefined;
    const takeBackAhead = (): void => {
      if (!ahead) return;
      ahead.ids().catch(() => {}); // nobody will read it
      cache.truncate(cache.length - 1);
      ahead = undefined;
    };

    /** Emits a chosen token; false when the generation ends with it (or at it, for a stop token). */
    const take = async ({ id, logprob }: Choice): Promise<boolean> => {
      lastTokenAt = performance.now();
      if (generated.length === 0) firstTokenAt = lastTokenAt;
      if (stopIds.has(id)) {
        finishReason = 'stop';
        takeBackAhead();
        return false;
      }
      generated.push(id);
      history.add(id);
      constraint?.accept(id);
      if (logprob) logprobs!.push(logprob);
      const piece = stopper.push(decoder.push(id));
      text += piece.text;
      const chunk = logprob ? { tokenId: id, text: piece.text, logprob } : { tokenId: id, text: piece.text };
      // In a batch the other generations' steps wait for this one's: a slow reader does not hold them.
      if (batch) void emit(chunk);
      else await emit(chunk);
      await yieldToEventLoop();
      if (piece.stopped) {
        finishReason = 'stop';
        stoppedByString = true;
        takeBackAhead();
        return false;
      }
      if (constraint?.finished) {
        // The document is whole and nothing may follow it: no step for an end-of-sequence token.
        finishReason = 'stop';
        return false;
      }
      // A step recorded ahead was recorded because this token is neither the last allowed nor the last
      // that fits. Otherwise the token just taken must still fit in the cache to be fed.
      if (!ahead && (generated.length >= maxNew || ids.length + generated.length - 1 >= cache.capacity)) return false;
      if (signal?.aborted) {
        finishReason = 'abort';
        takeBackAhead();
        return false;
      }
      return true;
    };

    /**
     * The token after one row of logits, drawn on the host (the backend's argmax and sample are these
     * same functions: its conformance suite), `past` being the tokens before it for the penalties;
     * undefined when the constraint's document is whole.
     */
    const chooseRow = (row: Float32Array, past: SamplingParams['history']): Choice | undefined => {
      const params = greedy ? 'greedy' as const : { ...sampling, history: past, uniform: rng.uniform() };
      const id = constraint ? constraint.choose(row, params) : params === 'greedy' ? argmax(row) : sampleFromLogits(row, params);
      if (id === undefined) return undefined;
      return logprobs ? { id, logprob: tokenLogprob(row, id, topLogprobs!) } : { id };
    };
    /** The token after logits on the backend: drawn there, unless the host needs the row. */
    const choose = async (logits: Tensor): Promise<Choice | undefined> => {
      if (onHost) return chooseRow(await b.read(logits), history.toParams());
      return {
        id: greedy
          ? (await b.argmax(logits))[0]!
          : await b.sample(logits, { ...sampling, history: history.toParams(), uniform: rng.uniform() }),
      };
    };

    let stats: GenerationResult['speculative'];
    if (signal?.aborted) finishReason = 'abort';
    else if (maxNew > 0 && speculation) {
      const decode = async (): Promise<void> => {
        stats = { proposed: 0, accepted: 0, checks: 0 };
        const first = await choose(cache.prefill(ids));
        if (!first) {
          finishReason = 'stop';
          return;
        }
        if (!(await take(first))) return;
        const { schedule, proposer } = speculation;
        const adapt = options.speculative!.adapt !== false;
        for (;;) {
          // The last token taken is not in the cache yet: it leads the next pass.
          const last = generated[generated.length - 1]!;
          const limit = Math.min(maxNew - generated.length - 1, cache.capacity - cache.length - 1);
          const { tokens: guesses, kind } = await nextGuesses(proposer, schedule, [...ids, ...generated], limit, adapt);
          const t0 = performance.now();
          const { decided, kept } = guesses.length === 0
            ? await plainStep(cache, last, choose)
            : await checkGuesses(cache, last, guesses, { greedy, onHost, constraint, chooseRow, history });
          schedule.recordPass(guesses.length + 1, performance.now() - t0);
          if (guesses.length > 0) {
            schedule.recordCheck(guesses.length, kept, kind);
            stats.proposed += guesses.length;
            stats.accepted += kept;
            stats.checks++;
          }
          if (decided.length === 0) {
            finishReason = 'stop';
            return;
          }
          for (const choice of decided) {
            decodePasses++;
            if (!(await take(choice))) return;
          }
        }
      };
      const draft = options.speculative!.draft;
      await (draft instanceof Qwen2 ? draft.exclusive(undefined, decode) : decode());
    } else if (maxNew > 0 && batch) {
      // The prompt (but the prefix the cache holds) as this generation's first step in the batch: fed a
      // part per pass beside the others' decoding steps when it is long.
      if (ids.length === 0) throw new RangeError('the prompt is empty: at least one token is needed');
      if (ids.length > cache.capacity) throw new ContextOverflowError(0, ids.length, cache.capacity);
      const member = batch.join(cache);
      try {
        cache.truncate(Math.min(cache.commonPrefix(ids), ids.length - 1));
        // An abort while the prompt is fed (a long one takes several passes) ends the generation there.
        let row = await member.step(ids.slice(cache.length), signal).catch((e: unknown) => {
          if (signal?.aborted) return undefined;
          throw e;
        });
        if (!row) finishReason = 'abort';
        while (row) {
          // Greedy picks come from one argmax of the whole pass, shared by its greedy generations.
          const next = greedy && !onHost ? { id: await row.argmax() } : await choose(row.logits);
          if (!next) {
            finishReason = 'stop';
            break;
          }
          if (!(await take(next))) break;
          row = await member.step([next.id]);
          decodePasses++;
        }
      } finally {
        member.leave();
      }
    } else if (maxNew > 0) {
      // On a backend that keeps the drawn token on its device, each step is recorded before the host has
      // read the token it embeds, so the device runs step n+1 while the host reads and emits token n. A
      // draw made before the host has its previous token counts that token in its history on the device.
      // A step recorded ahead of a token that ends the generation is taken back.
      const onDevice = !onHost && b.argmaxOnDevice !== undefined && b.embedOnDevice !== undefined && (greedy || b.sampleOnDevice !== undefined);
      const draw = (from: Tensor, previous?: DeviceTokens): DeviceTokens => greedy
        ? b.argmaxOnDevice!(from)
        : b.sampleOnDevice!(from, { ...sampling, history: history.toParams(), uniform: rng.uniform() }, previous);
      let logits = cache.prefill(ids);
      let drawn = onDevice ? draw(logits) : undefined;
      for (;;) {
        let next: Choice | undefined;
        if (drawn) {
          if (generated.length + 1 < maxNew && cache.length < cache.capacity && !signal?.aborted) {
            ahead = draw(cache.forwardOnDevice(drawn), drawn);
          }
          next = { id: (await drawn.ids())[0]! };
        } else {
          next = await choose(logits);
        }
        if (!next) {
          finishReason = 'stop';
          break;
        }
        if (!(await take(next))) break;
        if (ahead) {
          // The step recorded ahead fed this token before the host had read it.
          cache.settle(next.id);
          drawn = ahead;
          ahead = undefined;
        } else {
          logits = cache.forward([next.id]);
          if (onDevice) drawn = draw(logits);
        }
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
      ...(stats ? { speculative: stats } : {}),
    };
  }

  /** Checks speculative options and returns the schedule and the proposer they ask for. */
  private speculation(options: SpeculativeOptions): { schedule: SpeculationSchedule; proposer: Proposer } {
    const maxTokens = options.maxTokens ?? DEFAULT_SPECULATIVE_TOKENS;
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 64) throw new RangeError(`speculative.maxTokens must be an integer from 1 to 64, got ${maxTokens}`);
    const schedule = new SpeculationSchedule(maxTokens);
    const { draft } = options;
    if (draft === 'prompt-lookup') {
      const ngram = options.ngram ?? DEFAULT_LOOKUP_NGRAM;
      if (!Number.isInteger(ngram) || ngram < 1 || ngram > 16) throw new RangeError(`speculative.ngram must be an integer from 1 to 16, got ${ngram}`);
      // The kind of a guess is the length of the n-gram that matched: longer matches guess better.
      return { schedule, proposer: { cheap: true, propose: (context, max) => { const m = promptLookup(context, max, ngram); return { tokens: m.tokens, kind: m.matched }; } } };
    }
    if (!(draft instanceof Qwen2)) throw new TypeError(`speculative.draft must be 'prompt-lookup' or a loaded Qwen2 model, got ${typeof draft === 'string' ? JSON.stringify(draft) : typeof draft}`);
    if (draft === this) throw new RangeError('speculative.draft must be another model than the one generating');
    if (options.ngram !== undefined) throw new RangeError('speculative.ngram applies to prompt lookup, not to a draft model');
    if (draft.disposed) throw new Error('speculative.draft: this Qwen2 model was disposed');
    const shared = Math.min(sharedVocabulary(this.tokenizer, draft.tokenizer), this.config.vocabSize);
    return {
      schedule,
      proposer: {
        cheap: false,
        propose: async (context, max) => {
          const proposed = await draft.draftTokens(context, max);
          const outside = proposed.findIndex((id) => id >= shared);
          return { tokens: outside < 0 ? proposed : proposed.slice(0, outside), kind: 0 };
        },
      },
    };
  }

  /** @internal Speculative decoding's draft: up to `max` greedy tokens after `context` (the caller holds this model's turn). */
  draftTokens(context: readonly number[], max: number): Promise<number[]> {
    return greedyGuesses(this.exclusiveSlot!, this.backend, context, max);
  }
}

function isOpenedModel(spec: unknown): spec is OpenedModel {
  return typeof spec === 'object' && spec !== null && !Array.isArray(spec) && 'checkpoint' in spec && 'config' in spec;
}
