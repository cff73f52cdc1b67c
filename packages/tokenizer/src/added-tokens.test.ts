// Added-token handling (special flag, lstrip / rstrip / single_word / normalized) against Hugging Face's
// tokenizer built from the same tokenizer.json with extra added tokens.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Qwen2Tokenizer } from './tokenizer.js';
import { readFixture } from './test-fixtures.js';

interface HfTokenizer {
  encodeBatch(inputs: string[]): Promise<Array<{ getIds(): number[] }>>;
  decodeBatch(ids: number[][], skipSpecialTokens: boolean): Promise<string[]>;
}
const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers') as { Tokenizer: { fromString(json: string): HfTokenizer } };

const base = JSON.parse(readFixture('tokenizer/tokenizer.json')) as { added_tokens: object[] };
const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: false };
const extra = [
  { id: 151646, content: '<mask>', ...flags, lstrip: true, special: true },
  { id: 151647, content: '[R]', ...flags, rstrip: true, special: true },
  { id: 151648, content: 'xqzw', ...flags, single_word: true, normalized: true },
  // Already a vocabulary token: Hugging Face keeps the vocabulary id (1158), not the listed one.
  { id: 151653, content: 'word', ...flags },
  { id: 151649, content: 'caf\u00e9', ...flags, normalized: true },
  { id: 151650, content: '<|x|>', ...flags },
  { id: 151651, content: '<|x|>y', ...flags },
  { id: 151652, content: '<both>', ...flags, lstrip: true, rstrip: true, special: true },
];
const withExtra = JSON.stringify({ ...base, added_tokens: [...base.added_tokens, ...extra] });

const TEXTS = [
  'a <mask> b', 'a   <mask>b', '<mask>', '  <mask>  ', 'x\n\t<mask>', 'a[R]   b', '[R]\n\nz', '[R]',
  'xqzw', 'a xqzw b', 'axqzw', 'xqzws', 'xqzw_x', ' xqzw.', 'xqzwxqzw', 'xqzw xqzw', 'xqzw1', 'éxqzw', '-xqzw-',
  'word', 'swords', 'a word',
  'café', 'cafe\u0301', 'un café noir', 'cafe\u0301s',
  '<|x|>', '<|x|>y', '<|x|>yy', 'a<|x|>b', '<|im_start|><|x|>y<|im_end|>', '<mask><mask>', ' <both>  <both> ', 'a <both>\nb',
  '<|endoftext|> <mask> xqzw café [R] <|x|>y',
];

describe('added tokens with lstrip / rstrip / single_word / normalized, vs tokenizers@0.23.2', () => {
  const ours = Qwen2Tokenizer.fromFiles({ tokenizerJson: withExtra });
  const hf = Tokenizer.fromString(withExtra);

  it('gives identical ids and decodes', async () => {
    const expected = (await hf.encodeBatch(TEXTS)).map((e) => e.getIds());
    expect(TEXTS.map((t) => ours.encode(t))).toEqual(expected);
    expect(expected.map((ids) => ours.decode(ids))).toEqual(await hf.decodeBatch(expected, false));
    expect(expected.map((ids) => ours.decode(ids, { skipSpecialTokens: true }))).toEqual(await hf.decodeBatch(expected, true));
  });

  it('counts added tokens in vocabSize and maps them both ways', () => {
    expect(ours.vocabSize).toBe(151653); // max id + 1: 'word' took its vocabulary id
    expect(ours.tokenToId('word')).toBe(1158);
    expect(ours.tokenToId('<mask>')).toBe(151646);
    expect(ours.idToToken(151649)).toBe('café');
    expect(ours.isSpecialToken(151646)).toBe(true);
    expect(ours.isSpecialToken(151650)).toBe(false);
  });
});

describe('allowSpecial: false', () => {
  // Reference: the same tokenizer with its special tokens removed, so their text is ordinary text.
  const plain = JSON.stringify({ ...base, added_tokens: [] });
  const hfPlain = Tokenizer.fromString(plain);
  const ours = Qwen2Tokenizer.fromFiles({ tokenizerJson: readFixture('tokenizer/tokenizer.json') });
  const texts = ['<|im_start|>user\nhi<|im_end|>', '<|endoftext|>', 'x<|endoftext|>y <|im_end|>'];

  it('encodes special-token text as ordinary text', async () => {
    const expected = (await hfPlain.encodeBatch(texts)).map((e) => e.getIds());
    expect(texts.map((t) => ours.encode(t, { allowSpecial: false }))).toEqual(expected);
    expect(ours.encode('<|endoftext|>')).toEqual([151643]);
    expect(expected[1]).not.toEqual([151643]);
  });
});
