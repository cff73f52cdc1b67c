import { describe, expect, it } from 'vitest';
import { TokenizerError } from './errors.js';
import { Qwen2Tokenizer } from './tokenizer.js';
import { loadQwen2Instruct, readFixture, readJsonl } from './test-fixtures.js';

const vocabJson = readFixture('tokenizer/vocab.json');
const mergesTxt = readFixture('tokenizer/merges.txt');

describe('loading from vocab.json + merges.txt (+ tokenizer_config.json)', () => {
  const fromJson = loadQwen2Instruct();
  const fromVocab = Qwen2Tokenizer.fromFiles({
    vocabJson,
    mergesTxt,
    tokenizerConfigJson: readFixture('configs/Qwen2-0.5B-Instruct/tokenizer_config.json'),
  });
  const golden = readJsonl<{ text: string; ids: number[] }>('tokenizer/qwen2_tokenizer_golden.jsonl');

  it('gives the golden ids and the same vocabulary as tokenizer.json', () => {
    for (const c of golden) expect(fromVocab.encode(c.text)).toEqual(c.ids);
    expect(fromVocab.vocabSize).toBe(fromJson.vocabSize);
    expect(fromVocab.eosTokenId).toBe(151645);
    expect(fromVocab.tokenToId('<|im_start|>')).toBe(151644);
  });

  it('accepts merges.txt with a "#version" header and CRLF line ends', () => {
    const tok = Qwen2Tokenizer.fromFiles({ vocabJson, mergesTxt: '#version: 0.2\r\n' + mergesTxt.replaceAll('\n', '\r\n') });
    for (const c of golden.slice(0, 40)) expect(tok.encode(c.text)).toEqual(c.ids);
  });

  it('without tokenizer_config.json adds <|endoftext|> (transformers\' Qwen2Tokenizer default) as eos', () => {
    const tok = Qwen2Tokenizer.fromFiles({ vocabJson, mergesTxt });
    expect(tok.eosTokenId).toBe(151643);
    expect(tok.encode('a<|endoftext|>')).toEqual([64, 151643]);
    expect(tok.hasChatTemplate).toBe(false);
  });
});

describe('metadata', () => {
  const tok = loadQwen2Instruct();
  it('exposes vocab size, eos and token <-> id', () => {
    expect(tok.vocabSize).toBe(151646);
    expect(tok.eosTokenId).toBe(151645);
    expect(tok.tokenToId('Ġworld')).toBe(1879);
    expect(tok.idToToken(1879)).toBe('Ġworld');
    expect(tok.tokenToId('no such token')).toBeUndefined();
    expect(tok.idToToken(-1)).toBeUndefined();
    expect(tok.idToToken(151646)).toBeUndefined();
  });
  it('base tokenizer.json alone: eos is <|endoftext|>', () => {
    const base = Qwen2Tokenizer.fromFiles({ tokenizerJson: readFixture('tokenizer/tokenizer.json') });
    expect(base.eosTokenId).toBe(151643);
  });
});

describe('decode', () => {
  const tok = loadQwen2Instruct();
  it('skips special tokens on request', () => {
    const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
    expect(tok.decode(ids)).toBe('<|im_start|>user\nhi<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
  });
  it('decodes an empty list and a typed array', () => {
    expect(tok.decode([])).toBe('');
    expect(tok.decode(Int32Array.from(tok.encode('héllo wörld')))).toBe('héllo wörld');
  });
  it('keeps a leading U+FEFF and replaces an incomplete character with U+FFFD', () => {
    expect(tok.decode(tok.encode('\ufeffx'))).toBe('\ufeffx');
    const emoji = tok.encode('🫠'); // three byte-level tokens: the first ends mid-character
    expect(emoji.length).toBe(3);
    expect(tok.decode(emoji.slice(0, 1))).toBe('\ufffd');
  });
  it('decodes ids without a token to nothing, as Hugging Face does (embedding padding rows)', () => {
    expect(tok.decode([64, 151646, 151935, 65, 10_000_000])).toBe('ab');
  });
  it('throws TokenizerError on ids that are not non-negative integers', () => {
    expect(() => tok.decode([-1])).toThrow(/not a non-negative integer/);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
    expect(() => tok.decode([Number.NaN])).toThrow(TokenizerError);
  });
});

describe('tokenBytes', () => {
  const tok = loadQwen2Instruct();
  it('gives the raw bytes of each token, part of a character included', () => {
    const emoji = tok.encode('🫠');
    const joined = emoji.flatMap((id) => [...tok.tokenBytes(id)!]);
    expect(joined).toEqual([...new TextEncoder().encode('🫠')]);
    expect(tok.tokenBytes(emoji[0]!)!.length).toBeLessThan(4); // ends mid-character
    const world = tok.tokenToId('Ġworld')!;
    expect(new TextDecoder().decode(tok.tokenBytes(world))).toBe(' world');
    expect(new TextDecoder().decode(tok.tokenBytes(tok.tokenToId('<|im_end|>')!))).toBe('<|im_end|>');
  });
  it('gives undefined for an id without a token and throws on a bad id', () => {
    expect(tok.tokenBytes(151935)).toBeUndefined();
    expect(tok.tokenBytes(10_000_000)).toBeUndefined();
    expect(() => tok.tokenBytes(-1)).toThrow(TokenizerError);
  });
});

describe('encode input checks', () => {
  const tok = loadQwen2Instruct();
  it('throws TokenizerError on a non-string', () => {
    expect(() => tok.encode(42 as unknown as string)).toThrow(TokenizerError);
  });
  it('encodes the empty string to no ids', () => {
    expect(tok.encode('')).toEqual([]);
  });
});

describe('bad files', () => {
  const tokenizerJson = readFixture('tokenizer/tokenizer.json');
  // A small tokenizer.json with Qwen2's pipeline (the 256 byte-level tokens and one merge), so that
  // variations of it are cheap to build.
  const full = JSON.parse(tokenizerJson) as Record<string, any>;
  const byteTokens = Object.fromEntries(Object.entries(full.model.vocab as Record<string, number>).filter(([, id]) => id < 256));
  const json = { ...full, added_tokens: [], model: { ...full.model, vocab: { ...byteTokens, 'ĠĠ': 256 }, merges: ['Ġ Ġ'] } };
  const small = (patch: Record<string, unknown>) => JSON.stringify({ ...json, ...patch });
  const expectError = (files: Parameters<typeof Qwen2Tokenizer.fromFiles>[0], pattern: RegExp) => {
    let error: unknown;
    try {
      Qwen2Tokenizer.fromFiles(files);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TokenizerError);
    expect((error as Error).message).toMatch(pattern);
  };

  it('the small tokenizer works (so the errors below come from the patch)', () => {
    const tok = Qwen2Tokenizer.fromFiles({ tokenizerJson: small({}) });
    expect(tok.encode('a  ')).toEqual([64, 256]);
  });
  it('names what is missing', () => {
    expectError({}, /need tokenizer.json, or vocab.json together with merges.txt; got nothing/);
    expectError({ vocabJson }, /got vocabJson/);
  });
  it('rejects corrupt JSON', () => {
    expectError({ tokenizerJson: tokenizerJson.slice(0, 1000) }, /tokenizer.json is not valid JSON/);
    expectError({ tokenizerJson, tokenizerConfigJson: '{' }, /tokenizer_config.json is not valid JSON/);
    expectError({ vocabJson: '[1,2]', mergesTxt }, /vocab.json: the vocabulary must be an object/);
  });
  it('rejects a merge whose parts are not in the vocabulary', () => {
    expectError({ vocabJson, mergesTxt: 'Ġ Ġ\nzzzq zzzr\n' }, /merges.txt: merge 2 "zzzq zzzr": its left part is not in the vocabulary/);
    expectError({ vocabJson, mergesTxt: 'ĠĠĠ\n' }, /merge 1 .* is not "left right"/);
  });
  it('rejects bad vocabulary ids', () => {
    expectError({ vocabJson: '{"a": -1}', mergesTxt: '' }, /token "a" has invalid id -1/);
    expectError({ vocabJson: '{"a": "x"}', mergesTxt: '' }, /invalid id "x"/);
  });
  it('rejects a vocabulary without the 256 byte-level tokens', () => {
    expectError({ vocabJson: '{"a": 0}', mergesTxt: '' }, /lacks the byte-level token for byte 0x0/);
  });
  it('rejects pipelines other than Qwen2\'s', () => {
    expectError({ tokenizerJson: small({ model: { ...json.model, type: 'WordPiece' } }) }, /model type "WordPiece" is not supported/);
    expectError({ tokenizerJson: small({ model: { ...json.model, byte_fallback: true } }) }, /byte_fallback/);
    expectError({ tokenizerJson: small({ normalizer: { type: 'NFKC' } }) }, /normalizer .* is not supported/);
    expectError({ tokenizerJson: small({ pre_tokenizer: { type: 'Whitespace' } }) }, /pre_tokenizer is not Qwen2's/);
    expectError({ tokenizerJson: small({ decoder: { type: 'WordPiece' } }) }, /decoder type "WordPiece" is not supported/);
    expectError({ tokenizerJson: small({ model: undefined }) }, /no "model" object/);
    expectError({ tokenizerJson: small({ added_tokens: [{ id: 5 }] }) }, /an added token has no string "content"/);
  });
  it('accepts merges as [left, right] pairs (newer serializer)', () => {
    const tok = Qwen2Tokenizer.fromFiles({ tokenizerJson: small({ model: { ...json.model, merges: [['Ġ', 'Ġ']] } }) });
    expect(tok.encode('a  ')).toEqual([64, 256]);
    expectError({ tokenizerJson: small({ model: { ...json.model, merges: [['Ġ']] } }) }, /merge 1 is neither/);
  });
});
