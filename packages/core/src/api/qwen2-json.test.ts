import Ajv from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import type { JsonSchema } from '../constrain/json-schema.js';
import { fromOpenAIResponseFormat, type ChatCompletionChunk } from './openai.js';
import type { ToolDefinition } from './tool-calls.js';
import type { Qwen2 } from './qwen2.js';
import { loadFullVocabModel } from './test-model.js';
import type { GenerationChunk } from './types.js';

// Random weights and Qwen2's real tokenizer: unconstrained, the model writes noise, so every valid
// document below is the constraint's doing.
let model: Qwen2;
beforeAll(async () => {
  model = await loadFullVocabModel();
}, 60_000);
afterAll(() => model?.dispose());

const PERSON: JsonSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer' },
    mood: { enum: ['happy', 'sad', null] },
    tags: { type: 'array', items: { type: 'string', maxLength: 4 }, maxItems: 3 },
  },
  required: ['name', 'age', 'mood', 'tags'],
  additionalProperties: false,
};

describe('constrained generation (reference backend, full-vocab fixture)', { timeout: 120_000 }, () => {
  it('writes a document valid against the schema, greedy and sampled, and ends with it', async () => {
    const validate = new Ajv().compile(PERSON as object);
    const runs = [
      { temperature: 0 },
      { temperature: 1, seed: 1 },
      { temperature: 0.7, topK: 20, topP: 0.8, seed: 2, repetitionPenalty: 1.05 },
    ];
    for (const sampling of runs) {
      const result = await model.generate('Describe a person as JSON:', { ...sampling, maxNewTokens: 200, responseFormat: { type: 'json_schema', schema: PERSON } });
      expect(result.finishReason, result.text).toBe('stop');
      const value = JSON.parse(result.text);
      expect(validate(value), `${result.text}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('json_object gives an object; the stream adds up to the result', async () => {
    const chunks: GenerationChunk[] = [];
    const stream = model.generate('{', { temperature: 0.9, seed: 5, maxNewTokens: 120, responseFormat: { type: 'json_object' } });
    for await (const c of stream) chunks.push(c);
    const result = await stream;
    expect(chunks.map((c) => c.text).join('')).toBe(result.text);
    if (result.finishReason === 'stop') {
      const value = JSON.parse(result.text);
      expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    } else {
      // Out of tokens inside the document: what came is still a prefix the grammar allowed (starts with '{').
      expect(result.finishReason).toBe('length');
      expect(result.text.trimStart().startsWith('{')).toBe(true);
    }
  });

  it('is the same with and without device tokens (the constraint reads logits on the host either way)', async () => {
    const serial = Object.assign(new ReferenceBackend(), { argmaxOnDevice: undefined, embedOnDevice: undefined, sampleOnDevice: undefined });
    const other = await loadFullVocabModel({ backend: serial });
    try {
      const options = { temperature: 0.8, seed: 9, maxNewTokens: 60, responseFormat: { type: 'json_schema' as const, schema: PERSON } };
      const a = await model.generate('x', options);
      const b = await other.generate('x', options);
      expect(b.ids).toEqual(a.ids);
    } finally {
      await other.dispose();
    }
  });

  it('model.openai takes OpenAI\'s response_format', async () => {
    const validate = new Ajv().compile(PERSON as object);
    const completion = await model.openai.chat.completions.create({
      messages: [{ role: 'user', content: 'A person?' }],
      temperature: 0,
      max_tokens: 200,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
    });
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(validate(JSON.parse(completion.choices[0]!.message.content!))).toBe(true);
    expect(fromOpenAIResponseFormat({ type: 'json_object' })).toEqual({ type: 'json_object' });
    expect(fromOpenAIResponseFormat({ type: 'json_schema', json_schema: { name: 'any' } })).toEqual({ type: 'json_schema', schema: true });
    expect(() => fromOpenAIResponseFormat({ type: 'json_schema' })).toThrow(/json_schema must be an object/);
    expect(() => fromOpenAIResponseFormat('json')).toThrow(/must be an object/);
  });

  const TOOLS: ToolDefinition[] = [
    { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false } } },
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } }, required: ['zone'] } } },
  ];

  it('a required tool call: one call of an offered tool with valid arguments', async () => {
    const ajv = new Ajv();
    for (const [toolChoice, names] of [['required', ['get_weather', 'get_time']], [{ type: 'function', function: { name: 'get_time' } }, ['get_time']]] as const) {
      for (const seed of [1, 2]) {
        const result = await model.chat([{ role: 'user', content: 'Weather in Paris?' }], { tools: TOOLS, toolChoice, temperature: 1, seed, maxNewTokens: 120 });
        expect(result.finishReason, result.text).toBe('stop');
        expect(result.toolCalls, result.text).toHaveLength(1);
        const { name, arguments: args } = result.toolCalls![0]!.function;
        expect(names).toContain(name);
        const validate = ajv.compile(TOOLS.find((t) => t.function.name === name)!.function.parameters as object);
        expect(validate(JSON.parse(args))).toBe(true);
      }
    }
    await expect(model.chat([{ role: 'user', content: 'x' }], { toolChoice: 'required' })).rejects.toThrow(/needs tools/);
  });

  it('toolChoice none offers no tools (the same reply as without them)', async () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    const plain = await model.chat(messages, { temperature: 0, maxNewTokens: 8 });
    const none = await model.chat(messages, { tools: TOOLS, toolChoice: 'none', temperature: 0, maxNewTokens: 8 });
    expect(none.ids).toEqual(plain.ids);
    expect(none.toolCalls).toBeUndefined();
  });

  it('model.openai: tool_choice required answers with tool_calls, whole and streamed', async () => {
    const request = { messages: [{ role: 'user' as const, content: 'Time?' }], tools: TOOLS, tool_choice: 'required' as const, temperature: 0, max_tokens: 120 };
    const completion = await model.openai.chat.completions.create(request);
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const streamed: ChatCompletionChunk[] = [];
    for await (const chunk of model.openai.chat.completions.create({ ...request, stream: true })) streamed.push(chunk);
    const calls = streamed.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls.map((c) => [c.index, c.function.name, c.function.arguments])).toEqual([[0, choice.message.tool_calls![0]!.function.name, choice.message.tool_calls![0]!.function.arguments]]);
    expect(streamed.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(''); // the call is not shown as text
    expect(streamed.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('fails at once, naming the keyword, on a schema it cannot honour', async () => {
    await expect(model.generate('x', { responseFormat: { type: 'json_schema', schema: { type: 'string', format: 'email' } } })).rejects.toThrow(/"format" is not supported/);
  });
});
