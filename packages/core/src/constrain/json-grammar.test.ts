import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../sampling/rng.js';
import { advance, canEnd, initialState, isFinished, step } from './json-grammar.js';
import { randomWalk } from './random-walk.js';
import { ANY, ANY_OBJECT, compileJsonSchema, type JsonSchema, type ValueNode } from './json-schema.js';

const encoder = new TextEncoder();
const bytesOf = (text: string): Uint8Array => encoder.encode(text);
const accepts = (node: ValueNode, text: string): boolean => {
  const s = advance(initialState(node), bytesOf(text));
  return s.length > 0 && canEnd(s);
};
const isJson = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

/** A random JSON value within the grammar's limits (16 integer and fraction digits, 2 exponent digits). */
function randomValue(rng: SeededRandom, depth: number): unknown {
  const r = rng.uniform();
  if (depth > 4 || r < 0.35) {
    const k = Math.floor(rng.uniform() * 6);
    if (k === 0) return null;
    if (k === 1) return rng.uniform() < 0.5;
    if (k === 2) return Math.floor((rng.uniform() - 0.5) * 1e6);
    if (k === 3) return Number(((rng.uniform() - 0.5) * 1e3).toPrecision(6));
    return randomString(rng);
  }
  if (r < 0.7) return Array.from({ length: Math.floor(rng.uniform() * 4) }, () => randomValue(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rng.uniform() * 4); i > 0; i--) o[randomString(rng)] = randomValue(rng, depth + 1);
  return o;
}

const PIECES = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', 'é', '中', '🫠', '\u2028', '{', ']', ',', ':', '0', 'true'];
function randomString(rng: SeededRandom): string {
  let s = '';
  for (let i = Math.floor(rng.uniform() * 6); i > 0; i--) s += PIECES[Math.floor(rng.uniform() * PIECES.length)]!;
  return s;
}

describe('the JSON grammar against JSON.parse', () => {
  it('accepts random documents, compact and indented, and every prefix stays alive', () => {
    const rng = new SeededRandom(1);
    for (let n = 0; n < 300; n++) {
      const value = randomValue(rng, 0);
      for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
        expect(accepts(ANY, text), text).toBe(true);
        const bytes = bytesOf(text);
        let s = initialState(ANY);
        for (let i = 0; i < bytes.length; i++) {
          s = step(s, bytes[i]!);
          expect(s.length, `${text} refused at byte ${i}`).toBeGreaterThan(0);
        }
      }
    }
  });

  it('can end exactly where JSON.parse succeeds, on every prefix', () => {
    const rng = new SeededRandom(2);
    for (let n = 0; n < 200; n++) {
      const text = JSON.stringify(randomValue(rng, 0));
      for (let k = 1; k <= text.length; k++) {
        const prefix = text.slice(0, k);
        const s = advance(initialState(ANY), bytesOf(prefix));
        expect(canEnd(s), prefix).toBe(isJson(prefix));
      }
    }
  });

  it('accepts nothing that JSON.parse refuses (random edits of valid documents)', () => {
    const rng = new SeededRandom(3);
    const alphabet = bytesOf('{}[]",:\\ \n\t0123456789-+.eEtrufalsn\u00e9x');
    let accepted = 0;
    for (let n = 0; n < 3000; n++) {
      const bytes = [...bytesOf(JSON.stringify(randomValue(rng, 0)))];
      for (let e = 1 + Math.floor(rng.uniform() * 2); e > 0; e--) {
        const at = Math.floor(rng.uniform() * (bytes.length + 1));
        const b = alphabet[Math.floor(rng.uniform() * alphabet.length)]!;
        const kind = rng.uniform();
        if (kind < 0.4) bytes.splice(at, 1, b);
        else if (kind < 0.7) bytes.splice(at, 0, b);
        else bytes.splice(at, 1);
      }
      const text = new TextDecoder().decode(Uint8Array.from(bytes));
      const s = advance(initialState(ANY), Uint8Array.from(bytes));
      if (s.length > 0 && canEnd(s)) {
        accepted++;
        expect(isJson(text), text).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(100); // the check ran on edits that stayed valid
  });

  it('refuses what JSON (or its limits) does not allow', () => {
    for (const bad of ['01', '1.', '.5', '+1', '-', '1e', '"a', '"\\x"', '"\u0001"', '[1,]', '{"a":1,}', '{a:1}', 'nul', 'True',
      '1 ', ' \n \n1', '12345678901234567', '1e123', '[1]]', '{}{}']) {
      expect(accepts(ANY, bad), bad).toBe(false);
    }
    // Invalid UTF-8 inside a string: a lone continuation byte, an overlong form, a surrogate.
    for (const raw of [[0x22, 0x80, 0x22], [0x22, 0xc0, 0xaf, 0x22], [0x22, 0xed, 0xa0, 0x80, 0x22]]) {
      expect(advance(initialState(ANY), Uint8Array.from(raw)).length).toBe(0);
    }
    expect(accepts(ANY, '\n' + ' '.repeat(20) + '1')).toBe(true);
    expect(accepts(ANY, '\n' + ' '.repeat(21) + '1')).toBe(false);
  });

  it('json_object: only an object at the top level, then nothing', () => {
    expect(accepts(ANY_OBJECT, '{"a":[1,{"b":null}]}')).toBe(true);
    for (const bad of ['[1]', '"x"', '1', 'null']) expect(accepts(ANY_OBJECT, bad), bad).toBe(false);
    const s = advance(initialState(ANY_OBJECT), bytesOf('{}'));
    expect(isFinished(s)).toBe(true);
    expect(step(s, 0x20).length).toBe(0);
  });
});

/** Schemas with documents they must take and refuse (beyond what the random walks check). */
const CASES: { schema: JsonSchema; good: string[]; bad: string[] }[] = [
  {
    schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age'] },
    good: ['{"name":"x","age":3}', '{"name":"","age":-1,"tags":["a"]}', '{ "name": "x", "age": 3 }'],
    bad: ['{"age":3,"name":"x"}', '{"name":"x"}', '{"name":"x","age":3.5}', '{"name":"x","age":3,"other":1}', '{"name":1,"age":3}'],
  },
  {
    schema: { enum: ['red', 'green', 1, 12, null, { a: 1 }] },
    good: ['"red"', '"green"', '1', '12', 'null', '{"a":1}'],
    bad: ['"blue"', '2', '123', '{"a":2}', '"re"'],
  },
  {
    schema: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 3 },
    good: ['[1,2]', '[1.5,-2e10,0]'],
    bad: ['[]', '[1]', '[1,2,3,4]', '["1",2]'],
  },
  {
    schema: { type: 'string', minLength: 2, maxLength: 3 },
    good: ['"ab"', '"abc"', '"中文"', '"\\n\\t"'],
    bad: ['"a"', '"abcd"', '"\\u0041b"'],
  },
  {
    schema: { anyOf: [{ type: 'string' }, { type: 'null' }, { $ref: '#/$defs/point' }], $defs: { point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'], additionalProperties: false } } },
    good: ['"s"', 'null', '{"x":1,"y":2}'],
    bad: ['1', '{"x":1}', '{"y":2,"x":1}'],
  },
  {
    schema: { type: 'object', additionalProperties: { type: 'boolean' } },
    good: ['{}', '{"any key":true,"b":false}'],
    bad: ['{"a":1}', '[]'],
  },
  {
    schema: { type: 'object', properties: { p: { allOf: [{ $ref: '#/$defs/n' }], description: 'a number' } }, required: ['p'], $defs: { n: { type: 'integer' } } },
    good: ['{"p":1}'],
    bad: ['{"p":"1"}', '{}'],
  },
  {
    schema: { type: 'array', items: { type: 'integer', minimum: 5, maximum: 120 } },
    good: ['[5,120,17,99]', '[]'],
    bad: ['[4]', '[121]', '[-5]', '[0]', '[1200]', '[05]'],
  },
  {
    schema: { type: 'integer', exclusiveMinimum: -3, exclusiveMaximum: 2.5 },
    good: ['-2', '-0', '0', '2'],
    bad: ['-3', '3', '-20', '1.0'],
  },
  {
    schema: { type: 'integer', minimum: 1000, maximum: 1005 },
    good: ['1000', '1005'],
    bad: ['1', '100', '999', '1006', '10000'],
  },
  {
    // A tagged union as pydantic writes it: oneOf with a discriminator, told apart by const tags.
    schema: {
      oneOf: [
        { type: 'object', properties: { kind: { const: 'cat' }, lives: { type: 'integer' } }, required: ['kind', 'lives'] },
        { type: 'object', properties: { kind: { const: 'dog' }, good: { type: 'boolean' } }, required: ['kind'] },
        { type: 'null' },
      ],
      discriminator: { propertyName: 'kind' },
    },
    good: ['{"kind":"cat","lives":9}', '{"kind":"dog"}', 'null'],
    bad: ['{"kind":"cat"}', '{"kind":"cow"}', '{}'],
  },
  {
    schema: { type: ['integer', 'boolean'] },
    good: ['0', '-7', 'true'],
    bad: ['1.0', '"1"', 'null'],
  },
];

describe('JSON schemas', () => {
  it('take and refuse chosen documents', () => {
    for (const { schema, good, bad } of CASES) {
      const node = compileJsonSchema(schema);
      for (const g of good) expect(accepts(node, g), `${JSON.stringify(schema)} ${g}`).toBe(true);
      for (const b of bad) expect(accepts(node, b), `${JSON.stringify(schema)} ${b}`).toBe(false);
    }
  });

  it('every document a random walk of the grammar writes is valid against the schema (Ajv)', () => {
    const ajv = new Ajv({ strict: false });
    const schemas: JsonSchema[] = [
      ...CASES.map((c) => c.schema),
      { type: 'object', properties: { id: { type: 'integer' }, children: { type: 'array', items: { $ref: '#' }, maxItems: 2 }, note: { type: ['string', 'null'] } }, required: ['id'] },
      { type: 'object', properties: { a: { const: 'fixed' }, b: { type: 'boolean' }, c: { type: 'object' } }, required: ['a', 'c'] },
      { type: 'array', items: { type: 'integer', minimum: -7, exclusiveMaximum: 300 }, minItems: 3 },
      { type: 'integer', minimum: 12345, maximum: 12399 },
      { oneOf: [{ type: 'string', maxLength: 3 }, { type: 'array', items: { type: 'integer' }, maxItems: 2 }, { enum: [1.5, true] }] },
      {},
    ];
    const rng = new SeededRandom(4);
    for (const schema of schemas) {
      const validate = ajv.compile(schema as object);
      const node = compileJsonSchema(schema);
      for (let n = 0; n < 40; n++) {
        const text = randomWalk(node, rng);
        expect(isJson(text), text).toBe(true);
        expect(validate(JSON.parse(text)), `${JSON.stringify(schema)}: ${text} ${ajv.errorsText(validate.errors)}`).toBe(true);
      }
    }
  });
});
