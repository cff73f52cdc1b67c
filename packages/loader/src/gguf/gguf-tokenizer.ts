/**
 * Qwen2's tokenizer inside a GGUF file (`tokenizer.ggml.*`), both ways: read back as the Hugging Face
 * files the tokenizer package takes (vocab.json, merges.txt, tokenizer_config.json), and written from
 * tokenizer.json the way llama.cpp's converter writes it.
 */
import { ConfigError } from '../errors.js';
import type { TokenizerFileTexts } from '../open-folder.js';
import type { GgufHeader } from './gguf-header.js';
import type { GgufMetadataEntry } from './gguf-writer.js';
import { GgufMetadata, TOKEN_TYPE } from './gguf-qwen2-config.js';

/**
 * The tokenizer files of a GGUF file's vocabulary: ordinary tokens as vocab.json (their byte-level
 * spelling, as in Hugging Face's files), `tokenizer.ggml.merges` as merges.txt, control and
 * user-defined tokens as tokenizer_config.json's added tokens (special / not special), with the chat
 * template and the eos and padding tokens. Padding entries the converter adds to reach the embedding's
 * row count (`[PAD151643]`..., type unused) are left out, as they are not in Qwen's own files.
 * @param header - the parsed header (of the first part of a split model)
 * @param file - name used in messages
 * @throws {@link ConfigError} naming the key: not a byte-level BPE vocabulary ('gpt2'), another
 *   pre-tokenizer than Qwen2's, or malformed arrays
 */
export function tokenizerFilesFromGguf(header: Pick<GgufHeader, 'metadata'>, file: string): TokenizerFileTexts {
  const metadata = new GgufMetadata(file, header.metadata);
  const model = metadata.string('tokenizer.ggml.model');
  if (model === undefined) return {};
  if (model !== 'gpt2') throw new ConfigError(metadata.file, 'tokenizer.ggml.model', `is '${model}'; Qwen2 uses a byte-level BPE vocabulary ('gpt2')`);
  // llama.cpp names the pre-tokenizer by its regex; Qwen2's is the only one the tokenizer package implements.
  const pre = metadata.string('tokenizer.ggml.pre') ?? 'default';
  if (pre !== 'qwen2') throw new ConfigError(metadata.file, 'tokenizer.ggml.pre', `is '${pre}'; only Qwen2's pre-tokenizer ('qwen2') is supported`);
  const tokens = metadata.strings('tokenizer.ggml.tokens') ?? [];
  if (tokens.length === 0) throw new ConfigError(metadata.file, 'tokenizer.ggml.tokens', 'is missing or empty');
  const types = metadata.integers('tokenizer.ggml.token_type');
  if (types && types.length !== tokens.length) throw new ConfigError(metadata.file, 'tokenizer.ggml.token_type', `has ${types.length} entries for ${tokens.length} tokens`);
  const merges = metadata.strings('tokenizer.ggml.merges');
  if (!merges) throw new ConfigError(metadata.file, 'tokenizer.ggml.merges', 'is missing (a BPE vocabulary needs its merges)');

  // vocab.json is written as text directly (an object of 151,643 keys took longer to build than to
  // print), from the last id down: JSON.parse keeps a repeated key's last value, so a token listed twice
  // keeps its first id.
  const vocab: string[] = [];
  const added: Record<string, unknown> = Object.create(null);
  for (let id = tokens.length - 1; id >= 0; id--) {
    const type = types?.[id] ?? TOKEN_TYPE.normal;
    if (type === TOKEN_TYPE.control || type === TOKEN_TYPE.userDefined) {
      added[id] = { content: tokens[id], special: type === TOKEN_TYPE.control, normalized: false, lstrip: false, rstrip: false, single_word: false };
    } else if (type !== TOKEN_TYPE.unused) {
      vocab.push(`${JSON.stringify(tokens[id])}:${id}`);
    }
  }
  const token = (key: string): string | null => {
    if (!metadata.has(key)) return null;
    const id = metadata.integer(key, undefined, 0);
    if (id >= tokens.length) throw new ConfigError(metadata.file, key, `is ${id}, outside the ${tokens.length}-token vocabulary`);
    return tokens[id]!;
  };
  const config: Record<string, unknown> = {
    added_tokens_decoder: added,
    // Qwen2 adds no bos token (its tokenizer_config.json has bos_token null).
    bos_token: null,
    eos_token: token('tokenizer.ggml.eos_token_id'),
    pad_token: token('tokenizer.ggml.padding_token_id'),
  };
  const template = metadata.string('tokenizer.chat_template');
  if (template !== undefined) config.chat_template = template;
  return {
    vocabJson: `{${vocab.join(',')}}`,
    mergesTxt: `#version: 0.2\n${merges.join('\n')}\n`,
    tokenizerConfigJson: JSON.stringify(config),
  };
}

/**
 * The `tokenizer.ggml.*` metadata of a Qwen2 tokenizer, as llama.cpp's converter writes it from
 * Hugging Face's files: every id below `vocabSize` (the embedding's rows) gets a token, ordinary ones
 * from the BPE vocabulary, added tokens as control (special) or user-defined, and the rest padding
 * tokens `[PAD<id>]` of type unused; bos and padding are `<|endoftext|>`, eos is tokenizer_config.json's
 * eos token (else `<|endoftext|>`), and its chat template comes along.
 * @param tokenizerJson - tokenizer.json's text
 * @param vocabSize - the model's vocab_size
 * @param tokenizerConfigJson - tokenizer_config.json's text, for the eos token and chat template
 */
export function ggufTokenizerMetadata(tokenizerJson: string, vocabSize: number, tokenizerConfigJson?: string): GgufMetadataEntry[] {
  const t = JSON.parse(tokenizerJson) as { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }; added_tokens?: { id: number; content: string; special?: boolean }[] };
  if (t.model?.type !== 'BPE' || !t.model.vocab || !t.model.merges) throw new Error(`gguf: expected a BPE tokenizer.json, got model type ${t.model?.type}`);
  const tokens: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.unused);
  for (const [token, id] of Object.entries(t.model.vocab)) if (id < vocabSize) { tokens[id] = token; types[id] = TOKEN_TYPE.normal; }
  for (const a of t.added_tokens ?? []) if (a.id < vocabSize) { tokens[a.id] = a.content; types[a.id] = a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined; }
  for (let i = 0; i < vocabSize; i++) tokens[i] ??= `[PAD${i}]`;
  const merges = t.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const config = tokenizerConfigJson ? JSON.parse(tokenizerConfigJson) as { eos_token?: string | { content?: string }; chat_template?: unknown } : {};
  const idOf = (content: string | undefined) => (content === undefined ? undefined : (t.added_tokens ?? []).find((a) => a.content === content)?.id);
  const eosText = typeof config.eos_token === 'string' ? config.eos_token : config.eos_token?.content;
  const inside = (id: number | undefined) => (id !== undefined && id < vocabSize ? id : undefined);
  const endOfText = inside(idOf('<|endoftext|>'));
  return ggufVocabularyMetadata({
    tokens, types, merges, bosId: endOfText, paddingId: endOfText, eosId: inside(idOf(eosText) ?? idOf('<|endoftext|>')),
    chatTemplate: typeof config.chat_template === 'string' ? config.chat_template : undefined,
  });
}

/** A byte-level BPE vocabulary with Qwen2's pre-tokenizer, as {@link ggufVocabularyMetadata} writes it. */
export interface GgufVocabulary {
  /** Every token by id, in its byte-level spelling. */
  tokens: readonly string[];
  /** llama.cpp's token type of each (1 normal, 3 control, 4 user-defined, 5 unused). */
  types: readonly number[];
  /** Merges as "left right". */
  merges: readonly string[];
  bosId?: number; eosId?: number; paddingId?: number;
  chatTemplate?: string;
}

/** The `tokenizer.ggml.*` metadata of a vocabulary: model 'gpt2', pre-tokenizer 'qwen2', no bos added. */
export function ggufVocabularyMetadata(v: GgufVocabulary): GgufMetadataEntry[] {
  const entries: GgufMetadataEntry[] = [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: 'qwen2' },
    { key: 'tokenizer.ggml.tokens', type: 'array', elementType: 'string', value: v.tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', elementType: 'i32', value: v.types },
    { key: 'tokenizer.ggml.merges', type: 'array', elementType: 'string', value: v.merges },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: false },
  ];
  if (v.bosId !== undefined) entries.push({ key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: v.bosId });
  if (v.paddingId !== undefined) entries.push({ key: 'tokenizer.ggml.padding_token_id', type: 'u32', value: v.paddingId });
  if (v.eosId !== undefined) entries.push({ key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: v.eosId });
  if (v.chatTemplate !== undefined) entries.push({ key: 'tokenizer.chat_template', type: 'string', value: v.chatTemplate });
  return entries;
}
