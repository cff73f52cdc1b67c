import { AddedTokenMatcher, type AddedToken, type Segment } from './added-tokens.js';
import { BytePairEncoder } from './bpe.js';
import { bytesToUnicode } from './byte-level.js';
import { renderChatTemplate, type ChatMessage } from './chat-template.js';
import { TokenizerError } from './errors.js';
import { parseTokenizerFiles, type TokenizerConfig, type TokenizerFiles } from './load-files.js';
import { buildDecodeTable, type DecodeTable } from './decode-table.js';
import { buildMergeTable } from './merge-table.js';
import { TokenIndex } from './token-index.js';
import { referenceNfc, toWellFormed } from './normalize.js';
import { splitPieces } from './pre-tokenizer.js';
import { createByteStreamDecoder, type StreamDecoder } from './stream-decoder.js';

/** Pieces longer than this (UTF-16 units) are not cached: rare, and they would bloat the cache. */
const CACHE_MAX_PIECE = 64;
/** The word cache is dropped when it grows past this many entries (bounded memory on huge inputs). */
const CACHE_MAX_ENTRIES = 100_000;

/** Options of {@link Qwen2Tokenizer.encode}. */
export interface EncodeOptions {
  /** Recognize special tokens (e.g. `<|im_start|>`) written in the text. Default true, like Hugging Face. */
  allowSpecial?: boolean;
}

/** Options of {@link Qwen2Tokenizer.decode} and {@link Qwen2Tokenizer.createStreamDecoder}. */
export interface DecodeOptions {
  /** Leave out special tokens (e.g. `<|im_end|>`). Default false. */
  skipSpecialTokens?: boolean;
}

/** Options of {@link Qwen2Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the assistant turn header so the model answers next. Default false (transformers' default). */
  addGenerationPrompt?: boolean;
  /** Tool (function) definitions, for templates that support them (Qwen2.5's does). */
  tools?: unknown[];
  /** A template to use instead of tokenizer_config.json's (or the name of one of its named templates). */
  chatTemplate?: string;
  /** Extra variables passed to the template. */
  variables?: Record<string, unknown>;
}

/**
 * Qwen2's byte-level BPE tokenizer, giving exactly Hugging Face's ids: added/special tokens split out
 * first, NFC, Qwen2's pre-tokenizer regex (pinned Unicode tables), GPT-2 byte mapping, BPE by merge rank.
 * Works in Node and browsers (no Node-only API).
 */
export class Qwen2Tokenizer {
  /** Number of ids, added tokens included (max id + 1). */
  readonly vocabSize: number;
  /** End-of-sequence id from tokenizer_config.json (`<|im_end|>` for Instruct), else `<|endoftext|>`. */
  readonly eosTokenId?: number;
  /** Whether tokenizer_config.json has a chat template. */
  readonly hasChatTemplate: boolean;

  private readonly tokens: (string | undefined)[];
  /** BPE token string -> id. */
  private readonly index: TokenIndex;
  private readonly addedByContent = new Map<string, number>();
  private readonly addedById = new Map<number, AddedToken>();
  private readonly matcher: AddedTokenMatcher;
  /** Added tokens with normalized=true match the NFC text; they need a second split. */
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly byteSymbol = new Int32Array(256);
  private readonly bpe: BytePairEncoder;
  private readonly ignoreMerges: boolean;
  private readonly config: TokenizerConfig;
  private readonly cache = new Map<string, number[]>();
  private symbols = new Int32Array(1024);
  private readonly ends: number[] = [];
  private decodeTable?: DecodeTable;

  private constructor(files: TokenizerFiles) {
    const spec = parseTokenizerFiles(files);
    this.config = spec.config;
    this.ignoreMerges = spec.ignoreMerges;
    this.index = new TokenIndex(spec.tokens);

    const tokens = spec.tokens;
    for (const listed of spec.addedTokens) {
      // An added token that is already a vocabulary token takes that token's id, whatever id the file
      // lists (Hugging Face's add_tokens does the same).
      const inVocab = this.index.find(listed.content);
      const t = inVocab >= 0 ? { ...listed, id: inVocab } : listed;
      tokens[t.id] = t.content;
      this.addedByContent.set(t.content, t.id);
      this.addedById.set(t.id, t);
    }
    this.tokens = tokens;
    this.vocabSize = tokens.length;

    const table = bytesToUnicode();
    for (let b = 0; b < 256; b++) {
      const id = this.index.find(table[b]);
      if (id < 0) {
        throw new TokenizerError('bad-vocab', `the vocabulary lacks the byte-level token for byte 0x${b.toString(16)} (${JSON.stringify(table[b])})`);
      }
      this.byteSymbol[b] = id;
    }

    this.bpe = new BytePairEncoder(buildMergeTable(spec.merges, spec.mergesFile, this.index));

    const added = [...this.addedById.values()];
    this.matcher = new AddedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(
      added.filter((t) => t.normalized).map((t) => ({ ...t, content: referenceNfc(t.content) })),
    );

    const eos = spec.config.eosToken ?? '<|endoftext|>';
    this.eosTokenId = this.tokenToId(eos);
    this.hasChatTemplate = spec.config.chatTemplate !== undefined;
  }

  /**
   * Builds a tokenizer from file contents: tokenizer.json (preferred), or vocab.json + merges.txt;
   * tokenizer_config.json adds the chat template and eos token.
   * @throws TokenizerError naming the missing file or malformed entry, or an unsupported pipeline.
   */
  static fromFiles(files: TokenizerFiles): Qwen2Tokenizer {
    return new Qwen2Tokenizer(files);
  }

  /**
   * Text to token ids, as Hugging Face's `tokenizer.encode(text, add_special_tokens=False)` (Qwen2 adds
   * no BOS/EOS). Lone surrogates become U+FFFD, as when a JS string reaches the Rust tokenizer.
   * @throws TokenizerError if `text` is not a string.
   */
  encode(text: string, options?: EncodeOptions): number[] {
    if (typeof text !== 'string') throw new TokenizerError('bad-input', `encode() needs a string, got ${typeof text}`);
    const allowSpecial = options?.allowSpecial ?? true;
    const input = toWellFormed(text);
    const out: number[] = [];
    const segments: Segment[] = [];
    this.matcher.split(input, allowSpecial ? always : notSpecial, segments);
    for (const segment of segments) {
      if (segment.id !== undefined) out.push(segment.id);
      else this.encodeText(segment.text, allowSpecial, out);
    }
    return out;
  }

  /** NFC, normalized added tokens, then pre-tokenizer + BPE. */
  private encodeText(raw: string, allowSpecial: boolean, out: number[]): void {
    const text = referenceNfc(raw);
    if (this.normalizedMatcher.isEmpty) {
      this.encodeNormalized(text, out);
      return;
    }
    const segments: Segment[] = [];
    this.normalizedMatcher.split(text, allowSpecial ? always : notSpecial, segments);
    for (const segment of segments) {
      if (segment.id !== undefined) out.push(segment.id);
      else this.encodeNormalized(segment.text, out);
    }
  }

  private encodeNormalized(text: string, out: number[]): void {
    const ends = this.ends;
    ends.length = 0;
    splitPieces(text, ends);
    const cache = this.cache;
    let start = 0;
    for (let k = 0; k < ends.length; k++) {
      const end = ends[k];
      const piece = text.slice(start, end);
      start = end;
      const cached = cache.get(piece);
      if (cached !== undefined) {
        for (let j = 0; j < cached.length; j++) out.push(cached[j]);
        continue;
      }
      if (piece.length > CACHE_MAX_PIECE) {
        this.encodePiece(piece, out);
        continue;
      }
      const from = out.length;
      this.encodePiece(piece, out);
      if (cache.size >= CACHE_MAX_ENTRIES) cache.clear();
      cache.set(piece, out.slice(from));
    }
  }

  /** UTF-8 bytes of one piece, mapped to byte-level symbols, merged by BPE. */
  private encodePiece(piece: string, out: number[]): void {
    // At most 3 UTF-8 bytes per UTF-16 unit. The reusable buffer only grows for ordinary pieces, so that
    // one huge word does not pin megabytes for the tokenizer's lifetime.
    let sym = this.symbols;
    if (sym.length < piece.length * 3) {
      sym = new Int32Array(piece.length * 3 + 16);
      if (sym.length <= 65536) this.symbols = sym;
    }
    const bs = this.byteSymbol;
    const n = piece.length;
    let count = 0;
    for (let i = 0; i < n; i++) {
      let c = piece.charCodeAt(i);
      if (c < 0x80) {
        sym[count++] = bs[c];
      } else if (c < 0x800) {
        sym[count++] = bs[0xc0 | (c >> 6)];
        sym[count++] = bs[0x80 | (c & 0x3f)];
      } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        // Input is well formed here (lone surrogates were replaced), so this is a pair.
        c = ((c - 0xd800) << 10) + (piece.charCodeAt(++i) - 0xdc00) + 0x10000;
        sym[count++] = bs[0xf0 | (c >> 18)];
        sym[count++] = bs[0x80 | ((c >> 12) & 0x3f)];
        sym[count++] = bs[0x80 | ((c >> 6) & 0x3f)];
        sym[count++] = bs[0x80 | (c & 0x3f)];
      } else {
        sym[count++] = bs[0xe0 | (c >> 12)];
        sym[count++] = bs[0x80 | ((c >> 6) & 0x3f)];
        sym[count++] = bs[0x80 | (c & 0x3f)];
      }
    }
    if (this.ignoreMerges && count > 1) {
      let word = '';
      for (let i = 0; i < count; i++) word += this.tokens[sym[i]];
      const whole = this.index.find(word);
      if (whole >= 0) {
        out.push(whole);
        return;
      }
    }
    this.bpe.encode(sym, count, out);
  }

  /**
   * Token ids to text, as Hugging Face's `decode` (byte-level decoding, invalid UTF-8 becomes U+FFFD).
   * An id with no token (e.g. one of the padding rows of Qwen2's 151936-row embedding, which a model can
   * still sample) decodes to nothing, as in Hugging Face.
   * @throws TokenizerError on an id that is not a non-negative integer.
   */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    const skip = options?.skipSpecialTokens ?? false;
    const { bytes, offsets } = this.getDecodeTable();
    const size = this.vocabSize;
    let total = 0;
    for (let k = 0; k < ids.length; k++) {
      const id = checkId(ids[k]);
      if (id >= size || (skip && this.isSpecial(id))) continue;
      total += offsets[id + 1] - offsets[id];
    }
    const buffer = new Uint8Array(total);
    let at = 0;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (id >= size || (skip && this.isSpecial(id))) continue;
      buffer.set(bytes.subarray(offsets[id], offsets[id + 1]), at);
      at += offsets[id + 1] - offsets[id];
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(buffer);
  }

  /**
   * An incremental decoder for generation: `push(id)` returns the newly complete text, never half a
   * character; `flush()` returns the rest. Concatenated, the output equals {@link decode} of all ids.
   * `push` throws TokenizerError on an id that is not a non-negative integer.
   */
  createStreamDecoder(options?: DecodeOptions): StreamDecoder {
    const skip = options?.skipSpecialTokens ?? false;
    return createByteStreamDecoder((raw) => {
      const id = checkId(raw);
      if (id >= this.vocabSize || (skip && this.isSpecial(id))) return undefined;
      const { bytes, offsets } = this.getDecodeTable();
      return bytes.subarray(offsets[id], offsets[id + 1]);
    });
  }

  /**
   * Renders the chat template (tokenizer_config.json's `chat_template`, or `options.chatTemplate`) with
   * transformers' variables. The result is text; encode it with {@link encode} (special tokens on).
   * @throws TokenizerError when there is no template, or it fails to parse or render.
   */
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions): string {
    if (!Array.isArray(messages)) throw new TokenizerError('bad-input', 'applyChatTemplate() needs an array of messages');
    let source = this.config.chatTemplate;
    const chosen = options?.chatTemplate;
    if (chosen !== undefined) source = this.config.namedChatTemplates[chosen] ?? chosen;
    if (source === undefined) {
      throw new TokenizerError('no-chat-template', 'this tokenizer has no chat template (tokenizer_config.json has no "chat_template"); pass options.chatTemplate');
    }
    const c = this.config;
    return renderChatTemplate(source, {
      bos_token: c.bosToken ?? null,
      eos_token: c.eosToken ?? null,
      pad_token: c.padToken ?? null,
      unk_token: c.unkToken ?? null,
      additional_special_tokens: c.additionalSpecialTokens,
      // transformers passes None for absent tools/documents, so `tools is not none` tests work.
      tools: null,
      documents: null,
      ...options?.variables,
      messages,
      add_generation_prompt: options?.addGenerationPrompt ?? false,
      ...(options?.tools !== undefined ? { tools: options.tools } : {}),
    });
  }

  /** Id of a token string (BPE form, e.g. `Ġworld`, or an added token), or undefined. */
  tokenToId(token: string): number | undefined {
    if (typeof token !== 'string') return undefined;
    const added = this.addedByContent.get(token);
    if (added !== undefined) return added;
    const id = this.index.find(token);
    return id >= 0 ? id : undefined;
  }

  /** Token string of an id (BPE form, e.g. `Ġworld`), or undefined. */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.tokens[id] : undefined;
  }

  /**
   * The raw bytes a token decodes to (byte-level decoding, before UTF-8: a token can hold part of a
   * character), or undefined for an id without a token. The array is a view of a shared table: do not
   * modify it.
   * @throws TokenizerError on an id that is not a non-negative integer.
   */
  tokenBytes(id: number): Uint8Array | undefined {
    checkId(id);
    if (id >= this.vocabSize || this.tokens[id] === undefined) return undefined;
    const { bytes, offsets } = this.getDecodeTable();
    return bytes.subarray(offsets[id], offsets[id + 1]);
  }

  /** Whether an id is a special added token (skipped by `skipSpecialTokens`). */
  isSpecialToken(id: number): boolean {
    return this.isSpecial(id);
  }

  private isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  /** Bytes of every token, flat: built on first decode so that loading stays fast. */
  private getDecodeTable(): DecodeTable {
    this.decodeTable ??= buildDecodeTable(this.tokens, this.vocabSize);
    return this.decodeTable;
  }

}

const always = () => true;

/** Ids are non-negative integers; anything else is a caller bug worth a clear error. */
function checkId(id: number): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
    throw new TokenizerError('bad-id', `token id ${String(id)} is not a non-negative integer`);
  }
  return id;
}
const notSpecial = (t: AddedToken) => !t.special;

