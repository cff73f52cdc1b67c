import type { AddedToken } from './added-tokens.js';
import { TokenizerError } from './errors.js';
import { QWEN2_PRE_TOKENIZER_PATTERN } from './pre-tokenizer.js';

/** The raw files a Qwen2 tokenizer can be built from (file contents as text). */
export interface TokenizerFiles {
  /** tokenizer.json (preferred: has everything but the chat template). */
  tokenizerJson?: string;
  /** tokenizer_config.json: chat template, eos token, added tokens. */
  tokenizerConfigJson?: string;
  /** vocab.json, used with merges.txt when there is no tokenizer.json. */
  vocabJson?: string;
  /** merges.txt, used with vocab.json when there is no tokenizer.json. */
  mergesTxt?: string;
}

/** Everything the tokenizer needs, parsed and checked. */
export interface TokenizerSpec {
  /** BPE vocabulary as id -> token (holes stay undefined). */
  tokens: (string | undefined)[];
  /** Merges in priority order: "left right" strings or [left, right] pairs, checked when the table is built. */
  merges: ReadonlyArray<unknown>;
  /** Which file the merges came from, for error messages. */
  mergesFile: string;
  addedTokens: AddedToken[];
  ignoreMerges: boolean;
  config: TokenizerConfig;
}

/** The parts of tokenizer_config.json the tokenizer uses. */
export interface TokenizerConfig {
  chatTemplate?: string;
  /** Named templates (tokenizer_config.json may hold a list of {name, template}). */
  namedChatTemplates: Record<string, string>;
  eosToken?: string;
  bosToken?: string;
  padToken?: string;
  unkToken?: string;
  additionalSpecialTokens: string[];
}

function parseJson(text: unknown, file: string): unknown {
  if (typeof text !== 'string') throw new TokenizerError('bad-file', `${file} must be given as text, got ${typeof text}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError('bad-json', `${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A special-token entry of tokenizer_config.json: a string or an AddedToken object with `content`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

function readAddedToken(raw: unknown, idFallback: number | undefined, file: string): AddedToken {
  if (!isObject(raw) || typeof raw.content !== 'string') {
    throw new TokenizerError('bad-added-token', `${file}: an added token has no string "content"`);
  }
  const id = typeof raw.id === 'number' ? raw.id : idFallback;
  if (id === undefined || !Number.isInteger(id) || id < 0 || id >= MAX_ID) {
    throw new TokenizerError('bad-added-token', `${file}: added token ${JSON.stringify(raw.content)} has no valid id`);
  }
  return {
    id,
    content: raw.content,
    special: raw.special === true,
    singleWord: raw.single_word === true,
    lstrip: raw.lstrip === true,
    rstrip: raw.rstrip === true,
    // Hugging Face's default: special tokens are not normalized, others are.
    normalized: typeof raw.normalized === 'boolean' ? raw.normalized : raw.special !== true,
  };
}

function parseConfig(text: string | undefined): { config: TokenizerConfig; addedTokens: AddedToken[] } {
  const config: TokenizerConfig = { namedChatTemplates: {}, additionalSpecialTokens: [] };
  const addedTokens: AddedToken[] = [];
  if (text === undefined) return { config, addedTokens };
  const json = parseJson(text, 'tokenizer_config.json');
  if (!isObject(json)) throw new TokenizerError('bad-json', 'tokenizer_config.json must hold a JSON object');
  const template = json.chat_template;
  if (typeof template === 'string') config.chatTemplate = template;
  else if (Array.isArray(template)) {
    for (const entry of template) {
      if (isObject(entry) && typeof entry.name === 'string' && typeof entry.template === 'string') {
        config.namedChatTemplates[entry.name] = entry.template;
      }
    }
    config.chatTemplate = config.namedChatTemplates.default;
  } else if (template !== undefined && template !== null) {
    throw new TokenizerError('bad-config', 'tokenizer_config.json: "chat_template" must be a string or a list of {name, template}');
  }
  config.eosToken = tokenContent(json.eos_token);
  config.bosToken = tokenContent(json.bos_token);
  config.padToken = tokenContent(json.pad_token);
  config.unkToken = tokenContent(json.unk_token);
  if (Array.isArray(json.additional_special_tokens)) {
    for (const t of json.additional_special_tokens) {
      const c = tokenContent(t);
      if (c !== undefined) config.additionalSpecialTokens.push(c);
    }
  }
  if (isObject(json.added_tokens_decoder)) {
    for (const [id, raw] of Object.entries(json.added_tokens_decoder)) {
      addedTokens.push(readAddedToken(raw, Number(id), 'tokenizer_config.json'));
    }
  }
  return { config, addedTokens };
}

/** Ids at or above this are refused (a corrupt file could otherwise make us allocate gigabytes). */
const MAX_ID = 1 << 24;

function readVocab(raw: unknown, file: string): (string | undefined)[] {
  if (!isObject(raw)) throw new TokenizerError('bad-vocab', `${file}: the vocabulary must be an object of token -> id`);
  const tokens: (string | undefined)[] = [];
  for (const token in raw) {
    const id = raw[token];
    if (typeof id !== 'number' || (id | 0) !== id || id < 0 || id >= MAX_ID) {
      throw new TokenizerError('bad-vocab', `${file}: token ${JSON.stringify(token)} has invalid id ${JSON.stringify(id)}`);
    }
    // A duplicated id keeps its first token, like a reverse map built in file order.
    if (tokens[id] === undefined) tokens[id] = token;
  }
  return tokens;
}

/** Checks the tokenizer.json pipeline is Qwen2's (the only one this package implements). */
function checkPipeline(json: Record<string, unknown>): void {
  const normalizer = json.normalizer;
  if (!(isObject(normalizer) && normalizer.type === 'NFC')) {
    throw new TokenizerError('unsupported', `tokenizer.json: normalizer ${JSON.stringify(normalizer)} is not supported (Qwen2 uses NFC)`);
  }
  const pre = json.pre_tokenizer;
  const steps = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [];
  const split = steps[0];
  const byteLevel = steps[1];
  const ok =
    steps.length === 2 &&
    isObject(split) &&
    split.type === 'Split' &&
    isObject(split.pattern) &&
    split.pattern.Regex === QWEN2_PRE_TOKENIZER_PATTERN &&
    split.behavior === 'Isolated' &&
    split.invert !== true &&
    isObject(byteLevel) &&
    byteLevel.type === 'ByteLevel' &&
    byteLevel.use_regex === false &&
    byteLevel.add_prefix_space !== true;
  if (!ok) {
    throw new TokenizerError('unsupported', 'tokenizer.json: the pre_tokenizer is not Qwen2\'s (Split on the Qwen2 regex, then ByteLevel without regex)');
  }
  const decoder = json.decoder;
  if (decoder !== null && decoder !== undefined && !(isObject(decoder) && decoder.type === 'ByteLevel')) {
    throw new TokenizerError('unsupported', `tokenizer.json: decoder type ${JSON.stringify(isObject(decoder) ? decoder.type : decoder)} is not supported (Qwen2 uses ByteLevel)`);
  }
}

function fromTokenizerJson(text: string): Omit<TokenizerSpec, 'config'> {
  const json = parseJson(text, 'tokenizer.json');
  if (!isObject(json)) throw new TokenizerError('bad-json', 'tokenizer.json must hold a JSON object');
  const model = json.model;
  if (!isObject(model)) throw new TokenizerError('bad-model', 'tokenizer.json has no "model" object');
  if (model.type !== undefined && model.type !== 'BPE') {
    throw new TokenizerError('unsupported', `tokenizer.json: model type ${JSON.stringify(model.type)} is not supported (Qwen2 uses BPE)`);
  }
  if (model.byte_fallback === true || (model.dropout !== null && model.dropout !== undefined) || (model.continuing_subword_prefix ?? '') !== '' || (model.end_of_word_suffix ?? '') !== '') {
    throw new TokenizerError('unsupported', 'tokenizer.json: BPE options byte_fallback / dropout / subword prefix / suffix are not supported (Qwen2 uses none)');
  }
  checkPipeline(json);
  const tokens = readVocab(model.vocab, 'tokenizer.json model.vocab');
  if (!Array.isArray(model.merges)) throw new TokenizerError('bad-merges', 'tokenizer.json: model.merges must be a list');
  const addedTokens: AddedToken[] = [];
  if (json.added_tokens !== undefined) {
    if (!Array.isArray(json.added_tokens)) throw new TokenizerError('bad-added-token', 'tokenizer.json: added_tokens must be a list');
    for (const raw of json.added_tokens) addedTokens.push(readAddedToken(raw, undefined, 'tokenizer.json'));
  }
  return { tokens, merges: model.merges, mergesFile: 'tokenizer.json', addedTokens, ignoreMerges: model.ignore_merges === true };
}

function fromVocabAndMerges(vocabJson: string, mergesTxt: string): Omit<TokenizerSpec, 'config' | 'addedTokens'> {
  if (typeof mergesTxt !== 'string') throw new TokenizerError('bad-file', 'merges.txt must be given as text');
  const tokens = readVocab(parseJson(vocabJson, 'vocab.json'), 'vocab.json');
  const lines = mergesTxt.split(/\r?\n/);
  // Optional "#version: 0.2" header; blank lines (the trailing one) are not merges.
  const merges = lines.filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
  return { tokens, merges, mergesFile: 'merges.txt', ignoreMerges: false };
}

/**
 * Parses and checks tokenizer files into a {@link TokenizerSpec}.
 * @throws TokenizerError naming the missing file or the malformed entry.
 */
export function parseTokenizerFiles(files: TokenizerFiles): TokenizerSpec {
  if (typeof files !== 'object' || files === null) throw new TokenizerError('missing-file', 'tokenizer files must be an object { tokenizerJson?, tokenizerConfigJson?, vocabJson?, mergesTxt? }');
  const { config, addedTokens: configAdded } = parseConfig(files.tokenizerConfigJson);
  if (files.tokenizerJson !== undefined) {
    const spec = fromTokenizerJson(files.tokenizerJson);
    return { ...spec, config };
  }
  if (files.vocabJson === undefined || files.mergesTxt === undefined) {
    const have = Object.keys(files).filter((k) => (files as Record<string, unknown>)[k] !== undefined);
    throw new TokenizerError(
      'missing-file',
      `need tokenizer.json, or vocab.json together with merges.txt; got ${have.length ? have.join(', ') : 'nothing'}`,
    );
  }
  const spec = fromVocabAndMerges(files.vocabJson, files.mergesTxt);
  let addedTokens = configAdded;
  if (addedTokens.length === 0) {
    // transformers' Qwen2Tokenizer defaults eos/unk/pad to a special <|endoftext|> appended to the vocab.
    const existing = spec.tokens.indexOf('<|endoftext|>');
    addedTokens = [{ id: existing >= 0 ? existing : spec.tokens.length, content: '<|endoftext|>', special: true, singleWord: false, lstrip: false, rstrip: false, normalized: false }];
    config.eosToken ??= '<|endoftext|>';
  }
  return { ...spec, addedTokens, config };
}
