/**
 * The model configuration of a qwen2 GGUF file, from the metadata llama.cpp's converter writes
 * (`qwen2.embedding_length`, `qwen2.block_count`, ...), as the Qwen2Config a config.json would give.
 */
import { ConfigError } from '../errors.js';
import { parseQwen2Config, type Qwen2Config } from '../config.js';
import type { GgufHeader, GgufValue } from './gguf-header.js';
import type { GgufMetadataEntry } from './gguf-writer.js';

/** llama.cpp architectures that are not Qwen2's dense decoder, with what they are, for the message. */
const OTHER_QWEN = { qwen2moe: 'Qwen2-MoE', qwen2vl: 'Qwen2-VL', qwen3: 'Qwen3', qwen3moe: 'Qwen3-MoE', qwen: 'Qwen (1)' } as Record<string, string>;

/** Reads typed metadata, failing with a {@link ConfigError} that names the GGUF key. */
export class GgufMetadata {
  constructor(readonly file: string, private readonly values: ReadonlyMap<string, GgufValue>) {}

  has(key: string): boolean { return this.values.has(key); }

  integer(key: string, fallback?: number, min = 1): number {
    const v = this.values.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new ConfigError(this.file, key, 'is missing from the GGUF metadata');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new ConfigError(this.file, key, `must be an integer >= ${min}, got ${describe(v)}`);
    return v;
  }

  number(key: string, fallback: number): number {
    const v = this.values.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(this.file, key, `must be a positive number, got ${describe(v)}`);
    return v;
  }

  string(key: string): string | undefined {
    const v = this.values.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ConfigError(this.file, key, `must be a string, got ${describe(v)}`);
    return v;
  }

  strings(key: string): string[] | undefined {
    const v = this.values.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new ConfigError(this.file, key, 'must be an array of strings');
    return v as string[];
  }

  integers(key: string): number[] | undefined {
    const v = this.values.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'number' && Number.isSafeInteger(s))) throw new ConfigError(this.file, key, 'must be an array of integers');
    return v as number[];
  }
}

function describe(v: GgufValue): string {
  return Array.isArray(v) ? `an array of ${v.length}` : typeof v === 'bigint' ? `${v}` : JSON.stringify(v);
}

/**
 * The Qwen2Config of a GGUF file of architecture `qwen2` (Qwen2 and Qwen2.5). The vocabulary size is
 * the embedding's row count and the head is tied when the file has no `output.weight`, as llama.cpp
 * decides. Rope scaling in the metadata (YaRN) is refused as in config.json.
 * @param header - the parsed header (its tensors name the embedding and the head)
 * @param file - name used in messages
 * @throws {@link ConfigError} naming the GGUF key: another architecture, a missing or invalid key
 */
export function qwen2ConfigFromGguf(header: GgufHeader, file: string): Qwen2Config {
  const m = new GgufMetadata(file, header.metadata);
  const arch = m.string('general.architecture');
  if (arch === undefined) throw new ConfigError(file, 'general.architecture', 'is missing from the GGUF metadata');
  if (arch !== 'qwen2') {
    const what = OTHER_QWEN[arch] ? ` (${OTHER_QWEN[arch]})` : '';
    throw new ConfigError(file, 'general.architecture', `is '${arch}'${what}; only 'qwen2' (Qwen2, Qwen2.5) models are supported`);
  }
  const embedding = header.tensors.find((t) => t.name === 'token_embd.weight');
  if (!embedding || embedding.dims.length !== 2) throw new ConfigError(file, '', "has no 2-dimensional 'token_embd.weight' tensor (the token embedding)");
  const heads = m.integer('qwen2.attention.head_count');
  const json: Record<string, unknown> = {
    model_type: 'qwen2',
    vocab_size: embedding.dims[1],
    hidden_size: m.integer('qwen2.embedding_length'),
    intermediate_size: m.integer('qwen2.feed_forward_length'),
    num_hidden_layers: m.integer('qwen2.block_count'),
    num_attention_heads: heads,
    num_key_value_heads: m.integer('qwen2.attention.head_count_kv', heads),
    max_position_embeddings: m.integer('qwen2.context_length', 32768),
    // llama.cpp's defaults when a file leaves them out.
    rms_norm_eps: m.number('qwen2.attention.layer_norm_rms_epsilon', 1e-6),
    rope_theta: m.number('qwen2.rope.freq_base', 10000),
    tie_word_embeddings: !header.tensors.some((t) => t.name === 'output.weight'),
  };
  if (m.has('qwen2.attention.key_length')) json.head_dim = m.integer('qwen2.attention.key_length');
  const valueLength = m.has('qwen2.attention.value_length') ? m.integer('qwen2.attention.value_length') : undefined;
  if (valueLength !== undefined && valueLength !== (json.head_dim ?? (json.hidden_size as number) / heads)) {
    throw new ConfigError(file, 'qwen2.attention.value_length', `(${valueLength}) differs from the key length; Qwen2 uses one head size`);
  }
  const scaling = m.string('qwen2.rope.scaling.type');
  if (scaling !== undefined && scaling !== 'none') {
    json.rope_scaling = { type: scaling, factor: header.metadata.get('qwen2.rope.scaling.factor'), original_max_position_embeddings: header.metadata.get('qwen2.rope.scaling.original_context_length') };
  }
  const bos = header.metadata.get('tokenizer.ggml.bos_token_id');
  if (bos !== undefined) json.bos_token_id = bos;
  json.eos_token_id = stopTokenIds(m);
  try {
    return parseQwen2Config(json, `${file} (GGUF metadata)`);
  } catch (e) {
    // Name the GGUF key rather than the config.json key it was mapped to.
    if (e instanceof ConfigError && e.key === 'rope_scaling') throw new ConfigError(file, 'qwen2.rope.scaling.type', `is '${scaling}'; only plain RoPE is supported`);
    throw e;
  }
}

/**
 * The tokens that end a generation: the file's eos (and eot) token, plus Qwen's `<|endoftext|>` and
 * `<|im_end|>` when the vocabulary has them as control tokens. llama.cpp stops on all of these, so a
 * base model's file (eos `<|endoftext|>`) also stops after a chat turn's `<|im_end|>`.
 */
function stopTokenIds(m: GgufMetadata): number[] {
  const ids: number[] = [];
  for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id']) if (m.has(key)) ids.push(m.integer(key, undefined, 0));
  const tokens = m.strings('tokenizer.ggml.tokens');
  const types = m.integers('tokenizer.ggml.token_type');
  if (tokens && types) {
    for (const text of ['<|endoftext|>', '<|im_end|>']) {
      const id = tokens.indexOf(text);
      if (id >= 0 && types[id] === TOKEN_TYPE.control) ids.push(id);
    }
  }
  return [...new Set(ids)];
}

/** llama.cpp's token types (`llama_token_type`). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * The `general.*` and `qwen2.*` metadata of a model, as llama.cpp's converter writes it (the inverse of
 * {@link qwen2ConfigFromGguf}; tests and benchmarks write GGUF files with it).
 * @param options - `name` (general.name) and `fileType`: llama.cpp's `general.file_type` (its `llama_ftype`:
 *   0 all f32, 1 mostly f16, 2 q4_0, 7 q8_0, 32 bf16, ...)
 */
export function qwen2GgufMetadata(config: Pick<Qwen2Config, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads' | 'maxPositionEmbeddings' | 'ropeTheta' | 'rmsNormEps'>, options: { name?: string; fileType?: number } = {}): GgufMetadataEntry[] {
  return [
    { key: 'general.architecture', type: 'string', value: 'qwen2' },
    { key: 'general.name', type: 'string', value: options.name ?? 'qwen2-ts' },
    { key: 'general.file_type', type: 'u32', value: options.fileType ?? 0 },
    { key: 'general.quantization_version', type: 'u32', value: 2 },
    { key: 'qwen2.context_length', type: 'u32', value: config.maxPositionEmbeddings },
    { key: 'qwen2.embedding_length', type: 'u32', value: config.hiddenSize },
    { key: 'qwen2.feed_forward_length', type: 'u32', value: config.intermediateSize },
    { key: 'qwen2.block_count', type: 'u32', value: config.numHiddenLayers },
    { key: 'qwen2.attention.head_count', type: 'u32', value: config.numAttentionHeads },
    { key: 'qwen2.attention.head_count_kv', type: 'u32', value: config.numKeyValueHeads },
    { key: 'qwen2.rope.freq_base', type: 'f32', value: config.ropeTheta },
    { key: 'qwen2.attention.layer_norm_rms_epsilon', type: 'f32', value: config.rmsNormEps },
  ];
}
