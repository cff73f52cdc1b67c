/** `--json-object` and `--json-schema` of `generate` and `chat` (built CLI, full-vocabulary fixture, random weights). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, lines, modelWithTokenizer } from './test/helpers.js';

const SCHEMA = {
  type: 'object',
  properties: { title: { type: 'string', maxLength: 8 }, year: { type: 'integer' }, color: { enum: ['red', 'blue'] } },
  required: ['title', 'year', 'color'],
  additionalProperties: false,
};

describe('qwen2 generate / chat with a JSON constraint', () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  let dir: string;
  beforeAll(() => {
    model = modelWithTokenizer();
    dir = mkdtempSync(join(tmpdir(), 'qwen2-schema-'));
    writeFileSync(join(dir, 'schema.json'), JSON.stringify(SCHEMA));
    writeFileSync(join(dir, 'bad.json'), '{"type": "string", ');
    writeFileSync(join(dir, 'pattern.json'), JSON.stringify({ type: 'string', pattern: '^a' }));
  });
  afterAll(() => {
    model?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const base = () => ['generate', '--model', model.dir, '--backend', 'js', '--prompt', 'A book as JSON:', '--max-new-tokens', '150'];

  it('--json-schema FILE: the text is JSON of the schema, sampled and greedy', () => {
    for (const sampling of [['--temperature', '0'], ['--temperature', '1', '--seed', '4']]) {
      const r = cli([...base(), ...sampling, '--json-schema', join(dir, 'schema.json'), '--json']);
      expect(r.status, r.stderr).toBe(0);
      const value = JSON.parse((JSON.parse(r.stdout) as { text: string }).text) as Record<string, unknown>;
      expect(Object.keys(value)).toEqual(['title', 'year', 'color']);
      expect((value.title as string).length).toBeLessThanOrEqual(8);
      expect(Number.isInteger(value.year)).toBe(true);
      expect(['red', 'blue']).toContain(value.color);
    }
  });

  it('--json-schema with the schema inline, and --json-object, streamed; chat too', () => {
    const inline = cli([...base(), '--temperature', '0', '--json-schema', JSON.stringify({ type: 'array', items: { type: 'boolean' }, minItems: 2, maxItems: 2 })]);
    expect(inline.status, inline.stderr).toBe(0);
    const arr = JSON.parse(inline.stdout) as unknown[];
    expect(arr.length).toBe(2);
    expect(arr.every((x) => typeof x === 'boolean')).toBe(true);
    // (Greedy, this random model writes one long string; this seed closes its object at once.)
    const object = cli([...base(), '--temperature', '1', '--seed', '1', '--json-object']);
    expect(object.status, object.stderr).toBe(0);
    const parsed = JSON.parse(object.stdout) as unknown;
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
    const chat = cli(['chat', '--model', model.dir, '--backend', 'js', '--temperature', '0', '--max-new-tokens', '150', '--json-schema', join(dir, 'schema.json')], { input: 'A book?\n' });
    expect(chat.status, chat.stderr).toBe(0);
    const reply = lines(chat.stdout).join('\n');
    expect(reply).toMatch(/"title"/);
  });

  it('refuses bad schema input in one line, before loading the model', () => {
    const cases: [string[], RegExp][] = [
      [['--json-schema', join(dir, 'missing.json')], /^qwen2: --json-schema: cannot read .*missing\.json/],
      [['--json-schema', join(dir, 'bad.json')], /^qwen2: --json-schema: .*bad\.json is not JSON/],
      [['--json-schema', join(dir, 'pattern.json')], /^qwen2: --json-schema: JSON schema at #: the keyword "pattern" is not supported/],
      [['--json-schema', '{"type": "object", "required": ["x"]}'], /required property "x" is not among the properties/],
      [['--json-object', '--json-schema', join(dir, 'schema.json')], /either --json-object or --json-schema/],
    ];
    for (const [flags, message] of cases) {
      const r = cli(['generate', '--model', join(dir, 'no-such-model'), '--prompt', 'x', ...flags]);
      expect(r.status).not.toBe(0);
      expect(lines(r.stderr)[0], r.stderr).toMatch(message);
    }
  });
});
