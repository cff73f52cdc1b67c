// Compiles a JSON Schema into the value grammar that json-grammar.ts matches byte by byte.
//
// The grammar is a subset of what the schema accepts, never a superset: every document it lets through
// validates against the schema. Where generating every valid document would need more than a byte-level
// automaton without lookahead, it narrows: objects hold only the declared properties, in the schema's
// order (the order llama.cpp's json-schema-to-grammar and OpenAI's structured outputs also emit);
// integers are written without fraction or exponent. Keywords it cannot enforce (pattern, minimum,
// format, ...) are refused with an error naming them, rather than ignored.

/** A JSON Schema (draft 2020-12 / draft-07 subset) or a boolean schema. */
export type JsonSchema = boolean | { [keyword: string]: unknown };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What `responseFormat` asks for: free text, any JSON object, or a document valid against a schema. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: JsonSchema };

/** A schema that cannot be compiled: `path` is the JSON pointer of the offending subschema. */
export class JsonSchemaError extends Error {
  override readonly name = 'JsonSchemaError';
  constructor(readonly path: string, message: string) {
    super(`JSON schema at ${path}: ${message}`);
  }
}

/** One value of the grammar. Nodes may form cycles (recursive schemas through $ref). */
export type ValueNode =
  | { kind: 'any' }
  | { kind: 'object'; properties: PropertyNode[]; additional: ValueNode | null }
  | { kind: 'array'; items: ValueNode; minItems: number; maxItems: number }
  | { kind: 'string'; minLength: number; maxLength: number }
  /** `min`/`max`: inclusive bounds of an integer (±Infinity when unbounded). */
  | { kind: 'number'; integer: boolean; min: number; max: number }
  | { kind: 'literal'; values: Uint8Array[] }
  | { kind: 'union'; options: ValueNode[] }
  /** Parts one after another: a literal part exactly (no whitespace before it), a value after an optional gap. */
  | { kind: 'sequence'; parts: ValueNode[] };

/** A declared property: its key as JSON text after the opening quote (closing quote included). */
export interface PropertyNode {
  name: string;
  key: Uint8Array;
  value: ValueNode;
  required: boolean;
}

export const ANY: ValueNode = { kind: 'any' };

/** A grammar node that matches `text` exactly (its UTF-8 bytes). */
export function literalText(text: string): ValueNode {
  return { kind: 'literal', values: [encoder.encode(text)] };
}
/** The top level of `json_object`: an object of any keys and values. */
export const ANY_OBJECT: ValueNode = { kind: 'object', properties: [], additional: ANY };

const ANNOTATIONS = new Set(['$schema', '$id', '$comment', '$defs', 'definitions', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly',
  // OpenAPI's hint for tagged unions (pydantic writes it beside oneOf); the tags themselves are consts.
  'discriminator']);
const HANDLED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'minLength', 'maxLength', 'enum', 'const', 'anyOf', 'allOf', '$ref',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'oneOf']);
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

/**
 * The grammar of a response format, or undefined for plain text.
 * @throws JsonSchemaError naming the subschema and keyword it cannot honour
 */
export function compileResponseFormat(format: ResponseFormat): ValueNode | undefined {
  if (typeof format !== 'object' || format === null) throw new JsonSchemaError('#', `responseFormat must be an object, got ${String(format)}`);
  if (format.type === 'text') return undefined;
  if (format.type === 'json_object') return ANY_OBJECT;
  if (format.type === 'json_schema') return compileJsonSchema(format.schema);
  throw new JsonSchemaError('#', `responseFormat.type must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify((format as { type: unknown }).type)}`);
}

/** A declared property of an object grammar. */
export function propertyNode(name: string, value: ValueNode, required: boolean): PropertyNode {
  return { name, key: encoder.encode(JSON.stringify(name).slice(1)), value, required };
}

/**
 * Compiles a JSON Schema into a value grammar. `$ref`s point into the same document (`#/...`).
 * @param root - how errors name the schema itself (its subschemas follow as JSON pointers)
 * @throws JsonSchemaError naming the subschema and keyword it cannot honour
 */
export function compileJsonSchema(schema: JsonSchema, root = '#'): ValueNode {
  const compiled = new Map<object, ValueNode>();

  const resolve = (ref: string, path: string): { target: JsonSchema; at: string } => {
    if (!ref.startsWith('#')) throw new JsonSchemaError(path, `$ref ${JSON.stringify(ref)} is not supported: only references inside the schema ('#/...')`);
    let target: unknown = schema;
    for (const raw of ref.slice(1).split('/').slice(1)) {
      const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      target = typeof target === 'object' && target !== null ? (target as Record<string, unknown>)[part] : undefined;
      if (target === undefined) throw new JsonSchemaError(path, `$ref ${JSON.stringify(ref)} points to nothing`);
    }
    return { target: target as JsonSchema, at: ref };
  };

  const compile = (s: JsonSchema, path: string): ValueNode => {
    if (s === true) return ANY;
    if (s === false) throw new JsonSchemaError(path, 'the schema `false` accepts no value');
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new JsonSchemaError(path, `a schema must be an object or a boolean, got ${JSON.stringify(s)}`);
    const done = compiled.get(s);
    if (done) return done;
    // Registered before its children are compiled, so a recursive $ref finds it (filled in below).
    const node = {} as ValueNode;
    compiled.set(s, node);
    Object.assign(node, compileObject(s, path));
    return node;
  };

  const compileObject = (s: Record<string, unknown>, path: string): ValueNode => {
    for (const key of Object.keys(s)) {
      if (!HANDLED.has(key) && !ANNOTATIONS.has(key)) {
        throw new JsonSchemaError(path, `the keyword ${JSON.stringify(key)} is not supported (supported: ${[...HANDLED].join(', ')})`);
      }
    }
    if (s.$ref !== undefined) {
      if (typeof s.$ref !== 'string') throw new JsonSchemaError(path, '$ref must be a string');
      const others = Object.keys(s).filter((k) => k !== '$ref' && !ANNOTATIONS.has(k));
      if (others.length > 0) throw new JsonSchemaError(path, `$ref beside other keywords (${others.join(', ')}) is not supported`);
      const { target, at } = resolve(s.$ref, path);
      return compile(target, at);
    }
    if (s.allOf !== undefined) {
      // One subschema only (what pydantic writes to give a $ref a description); more would need an intersection.
      if (!Array.isArray(s.allOf) || s.allOf.length !== 1) throw new JsonSchemaError(path, 'allOf is supported with exactly one subschema');
      const others = Object.keys(s).filter((k) => k !== 'allOf' && !ANNOTATIONS.has(k));
      if (others.length > 0) throw new JsonSchemaError(path, `allOf beside other keywords (${others.join(', ')}) is not supported`);
      return compile(s.allOf[0] as JsonSchema, `${path}/allOf/0`);
    }
    for (const key of ['anyOf', 'oneOf'] as const) {
      const list = s[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.length === 0) throw new JsonSchemaError(path, `${key} must be a non-empty array`);
      const others = Object.keys(s).filter((k) => k !== key && !ANNOTATIONS.has(k));
      if (others.length > 0) throw new JsonSchemaError(path, `${key} beside other keywords (${others.join(', ')}) is not supported: move them into each alternative`);
      const options = list.map((o, i) => compile(o as JsonSchema, `${path}/${key}/${i}`));
      // oneOf needs exactly one alternative to match: taken only when no document can match two.
      if (key === 'oneOf') {
        for (let i = 0; i < options.length; i++) {
          for (let j = i + 1; j < options.length; j++) {
            if (!disjoint(options[i]!, options[j]!)) throw new JsonSchemaError(path, `oneOf alternatives ${i} and ${j} may both match one document (supported: alternatives of different types, or objects told apart by a required const property); use anyOf if either may match`);
          }
        }
      }
      return { kind: 'union', options };
    }
    if (s.const !== undefined || s.enum !== undefined) return literal(s, path);
    const types = typesOf(s, path);
    if (types === undefined) return ANY;
    const options = types.map((t) => typed(t, s, path));
    return options.length === 1 ? options[0]! : { kind: 'union', options };
  };

  const literal = (s: Record<string, unknown>, path: string): ValueNode => {
    let values: unknown[];
    if (s.const !== undefined) values = [s.const];
    else if (Array.isArray(s.enum) && s.enum.length > 0) values = s.enum;
    else throw new JsonSchemaError(path, 'enum must be a non-empty array');
    const types = s.type === undefined ? undefined : new Set(typesOf(s, path));
    const kept = values.filter((v) => types === undefined || types.has(jsonType(v)) || (types.has('number') && jsonType(v) === 'integer'));
    if (kept.length === 0) throw new JsonSchemaError(path, 'no enum/const value has the schema\'s type');
    return { kind: 'literal', values: kept.map((v) => encoder.encode(JSON.stringify(v))) };
  };

  const typed = (type: string, s: Record<string, unknown>, path: string): ValueNode => {
    switch (type) {
      case 'null': return { kind: 'literal', values: [encoder.encode('null')] };
      case 'boolean': return { kind: 'literal', values: [encoder.encode('true'), encoder.encode('false')] };
      case 'number':
        for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
          if (s[k] !== undefined) throw new JsonSchemaError(path, `${k} is supported on integers only (type "integer"), not on type "number"`);
        }
        return { kind: 'number', integer: false, min: -Infinity, max: Infinity };
      case 'integer': {
        const { min, max } = integerBounds(s, path);
        return { kind: 'number', integer: true, min, max };
      }
      case 'string': {
        const minLength = count(s.minLength, 0, `${path}/minLength`);
        const maxLength = count(s.maxLength, Infinity, `${path}/maxLength`);
        if (minLength > maxLength) throw new JsonSchemaError(path, `minLength ${minLength} is above maxLength ${maxLength}`);
        return { kind: 'string', minLength, maxLength };
      }
      case 'array': {
        if (Array.isArray(s.items)) throw new JsonSchemaError(`${path}/items`, 'items as an array (tuples) is not supported');
        const minItems = count(s.minItems, 0, `${path}/minItems`);
        const maxItems = count(s.maxItems, Infinity, `${path}/maxItems`);
        if (minItems > maxItems) throw new JsonSchemaError(path, `minItems ${minItems} is above maxItems ${maxItems}`);
        const items = s.items === undefined ? ANY : compile(s.items as JsonSchema, `${path}/items`);
        return { kind: 'array', items, minItems, maxItems };
      }
      case 'object': {
        const declared = s.properties ?? {};
        if (typeof declared !== 'object' || declared === null || Array.isArray(declared)) throw new JsonSchemaError(`${path}/properties`, 'properties must be an object');
        const required = s.required ?? [];
        if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new JsonSchemaError(`${path}/required`, 'required must be an array of strings');
        const names = Object.keys(declared);
        for (const r of required as string[]) {
          if (!names.includes(r)) throw new JsonSchemaError(`${path}/required`, `the required property ${JSON.stringify(r)} is not among the properties`);
        }
        const properties = names.map((name) => propertyNode(
          name,
          compile((declared as Record<string, JsonSchema>)[name]!, `${path}/properties/${escapePointer(name)}`),
          (required as string[]).includes(name),
        ));
        // With declared properties, only they are generated (valid whatever additionalProperties says);
        // without, additionalProperties is the schema of every value.
        const extra = s.additionalProperties;
        const additional = names.length > 0 || extra === false ? null : extra === undefined ? ANY : compile(extra as JsonSchema, `${path}/additionalProperties`);
        return { kind: 'object', properties, additional };
      }
      default:
        throw new JsonSchemaError(path, `unknown type ${JSON.stringify(type)}`);
    }
  };

  return compile(schema, root);
}

/**
 * An integer's inclusive bounds from minimum/maximum/exclusiveMinimum/exclusiveMaximum (numbers, as in
 * draft 6 and later). Bounds beyond 2^53 are left out: the grammar writes at most 16 digits.
 */
function integerBounds(s: Record<string, unknown>, path: string): { min: number; max: number } {
  const bound = (k: string): number | undefined => {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new JsonSchemaError(`${path}/${k}`, `must be a finite number, got ${JSON.stringify(v)}`);
    return Math.abs(v) > Number.MAX_SAFE_INTEGER ? undefined : v;
  };
  const lows = [bound('minimum'), bound('exclusiveMinimum')].map((v, i) => (v === undefined ? -Infinity : i === 0 ? Math.ceil(v) : Math.floor(v) + 1));
  const highs = [bound('maximum'), bound('exclusiveMaximum')].map((v, i) => (v === undefined ? Infinity : i === 0 ? Math.floor(v) : Math.ceil(v) - 1));
  const min = Math.max(...lows), max = Math.min(...highs);
  if (min > max) throw new JsonSchemaError(path, `no integer lies between the bounds (${min} > ${max})`);
  return { min, max };
}

/** The schema's types: its `type`, or what its keywords imply; undefined when any value will do. */
function typesOf(s: Record<string, unknown>, path: string): string[] | undefined {
  if (s.type !== undefined) {
    const list = Array.isArray(s.type) ? s.type : [s.type];
    if (list.length === 0) throw new JsonSchemaError(`${path}/type`, 'type must not be an empty array');
    for (const t of list) if (typeof t !== 'string' || !TYPES.has(t)) throw new JsonSchemaError(`${path}/type`, `unknown type ${JSON.stringify(t)}`);
    return list as string[];
  }
  if (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined) return ['object'];
  if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) return ['array'];
  if (s.minLength !== undefined || s.maxLength !== undefined) return ['string'];
  return undefined;
}

/** Whether no document can match both grammars (decided on types, and on const tags of objects). */
function disjoint(a: ValueNode, b: ValueNode, depth = 0): boolean {
  // Recursive schemas (and nodes still being compiled) are not followed far: undecided means overlapping.
  if (depth > 8 || a.kind === undefined || b.kind === undefined) return false;
  if (a.kind === 'union') return a.options.every((o) => disjoint(o, b, depth + 1));
  if (b.kind === 'union') return b.options.every((o) => disjoint(a, o, depth + 1));
  const ta = kinds(a), tb = kinds(b);
  if (![...ta].some((t) => tb.has(t))) return true;
  if (a.kind === 'literal' && b.kind === 'literal') {
    const texts = new Set(a.values.map((v) => decoder.decode(v)));
    return b.values.every((v) => !texts.has(decoder.decode(v)));
  }
  if (a.kind === 'object' && b.kind === 'object') {
    // A property both require whose allowed values (consts, enums) have nothing in common.
    return a.properties.some((pa) => pa.required && b.properties.some((pb) => pb.required && pb.name === pa.name && disjoint(pa.value, pb.value, depth + 1)));
  }
  if (a.kind === 'literal' || b.kind === 'literal') {
    // A literal against a general type: disjoint when no literal value has that type.
    const [lit, other] = a.kind === 'literal' ? [a, b] : [b as Extract<ValueNode, { kind: 'literal' }>, a];
    return lit.values.every((v) => !kinds(other).has(jsonKind(JSON.parse(decoder.decode(v)))));
  }
  return false;
}

/** The JSON types a grammar's documents can have (integers count as numbers). */
function kinds(node: ValueNode): Set<string> {
  switch (node.kind) {
    case 'any': return new Set(['object', 'array', 'string', 'number', 'boolean', 'null']);
    case 'object': case 'array': case 'string': case 'number': return new Set([node.kind]);
    case 'literal': return new Set(node.values.map((v) => jsonKind(JSON.parse(decoder.decode(v)))));
    case 'union': return new Set(node.options.flatMap((o) => [...kinds(o)]));
    case 'sequence': return new Set(['text']);
  }
}

function jsonKind(v: unknown): string {
  const t = jsonType(v);
  return t === 'integer' ? 'number' : t;
}

/** The JSON Schema type of a JSON value (integers are 'integer'). */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function count(v: unknown, fallback: number, path: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new JsonSchemaError(path, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

function escapePointer(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}
