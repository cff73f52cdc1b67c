import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { JsonSchemaError } from '../constrain/json-schema.js';
import { randomWalk } from '../constrain/random-walk.js';
import { SeededRandom } from '../sampling/rng.js';
import { messagesForTemplate, parseToolCalls, ToolCallFilter, toolCallGrammar, type ToolDefinition } from './tool-calls.js';

const TOOLS: ToolDefinition[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 20 } }, required: ['zone'], additionalProperties: false } } },
  { type: 'function', function: { name: 'ping' } },
];

const call = (name: string, args: unknown) => `<tool_call>\n${JSON.stringify({ name, arguments: args })}\n</tool_call>`;

describe('parseToolCalls', () => {
  it('takes one call, calls after text, and several calls', () => {
    const one = parseToolCalls(call('get_weather', { city: 'Paris' }))!;
    expect(one.content).toBe('');
    expect(one.toolCalls).toEqual([{ id: expect.stringMatching(/^call_[a-z0-9]{24}$/), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);
    const after = parseToolCalls(`Let me check.\n\n${call('get_time', { zone: 'UTC' })}\n${call('ping', {})}`)!;
    expect(after.content).toBe('Let me check.');
    expect(after.toolCalls.map((c) => c.function.name)).toEqual(['get_time', 'ping']);
    expect(after.toolCalls[0]!.id).not.toBe(after.toolCalls[1]!.id);
    // Arguments given as a string stay as they are; missing ones are {}.
    expect(parseToolCalls('<tool_call>{"name": "ping", "arguments": "{}"}</tool_call>')!.toolCalls[0]!.function.arguments).toBe('{}');
    expect(parseToolCalls('<tool_call>{"name": "ping"}</tool_call>')!.toolCalls[0]!.function.arguments).toBe('{}');
    // A last block cut off before its closing tag counts when its JSON is whole.
    expect(parseToolCalls('<tool_call>\n{"name": "ping", "arguments": {}}\n')!.toolCalls).toHaveLength(1);
  });
  it('is undefined for plain text and for blocks that are not calls', () => {
    for (const text of ['Hello', '<tool_call>\n{"name": ', '<tool_call>{"arguments": {}}</tool_call>', '<tool_call>[1]</tool_call>', `${call('ping', {})} and more text`]) {
      expect(parseToolCalls(text), text).toBeUndefined();
    }
  });
});

describe('ToolCallFilter', () => {
  it('shows text before the tag, holds a split tag and the calls, and gives the calls at the end', () => {
    const f = new ToolCallFilter();
    const shown = ['Sure', ' <tool', '_call>\n{"name": "ping", ', '"arguments": {}}\n</tool_call>'].map((p) => f.push(p));
    expect(shown).toEqual(['Sure', ' ', '', '']);
    const end = f.finish();
    expect(end.text).toBe('');
    expect(end.toolCalls.map((c) => c.function.name)).toEqual(['ping']);
  });
  it('releases held text that was no call', () => {
    const f = new ToolCallFilter();
    expect(f.push('a <')).toBe('a ');
    expect(f.push('b')).toBe('<b');
    expect(f.push(' <tool_')).toBe(' ');
    expect(f.finish()).toEqual({ text: '<tool_', toolCalls: [] });
    const g = new ToolCallFilter();
    expect(g.push('x <tool_call>not json')).toBe('x ');
    expect(g.finish()).toEqual({ text: '<tool_call>not json', toolCalls: [] });
  });
});

describe('toolCallGrammar', () => {
  it('writes only calls of the tools whose arguments are valid (Ajv)', () => {
    const ajv = new Ajv();
    const validators = new Map(TOOLS.map((t) => [t.function.name, ajv.compile((t.function.parameters ?? { type: 'object' }) as object)]));
    const rng = new SeededRandom(11);
    const seen = new Set<string>();
    const grammar = toolCallGrammar(TOOLS);
    for (let n = 0; n < 60; n++) {
      const text = randomWalk(grammar, rng);
      const parsed = parseToolCalls(text);
      expect(parsed, text).toBeDefined();
      expect(parsed!.toolCalls).toHaveLength(1);
      const { name, arguments: args } = parsed!.toolCalls[0]!.function;
      const validate = validators.get(name)!;
      expect(validate(JSON.parse(args)), `${text}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      seen.add(name);
    }
    expect(seen.size).toBe(3);
  });
  it('a named choice allows that tool only', () => {
    const rng = new SeededRandom(12);
    const grammar = toolCallGrammar(TOOLS, { type: 'function', function: { name: 'get_time' } });
    for (let n = 0; n < 20; n++) expect(parseToolCalls(randomWalk(grammar, rng))!.toolCalls[0]!.function.name).toBe('get_time');
  });
  it('refuses a choice of no tool and parameters it cannot enforce, naming where', () => {
    expect(() => toolCallGrammar(TOOLS, { type: 'function', function: { name: 'nope' } })).toThrow(/"nope", which is not among the tools/);
    expect(() => toolCallGrammar([])).toThrow(JsonSchemaError);
    const bad: ToolDefinition[] = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { n: { type: 'string', pattern: 'a' } } } } }];
    expect(() => toolCallGrammar(bad)).toThrow(/tools\/0\/function\/parameters\/properties\/n: the keyword "pattern" is not supported/);
  });
});

describe('messagesForTemplate', () => {
  it('turns OpenAI\'s JSON-text arguments into objects for the template, and leaves the rest', () => {
    const messages = [
      { role: 'user' as const, content: 'Weather?' },
      { role: 'assistant' as const, content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }, { id: 'c2', type: 'function', function: { name: 'x', arguments: 'not json' } }] },
      { role: 'tool' as const, content: '21 C', name: 'get_weather' },
    ];
    const out = messagesForTemplate(messages);
    expect(out[0]).toBe(messages[0]);
    expect((out[1]!.tool_calls![0] as { function: { arguments: unknown } }).function.arguments).toEqual({ city: 'Paris' });
    expect((out[1]!.tool_calls![1] as { function: { arguments: unknown } }).function.arguments).toBe('not json');
    expect(out[2]).toBe(messages[2]);
  });
  it('so that a Qwen2.5-style template writes the arguments as JSON, as the model was trained on', () => {
    // The tool parts of Qwen2.5-Instruct's template, in short: tools as JSON lines, calls with `arguments | tojson`.
    const template = '{% if tools %}<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\n{% endif %}'
      + '{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>\n{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}'
      + '{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}';
    const tokenizer = Qwen2Tokenizer.fromFiles({ tokenizerJson: readFileSync(fileURLToPath(new URL('../../../../fixtures/tokenizer/tokenizer.json', import.meta.url)), 'utf8') });
    const messages = [{ role: 'assistant' as const, content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }];
    const text = tokenizer.applyChatTemplate(messagesForTemplate(messages), { chatTemplate: template, tools: [TOOLS[2]] });
    expect(text).toContain('{"name": "get_weather", "arguments": {"city": "Paris"}}');
    expect(text).toContain('<tools>{"type": "function", "function": {"name": "ping"}}</tools>'); // (newlines after block tags are trimmed, as in transformers)
    // Without the conversion the template would quote the JSON text.
    expect(tokenizer.applyChatTemplate(messages, { chatTemplate: template })).toContain('"arguments": "{\\"city\\":\\"Paris\\"}"');
  });
});
