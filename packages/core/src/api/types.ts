import type { WeightFormat, Backend } from '../backend/types.js';
import type { OpenModelOptions } from '@qwen2-ts/loader';
import type { Qwen2Tokenizer, TokenizerFiles } from '@qwen2-ts/tokenizer';
import type { ResponseFormat } from '../constrain/json-schema.js';
import type { ToolCall, ToolChoice, ToolDefinition } from './tool-calls.js';
import type { TokenLogprob } from '../generate/logprobs.js';

/** Weight storage: 'auto' keeps the checkpoint's dtype (f32, f16 or bf16). */
export type DtypeOption = 'auto' | WeightFormat;

/** Options of `Qwen2.load`. */
export interface LoadOptions extends OpenModelOptions {
  /** Where to run (default: a new reference backend, which `dispose()` then disposes). */
  backend?: Backend;
  /** Weight storage format (default 'auto'). */
  dtype?: DtypeOption;
  /** KV cache capacity in tokens (default: min(max_position_embeddings, 4096)). */
  maxContext?: number;
  /** A tokenizer, or tokenizer files, to use instead of the model's own files. */
  tokenizer?: Qwen2Tokenizer | TokenizerFiles;
  /** Largest prefill chunk in tokens (default 256). */
  maxChunk?: number;
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
}

/** Streams chunks; `result` (and awaiting the stream itself) gives the final result. */
export interface GenerationStream extends AsyncIterable<GenerationChunk>, PromiseLike<GenerationResult> {
  readonly result: Promise<GenerationResult>;
}
