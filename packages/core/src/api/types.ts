import type { WeightFormat, Backend, KVCacheDtype } from '../backend/types.js';
import type { OpenModelOptions } from '@qwen2-ts/loader';
import type { Qwen2Tokenizer, TokenizerFiles } from '@qwen2-ts/tokenizer';
import type { ResponseFormat } from '../constrain/json-schema.js';
import type { ToolCall, ToolChoice, ToolDefinition } from './tool-calls.js';
import type { TokenLogprob } from '../generate/logprobs.js';
import type { Qwen2 } from './qwen2.js';

/**
 * Weight storage: 'auto' keeps the checkpoint's dtype (f32, f16 or bf16); for a pre-quantized AWQ or
 * GPTQ checkpoint (e.g. `Qwen/Qwen2.5-7B-Instruct-AWQ`) it stores the quantized layers as q4_0 (4 bits
 * or fewer) or q8_0 (8 bits), exactly wherever a block's values fit the format, and the float matrices
 * (embedding, lm_head) as q8_0. For a GGUF file, Q4_0 / Q8_0 tensors are copied into q4_0 / q8_0 and
 * Q4_K tensors (llama.cpp's Q4_K_M files) kept as q4_k on a backend that stores it (wasm and the
 * reference backend); other block types are quantized into q4_0 / q8_0 by bits. An explicit format
 * applies to every matrix, except 'q4_k', which keeps a GGUF file's Q4_K tensors and treats the rest
 * as 'auto' (float checkpoints cannot be quantized to q4_k).
 */
export type DtypeOption = 'auto' | WeightFormat;

/** Options of `Qwen2.load`. */
export interface LoadOptions extends OpenModelOptions {
  /** Where to run (default: a new reference backend, which `dispose()` then disposes). */
  backend?: Backend;
  /** Weight storage format (default 'auto'). */
  dtype?: DtypeOption;
  /** KV cache capacity in tokens (default: min(max_position_embeddings, 4096)). */
  maxContext?: number;
  /**
   * How the KV cache stores keys and values: `'f16'` takes half the memory of `'f32'` (so twice the
   * context fits) and half the bytes each generated token reads from the cache; each value is rounded
   * to the nearest half, which moves logits far less than any weight format but f32 does (see
   * {@link KVCacheDtype}). Default `'f32'`.
   */
  kvCacheDtype?: KVCacheDtype;
  /** A tokenizer, or tokenizer files, to use instead of the model's own files. */
  tokenizer?: Qwen2Tokenizer | TokenizerFiles;
  /** Largest prefill chunk in tokens (default 256). */
  maxChunk?: number;
  /**
   * Sequences generated at once (default 1). Above 1, concurrent `generate` and `chat` calls decode
   * together, one pass per step for all of them (continuous batching: a call joins the batch with its
   * prompt, prefilled in the same passes as the others' steps, at most `maxChunk` tokens per pass, and
   * leaves when it ends), so that serving several users costs little more per step than serving one. Each sequence has its own KV cache of `maxContext` tokens, so the caches take
   * `parallel` times the memory. A call waits for a free sequence; `logits`, `score`,
   * `promptLogprobs` and speculative generation run alone (they wait for the batch to drain). In a batch a
   * generation is not paced by the reader of its stream: its chunks queue up instead. At most `maxChunk`.
   */
  parallel?: number;
  /**
   * Most checkpoint bytes read ahead of the tensor being converted, so that reading (from disk or the
   * network) overlaps converting (default 128 MiB; 0 reads one tensor at a time). Adds at most this
   * much to the load's peak memory.
   */
  readAheadBytes?: number;
}

/** Options of `generate` and `chat`. Unset sampling options default to the model's generation_config. */
export interface GenerateOptions {
  /** Most tokens to generate (default 512, and never past the context). */
  maxNewTokens?: number;
  /** 0 is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Seed of the sampler (default: random). The same seed and inputs give the same tokens. */
  seed?: number;
  /** Generation stops before any of these strings; the text never includes them. */
  stop?: string[];
  /** More token ids that end generation (besides the eos ids of generation_config and the tokenizer). */
  stopTokenIds?: number[];
  /** Do not stop at eos tokens (explicit `stopTokenIds` still stop). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /**
   * Constrains the output: `{ type: 'json_object' }` gives a JSON object, `{ type: 'json_schema', schema }`
   * a JSON document valid against `schema` (a subset of JSON Schema: see {@link compileJsonSchema}).
   * Each step then reads the logits to the host and masks the tokens that would break the document;
   * generation ends as soon as the document is whole. Default `{ type: 'text' }`.
   */
  responseFormat?: ResponseFormat;
  /**
   * Report each generated token's log-probability under the model (log softmax of the raw logits),
   * with the `n` most likely tokens at its position when a number (0-20). Each step then reads the
   * logits to the host.
   */
  logprobs?: boolean | number;
  /**
   * Speculative decoding: something cheap proposes the next tokens and one pass of the model checks
   * them all, keeping those it would have chosen itself. The output is what it would be without (the
   * same tokens greedy, the same draws for a `seed`, up to the rounding of a pass of several tokens
   * against one of a single token); only the speed changes. See {@link SpeculativeOptions}.
   */
  speculative?: SpeculativeOptions;
}

/** Options of speculative decoding ({@link GenerateOptions.speculative}). */
export interface SpeculativeOptions {
  /**
   * What proposes tokens: `'prompt-lookup'` continues the latest earlier occurrence of the last few
   * tokens (of the prompt and the output so far; no second model: it pays when the output repeats its
   * input, as edits, extraction and code do), or a smaller loaded model with the same tokenizer (say
   * Qwen2-0.5B-Instruct for Qwen2-7B-Instruct), which proposes its greedy continuation. The draft model
   * is busy for the whole generation (its other calls wait) and its cache follows the text.
   */
  draft: 'prompt-lookup' | Qwen2;
  /**
   * Most tokens proposed in one step (default 8, at most 64). How many are proposed adapts, step by
   * step, to how often proposals are accepted and to what a pass of several tokens costs on the backend:
   * no more than pays (none, where checking costs more than it saves).
   */
  maxTokens?: number;
  /** Prompt lookup: the longest run of last tokens looked up (default 3; shorter runs are tried next). */
  ngram?: number;
  /**
   * `false` proposes `maxTokens` tokens at every step (as many as the proposer has) instead of adapting
   * the number: for comparisons, and for a backend whose costs the adaptation misjudges. Default true.
   */
  adapt?: boolean;
}

/** Options of `chat`: generation options, and the tools the model is offered. */
export interface ChatOptions extends GenerateOptions {
  /** Tools the chat template offers the model (OpenAI's shape; Qwen2.5's template lists them). */
  tools?: ToolDefinition[];
  /**
   * 'auto' (default): the model may answer or call tools; 'none': the tools are not offered;
   * 'required', or `{ type: 'function', function: { name } }`: the reply is one call (of that tool),
   * its arguments valid against the tool's `parameters` (constrained as `responseFormat` is).
   */
  toolChoice?: ToolChoice;
}

/**
 * One streamed piece of output. `text` is what became final with this token (possibly '': a token can
 * end inside a character, or text may be held back because it could begin a stop string). A last chunk
 * with `tokenId: -1` carries text released only when generation ended.
 */
export interface GenerationChunk {
  tokenId: number;
  text: string;
  /** With `logprobs`: the token's log-probability (and the top tokens), on chunks of generated tokens. */
  logprob?: TokenLogprob;
}

/** The whole response, with timing. */
export interface GenerationResult {
  /** Generated token ids (a stop token excluded). */
  ids: number[];
  text: string;
  finishReason: 'stop' | 'length' | 'abort';
  promptTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  timeToFirstTokenMs: number;
  /**
   * The calls in the reply when `chat` offered tools and the model wrote `<tool_call>` blocks (the text
   * keeps them as written).
   */
  toolCalls?: ToolCall[];
  /** With `logprobs`: one entry per generated token (`ids`), in order. */
  logprobs?: TokenLogprob[];
  /**
   * With `speculative`: tokens proposed and accepted over the generation, and the passes that checked
   * them (steps without proposals are plain passes and not counted).
   */
  speculative?: { proposed: number; accepted: number; checks: number };
}

/** Streams chunks; `result` (and awaiting the stream itself) gives the final result. */
export interface GenerationStream extends AsyncIterable<GenerationChunk>, PromiseLike<GenerationResult> {
  readonly result: Promise<GenerationResult>;
}
