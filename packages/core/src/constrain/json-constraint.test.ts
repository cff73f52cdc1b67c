import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../sampling/rng.js';
import { sampleFromLogits } from '../sampling/sample.js';
import { JsonConstraint } from './json-constraint.js';
import { ANY, ANY_OBJECT, compileJsonSchema, compileResponseFormat, JsonSchemaError, type JsonSchema } from './json-schema.js';
import { TokenVocabulary } from './token-vocabulary.js';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const tokenizer = Qwen2Tokenizer.fromFiles({
  tokenizerJson: readFileSync(`${fixtures}tokenizer/tokenizer.json`, 'utf8'),
  tokenizerConfigJson: readFileSync(`${fixtures}configs/Qwen2-0.5B-Instruct/tokenizer_config.json`, 'utf8'),
});
const SIZE = 151936; // Qwen2's logits: the tokenizer's 151646 ids and padding rows
const vocab = TokenVocabulary.of(tokenizer, SIZE);
const EOS = new Set([tokenizer.eosTokenId!]);

/** Token ids of text, one token per piece. */
const ids = (...pieces: string[]): number[] => pieces.map((p) => {
  const t = tokenizer.encode(p);
  if (t.length !== 1) throw new Error(`${JSON.stringify(p)} is ${t.length} tokens`);
  return t[0]!;
});

/** The mask by feeding every token on its own. */
function bruteMask(c: JsonConstraint): Uint8Array {
  const m = new Uint8Array(SIZE);
  for (let id = 0; id < SIZE; id++) if (c.allows(id)) m[id] = 1;
  return m;
}

const SCHEMA: JsonSchema = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 5 }, score: { type: 'number' }, ok: { type: 'boolean' }, tags: { type: 'array', items: { enum: ['a', 'b'] } } },
  required: ['name', 'score'],
};

describe('TokenVocabulary', () => {
  it('leaves out special tokens and ids without a token, and keeps every other token\'s bytes', () => {
    expect(vocab.bytesOf(tokenizer.eosTokenId!)).toBeUndefined();
    expect(vocab.bytesOf(151900)).toBeUndefined();
    expect(new TextDecoder().decode(vocab.bytesOf(ids('Ġworld'.replace('Ġ', ' '))[0]!))).toBe(' world');
    expect(TokenVocabulary.of(tokenizer, SIZE)).toBe(vocab); // built once
  });
  it('counts plain string characters, and sends quotes, escapes and split characters to the others', () => {
    const [hello] = ids('hello');
    expect(vocab.plainChars[hello!]).toBe(5);
    const quoteId = ids('"')[0]!;
    expect(vocab.plainChars[quoteId]).toBe(-1);
    expect([...vocab.others]).toContain(quoteId);
    const emoji = tokenizer.encode('🫠');
    expect(vocab.plainChars[emoji[0]!]).toBe(-1); // part of a character
    // Inside a string a control byte before any quote refuses a token; the others are fed.
    const stringOthers = new Set(vocab.stringOthers);
    expect(stringOthers.has(ids('\n')[0]!)).toBe(false);
    expect(stringOthers.has(ids('",')[0]!)).toBe(true);
    expect(stringOthers.has(emoji[0]!)).toBe(true);
  });
});

describe('JsonConstraint masks', () => {
  it('equal feeding every token on its own, along a document (object, string with a limit, number, enum, end)', () => {
    const c = new JsonConstraint(compileJsonSchema(SCHEMA), vocab, EOS);
    const text = '{"name": "abc", "score": -1.5, "tags": ["a"]}';
    const tokens = tokenizer.encode(text);
    for (const id of tokens) {
      expect(c.mask()).toEqual(bruteMask(c));
      expect(c.allows(id)).toBe(true);
      c.accept(id);
    }
    expect(c.finished).toBe(true);
  });
  it('equal feeding every token on its own inside free strings, numbers and after a whole number', () => {
    for (const [node, text] of [[ANY_OBJECT, '{"k": "x y中'], [ANY, '[12'], [ANY, '12']] as const) {
      const c = new JsonConstraint(node, vocab, EOS);
      for (const id of tokenizer.encode(text)) c.accept(id);
      const mask = c.mask();
      expect(mask).toEqual(bruteMask(c));
      expect(mask[tokenizer.eosTokenId!]).toBe(text === '12' ? 1 : 0); // a stop token only once the document is whole
    }
  });
});

describe('JsonConstraint.choose', () => {
  const rng = new SeededRandom(7);
  const randomRow = (): Float32Array => Float32Array.from({ length: SIZE }, () => (rng.uniform() - 0.5) * 8);

  it('greedy gives the best allowed token, as the full mask would', () => {
    const c = new JsonConstraint(compileJsonSchema(SCHEMA), vocab, EOS);
    for (let n = 0; n < 8; n++) {
      const row = randomRow();
      const chosen = c.choose(row, 'greedy')!;
      const mask = c.mask();
      let best = -1;
      for (let i = 0; i < SIZE; i++) if (mask[i] && (best < 0 || row[i]! > row[best]!)) best = i;
      expect(chosen).toBe(best);
      c.accept(chosen);
    }
  });
  it('the best token itself when allowed (the lazy check)', () => {
    const c = new JsonConstraint(ANY, vocab, EOS);
    const row = new Float32Array(SIZE);
    const open = ids('{')[0]!;
    row[open] = 10;
    expect(c.choose(row, 'greedy')).toBe(open);
  });
  it('a draw is the sampler\'s draw over logits with the refused tokens at -Infinity', () => {
    const c = new JsonConstraint(compileJsonSchema(SCHEMA), vocab, EOS);
    for (let n = 0; n < 6; n++) {
      const row = randomRow();
      const params = { temperature: 0.8, topK: 40, topP: 0.9, minP: 0, repetitionPenalty: 1.1, presencePenalty: 0, frequencyPenalty: 0, history: { ids: Int32Array.from(ids('"', '{')), counts: Int32Array.of(1, 2) }, uniform: rng.uniform() };
      const mask = c.mask();
      const masked = row.map((v, i) => (mask[i] ? v : -Infinity));
      const chosen = c.choose(row, params)!;
      expect(chosen).toBe(sampleFromLogits(masked, params));
      expect(mask[chosen]).toBe(1);
      c.accept(chosen);
    }
  });
  it('ends when the document is whole and no stop token is allowed', () => {
    const c = new JsonConstraint(ANY, vocab, new Set());
    c.accept(ids('7')[0]!);
    // "7" may end or go on: a digit or nothing (no stop tokens here); a digit is refused by the logits.
    const row = new Float32Array(SIZE).fill(-1e9);
    row[ids('8')[0]!] = 1;
    expect(c.choose(row, 'greedy')).toBe(ids('8')[0]);
    const done = new JsonConstraint(ANY_OBJECT, vocab, new Set());
    done.accept(ids('{}')[0]!);
    expect(done.finished).toBe(true);
    expect(done.choose(row, 'greedy')).toBeUndefined();
  });
  it('refuses to accept a token that breaks the document', () => {
    const c = new JsonConstraint(ANY_OBJECT, vocab, EOS);
    expect(() => c.accept(ids('[')[0]!)).toThrow(/does not continue the JSON document/);
    expect(() => c.accept(tokenizer.eosTokenId!)).not.toThrow(); // stop tokens end generation; nothing to feed
  });
});

describe('schema errors name the subschema and the keyword', () => {
  it.each([
    [{ type: 'string', pattern: '^a' }, /#: the keyword "pattern" is not supported/],
    [{ type: 'object', properties: { n: { type: 'number', minimum: 0 } } }, /#\/properties\/n: minimum is supported on integers only/],
    [{ type: 'integer', minimum: 3, maximum: 2 }, /no integer lies between the bounds/],
    [{ type: 'integer', exclusiveMinimum: true }, /exclusiveMinimum: must be a finite number/],
    [{ $ref: '#/$defs/missing' }, /points to nothing/],
    [{ $ref: 'http://example.com/s.json' }, /only references inside the schema/],
    [{ type: 'object', properties: {}, required: ['x'] }, /required property "x" is not among the properties/],
    [{ type: 'wat' }, /unknown type "wat"/],
    [false, /accepts no value/],
    [{ enum: [] }, /non-empty array/],
    [{ type: 'string', minLength: 3, maxLength: 2 }, /minLength 3 is above maxLength 2/],
    [{ type: 'array', items: [{ type: 'string' }] }, /tuples/],
    [{ anyOf: [{ type: 'string' }], maxLength: 3 }, /move them into each alternative/],
    [{ allOf: [{ type: 'string' }, { maxLength: 3 }] }, /allOf is supported with exactly one subschema/],
    [{ oneOf: [{ type: 'integer' }, { type: 'number' }] }, /oneOf alternatives 0 and 1 may both match/],
    [{ oneOf: [{ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }, { type: 'object' }] }, /oneOf alternatives 0 and 1 may both match/],
    [{ oneOf: [{ enum: ['x', 2] }, { type: 'number' }] }, /oneOf alternatives 0 and 1 may both match/],
  ])('%j', (schema, message) => {
    expect(() => compileJsonSchema(schema as JsonSchema)).toThrow(JsonSchemaError);
    expect(() => compileJsonSchema(schema as JsonSchema)).toThrow(message);
  });
  it('a bad response format', () => {
    expect(() => compileResponseFormat({ type: 'xml' } as never)).toThrow(/must be 'text', 'json_object' or 'json_schema'/);
    expect(compileResponseFormat({ type: 'text' })).toBeUndefined();
  });
});
