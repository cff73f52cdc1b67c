import { ConfigError } from './errors.js';
import { parseQuantizationConfig, type QuantizationConfig } from './quantization-config.js';

export { ConfigError };

/** A Qwen2 / Qwen2.5 model configuration (Hugging Face `config.json`), with defaults applied as `transformers.Qwen2Config` does. */
export interface Qwen2Config {
  /** Always 'qwen2' (Hugging Face uses it for Qwen2.5 too). */
  modelType: string;
  vocabSize: number; hiddenSize: number; intermediateSize: number; numHiddenLayers: number;
  numAttentionHeads: number; numKeyValueHeads: number;
  /** `head_dim` when given, else hiddenSize / numAttentionHeads. */
  headDim: number;
  maxPositionEmbeddings: number; rmsNormEps: number; ropeTheta: number; tieWordEmbeddings: boolean;
  /** Effective sliding window, or undefined when use_sliding_window is false. */
  slidingWindow?: number;
  /** Layers >= maxWindowLayers use the sliding window (HF semantics) when slidingWindow is set. */
  maxWindowLayers: number;
  bosTokenId?: number;
  /** `eos_token_id` as a list (it may be a number or a list in the file); empty when absent. */
  eosTokenIds: number[];
  torchDtype?: string;
  /** `quantization_config` of a pre-quantized (AWQ or GPTQ) checkpoint; undefined for a float one. */
  quantization?: QuantizationConfig;
}

/** Sampling defaults of a model (Hugging Face `generation_config.json`). */
export interface GenerationConfig {
  eosTokenIds: number[]; bosTokenId?: number; padTokenId?: number;
  doSample?: boolean; temperature?: number; topK?: number; topP?: number; minP?: number; repetitionPenalty?: number;
}

type Json = Record<string, unknown>;

function asObject(json: unknown, file: string): Json {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(file, '', 'is not a JSON object');
  return json as Json;
}

function present(o: Json, key: string): boolean {
  return Object.hasOwn(o, key) && o[key] !== null && o[key] !== undefined;
}

function int(o: Json, file: string, key: string, fallback?: number, min = 1): number {
  if (!present(o, key)) {
    if (fallback === undefined) throw new ConfigError(file, key, 'is missing');
    return fallback;
  }
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new ConfigError(file, key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function positive(o: Json, file: string, key: string, fallback: number): number {
  if (!present(o, key)) return fallback;
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(file, key, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function optionalNumber(o: Json, file: string, key: string, check: (v: number) => boolean, rule: string): number | undefined {
  if (!present(o, key)) return undefined;
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new ConfigError(file, key, `must be ${rule}, got ${JSON.stringify(v)}`);
  return v;
}

function bool(o: Json, file: string, key: string, fallback: boolean): boolean {
  if (!present(o, key)) return fallback;
  const v = o[key];
  if (typeof v !== 'boolean') throw new ConfigError(file, key, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function tokenIds(o: Json, file: string, key: string): number[] {
  if (!present(o, key)) return [];
  const v = o[key];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((id) => typeof id === 'number' && Number.isSafeInteger(id) && id >= 0)) {
    throw new ConfigError(file, key, `must be a token id or a list of token ids, got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

function tokenId(o: Json, file: string, key: string): number | undefined {
  return present(o, key) ? int(o, file, key, undefined, 0) : undefined;
}

/**
 * Parses and validates a Qwen2 `config.json`, applying `transformers.Qwen2Config`'s defaults for
 * optional keys. Token ids are not checked against the vocabulary (random-weight test models put
 * bos/eos outside it).
 * @param json - the parsed JSON document
 * @param file - name used in error messages
 * @throws {@link ConfigError} naming the key: unknown `model_type`, a missing required key, a wrong type,
 *   heads that do not divide the hidden size, kv heads that do not divide the heads, unsupported `rope_scaling`,
 *   activation or `quantization_config`
 */
export function parseQwen2Config(json: unknown, file = 'config.json'): Qwen2Config {
  const o = asObject(json, file);
  if (!present(o, 'model_type')) throw new ConfigError(file, 'model_type', "is missing (expected 'qwen2')");
  const modelType = o.model_type;
  if (modelType !== 'qwen2') throw new ConfigError(file, 'model_type', `is ${JSON.stringify(modelType)}; only 'qwen2' (Qwen2, Qwen2.5) is supported`);
  const hiddenSize = int(o, file, 'hidden_size');
  const numAttentionHeads = int(o, file, 'num_attention_heads');
  const numKeyValueHeads = int(o, file, 'num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ConfigError(file, 'num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  let headDim: number;
  if (present(o, 'head_dim')) headDim = int(o, file, 'head_dim');
  else {
    if (hiddenSize % numAttentionHeads !== 0) {
      throw new ConfigError(file, 'num_attention_heads', `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`);
    }
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) throw new ConfigError(file, present(o, 'head_dim') ? 'head_dim' : 'hidden_size', `gives an odd head dimension ${headDim}; rotary embeddings need an even one`);
  if (present(o, 'hidden_act') && o.hidden_act !== 'silu') throw new ConfigError(file, 'hidden_act', `is ${JSON.stringify(o.hidden_act)}; only 'silu' is supported`);
  if (present(o, 'rope_scaling')) {
    const scaling = o.rope_scaling as { type?: unknown; rope_type?: unknown };
    const kind = typeof scaling === 'object' ? (scaling.rope_type ?? scaling.type) : scaling;
    if (kind !== 'default') throw new ConfigError(file, 'rope_scaling', `${JSON.stringify(o.rope_scaling)} is not supported (only plain RoPE)`);
  }
  const numHiddenLayers = int(o, file, 'num_hidden_layers');
  const useSlidingWindow = bool(o, file, 'use_sliding_window', false);
  const window = present(o, 'sliding_window') ? int(o, file, 'sliding_window') : undefined;
  const dtype = o.torch_dtype ?? o.dtype;
  if (dtype !== undefined && dtype !== null && typeof dtype !== 'string') throw new ConfigError(file, 'torch_dtype', `must be a string, got ${JSON.stringify(dtype)}`);
  const config: Qwen2Config = {
    modelType,
    vocabSize: int(o, file, 'vocab_size'),
    hiddenSize,
    intermediateSize: int(o, file, 'intermediate_size'),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings: int(o, file, 'max_position_embeddings', 32768),
    rmsNormEps: positive(o, file, 'rms_norm_eps', 1e-6),
    ropeTheta: positive(o, file, 'rope_theta', 10000),
    tieWordEmbeddings: bool(o, file, 'tie_word_embeddings', false),
    maxWindowLayers: int(o, file, 'max_window_layers', 28, 0),
    eosTokenIds: tokenIds(o, file, 'eos_token_id'),
  };
  if (useSlidingWindow && window !== undefined) config.slidingWindow = window;
  const bos = tokenId(o, file, 'bos_token_id');
  if (bos !== undefined) config.bosTokenId = bos;
  if (typeof dtype === 'string') config.torchDtype = dtype;
  if (present(o, 'quantization_config')) config.quantization = parseQuantizationConfig(o.quantization_config, file);
  return config;
}

/**
 * Parses and validates a `generation_config.json`.
 * @param json - the parsed JSON document
 * @param file - name used in error messages
 * @throws {@link ConfigError} naming the key whose value has the wrong type or range
 */
export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  const o = asObject(json, file);
  const config: GenerationConfig = { eosTokenIds: tokenIds(o, file, 'eos_token_id') };
  const bos = tokenId(o, file, 'bos_token_id');
  if (bos !== undefined) config.bosTokenId = bos;
  const pad = tokenId(o, file, 'pad_token_id');
  if (pad !== undefined) config.padTokenId = pad;
  if (present(o, 'do_sample')) config.doSample = bool(o, file, 'do_sample', false);
  const temperature = optionalNumber(o, file, 'temperature', (v) => v >= 0, 'a number >= 0');
  if (temperature !== undefined) config.temperature = temperature;
  if (present(o, 'top_k')) config.topK = int(o, file, 'top_k', undefined, 0);
  const topP = optionalNumber(o, file, 'top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  if (topP !== undefined) config.topP = topP;
  const minP = optionalNumber(o, file, 'min_p', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  if (minP !== undefined) config.minP = minP;
  const penalty = optionalNumber(o, file, 'repetition_penalty', (v) => v > 0, 'a positive number');
  if (penalty !== undefined) config.repetitionPenalty = penalty;
  return config;
}

/**
 * Parses JSON text, turning a syntax error into a {@link ConfigError} naming the file.
 * @throws {@link ConfigError} when the text is not JSON
 */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '', `is not valid JSON (${(e as Error).message})`);
  }
}
