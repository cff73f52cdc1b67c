/** `qwen2 serve` driven by a real HTTP client (fetch) on the full-vocabulary fixture with the real tokenizer. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, FIXTURES, MODELS, modelWithTokenizer } from './test/helpers.js';
import { readEvents, startServer, type ServerProcess } from './test/server-process.js';

interface ChatChunk { object: string; choices: { delta: { content?: string; role?: string }; finish_reason: string | null }[] }

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

describe('qwen2 serve (built CLI)', () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  let server: ServerProcess;
  const tokenizer = Qwen2Tokenizer.fromFiles({
    tokenizerJson: readFileSync(join(FIXTURES, 'tokenizer', 'tokenizer.json'), 'utf8'),
    tokenizerConfigJson: readFileSync(join(FIXTURES, 'configs', 'Qwen2-0.5B-Instruct', 'tokenizer_config.json'), 'utf8'),
  });
  const golden = JSON.parse(readFileSync(join(MODELS, 'full-vocab-bf16', 'golden.json'), 'utf8')) as { sequences: { input_ids: number[]; greedy_new_tokens: number[] }[] };

  beforeAll(async () => {
    model = modelWithTokenizer();
    server = await startServer(['--model', model.dir, '--backend', 'js', '--served-model-name', 'fixture']);
  }, 60_000);
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
    model?.cleanup();
  });

  const chat = (content: string, extra: Record<string, unknown> = {}, signal?: AbortSignal) =>
    post(`${server.url}/v1/chat/completions`, { model: 'fixture', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 12, ...extra }, signal);

  it('GET /v1/models lists the model', async () => {
    const r = await fetch(`${server.url}/v1/models`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ object: 'list', data: [{ id: 'fixture', object: 'model' }] });
  });

  it('/v1/completions with token ids reproduces the golden greedy continuation', async () => {
    const seq = golden.sequences[1]!;
    const r = await post(`${server.url}/v1/completions`, { prompt: seq.input_ids, max_tokens: 16, temperature: 0, ignore_eos: true });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { choices: { text: string; finish_reason: string }[]; usage: Record<string, number> };
    expect(body.choices[0]!.text).toBe(tokenizer.decode(seq.greedy_new_tokens));
    expect(body.choices[0]!.finish_reason).toBe('length');
    expect(body.usage).toEqual({ prompt_tokens: seq.input_ids.length, completion_tokens: 16, total_tokens: seq.input_ids.length + 16 });
    // The same request streamed: the text pieces add up to the same continuation.
    const streamed = await post(`${server.url}/v1/completions`, { prompt: seq.input_ids, max_tokens: 16, temperature: 0, ignore_eos: true, stream: true });
    const { events, done } = await readEvents(streamed);
    expect(done).toBe(true);
    const pieces = events as { object: string; choices: { text: string; finish_reason: string | null }[] }[];
    expect(pieces.every((e) => e.object === 'text_completion')).toBe(true);
    expect(pieces.map((e) => e.choices[0]!.text).join('')).toBe(body.choices[0]!.text);
    expect(pieces.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  it('streams a chat completion as server-sent events with the same text as the non-streaming answer', async () => {
    const plain = (await (await chat('Hello!')).json()) as { choices: { message: { content: string; role: string } }[]; usage: { completion_tokens: number } };
    expect(plain.choices[0]!.message.role).toBe('assistant');
    const r = await chat('Hello!', { stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { events, done } = await readEvents(r);
    expect(done).toBe(true);
    const chunks = events as (ChatChunk & { usage?: { completion_tokens: number } })[];
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(chunks.filter((c) => c.choices.length > 0 && (c.choices[0]!.delta.content ?? '') !== '').length).toBeGreaterThan(1);
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(plain.usage.completion_tokens);
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'length' || c.choices[0]?.finish_reason === 'stop')).toBe(true);
  });

  it('two concurrent requests both complete, each with its own sequential answer', async () => {
    const expectA = ((await (await chat('Tell me about cats.')).json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    const expectB = ((await (await chat('Count to five.')).json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    expect(expectA).not.toBe(expectB);
    const [a, b] = await Promise.all([
      chat('Tell me about cats.', { stream: true }).then(async (r) => readEvents(r)),
      chat('Count to five.').then(async (r) => (await r.json()) as { choices: { message: { content: string } }[] }),
    ]);
    expect(a.done).toBe(true);
    expect((a.events as ChatChunk[]).flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('')).toBe(expectA);
    expect(b.choices[0]!.message.content).toBe(expectB);
  });

  it('a client that disconnects aborts its generation, and the next request runs at once', async () => {
    const controller = new AbortController();
    const r = await chat('Write a very long story.', { stream: true, max_tokens: 100_000, ignore_eos: true }, controller.signal);
    let got = 0;
    await readEvents(r, () => {
      if (++got === 3) controller.abort();
    }).catch(() => {});
    const started = Date.now();
    const next = await chat('Hello!', { max_tokens: 4 });
    expect(next.status).toBe(200);
    // 100,000 tokens would take minutes on the reference backend; an aborted generation frees the queue.
    expect(Date.now() - started).toBeLessThan(15_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.stderr()).toMatch(/client left/);
  });

  it('answers bad requests with OpenAI-shaped errors', async () => {
    const bad = await post(`${server.url}/v1/chat/completions`, { messages: [] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'messages' } });
    const notJson = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${server.url}/v1/nothing`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/completions`)).status).toBe(405);
    const badSchema = await chat('x', { response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'string', pattern: 'a+' } } } });
    expect(badSchema.status).toBe(400);
    expect(await badSchema.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'response_format', message: expect.stringMatching(/"pattern" is not supported/) } });
    const badType = await chat('x', { response_format: { type: 'yaml' } });
    expect(badType.status).toBe(400);
    const badTools = await chat('x', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { n: { type: 'number', maximum: 3 } } } } }], tool_choice: 'required' });
    expect(badTools.status).toBe(400);
    expect(await badTools.json()).toMatchObject({ error: { param: 'tools', message: expect.stringMatching(/tools\/0\/function\/parameters\/properties\/n: maximum is supported on integers only/) } });
    const noTools = await chat('x', { tool_choice: 'required' });
    expect(noTools.status).toBe(400);
    const badChoice = await chat('x', { tool_choice: 'sometimes' });
    expect(await badChoice.json()).toMatchObject({ error: { param: 'tool_choice' } });
  });

  it('/v1/completions logprobs with echo, as evaluation harnesses ask for them', async () => {
    type Logprobs = { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] };
    type Body = { choices: { text: string; logprobs: Logprobs }[] };
    const prompt = golden.sequences[1]!.input_ids;
    // One greedy token with its logprob...
    const one = (await (await post(`${server.url}/v1/completions`, { prompt, max_tokens: 1, temperature: 0, logprobs: 2, ignore_eos: true })).json()) as Body;
    const gen = one.choices[0]!.logprobs;
    expect(gen.tokens).toHaveLength(1);
    expect(Object.keys(gen.top_logprobs[0]!)).toHaveLength(2);
    expect(gen.token_logprobs[0]).toBe(Math.max(...Object.values(gen.top_logprobs[0]!))); // greedy: the most likely
    const next = golden.sequences[1]!.greedy_new_tokens[0]!;
    // ...is the last prompt token's logprob when prompt + that token is scored with echo and max_tokens 0.
    const echoed = (await (await post(`${server.url}/v1/completions`, { prompt: [...prompt, next], max_tokens: 0, echo: true, logprobs: 1, temperature: 0 })).json()) as Body;
    const lp = echoed.choices[0]!.logprobs;
    expect(echoed.choices[0]!.text).toBe(tokenizer.decode([...prompt, next]));
    expect(lp.tokens).toHaveLength(prompt.length + 1);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    expect(lp.token_logprobs.at(-1)).toBeCloseTo(gen.token_logprobs[0]!, 4);
    expect(lp.text_offset[0]).toBe(0);
    expect(lp.text_offset.every((o, i) => i === 0 || o >= lp.text_offset[i - 1]!)).toBe(true);
    // The lm-evaluation-harness request: echo, logprobs 1, max_tokens 1.
    const harness = (await (await post(`${server.url}/v1/completions`, { prompt, max_tokens: 1, echo: true, logprobs: 1, temperature: 0, ignore_eos: true })).json()) as Body;
    expect(harness.choices[0]!.logprobs.tokens).toHaveLength(prompt.length + 1);
    expect(harness.choices[0]!.logprobs.token_logprobs.slice(1, -1)).toEqual(lp.token_logprobs.slice(1, -1));
    // Streamed: the echoed prompt first (with its logprobs), then each token with its own.
    const streamed = await readEvents(await post(`${server.url}/v1/completions`, { prompt, max_tokens: 1, echo: true, logprobs: 1, temperature: 0, ignore_eos: true, stream: true }));
    const chunks = streamed.events as { choices: { text: string; logprobs: Logprobs | null }[] }[];
    expect(chunks[0]!.choices[0]!.text).toBe(tokenizer.decode(prompt));
    const joined = chunks.flatMap((c) => c.choices[0]?.logprobs?.token_logprobs ?? []);
    expect(joined).toEqual(harness.choices[0]!.logprobs.token_logprobs);
    const bad = await post(`${server.url}/v1/completions`, { prompt, logprobs: 21 });
    expect(bad.status).toBe(400);
  });

  it('chat logprobs and top_logprobs', async () => {
    const r = (await (await chat('Hello!', { logprobs: true, top_logprobs: 3 })).json()) as { choices: { logprobs: { content: { token: string; logprob: number; top_logprobs: unknown[] }[] } }[]; usage: { completion_tokens: number } };
    expect(r.choices[0]!.logprobs.content).toHaveLength(r.usage.completion_tokens);
    expect(r.choices[0]!.logprobs.content.every((e) => e.top_logprobs.length === 3 && e.logprob <= 0)).toBe(true);
    expect((await chat('x', { top_logprobs: 2 })).status).toBe(400);
  });

  it('tool_choice required: the answer is a tool call (finish_reason tool_calls), whole or streamed', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Look up a word', parameters: { type: 'object', properties: { word: { type: 'string', maxLength: 8 } }, required: ['word'] } } }];
    const r = await chat('Define "cat".', { tools, tool_choice: 'required', max_tokens: 100 });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { choices: { message: { content: string | null; tool_calls: { id: string; type: string; function: { name: string; arguments: string } }[] }; finish_reason: string }[] };
    const choice = body.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    expect(choice.message.tool_calls[0]!.type).toBe('function');
    expect(choice.message.tool_calls[0]!.function.name).toBe('lookup');
    expect(typeof (JSON.parse(choice.message.tool_calls[0]!.function.arguments) as { word: unknown }).word).toBe('string');
    const streamed = await chat('Define "cat".', { tools, tool_choice: 'required', max_tokens: 100, stream: true });
    const { events } = await readEvents(streamed);
    const deltas = (events as { choices: { delta: { content?: string; tool_calls?: { index: number; function: { name: string; arguments: string } }[] }; finish_reason: string | null }[] }[]).map((e) => e.choices[0]!);
    expect(deltas.map((d) => d.delta.content ?? '').join('')).toBe('');
    expect(deltas.flatMap((d) => d.delta.tool_calls ?? []).map((c) => [c.index, c.function.name, c.function.arguments])).toEqual([[0, 'lookup', choice.message.tool_calls[0]!.function.arguments]]);
    expect(deltas.at(-1)!.finish_reason).toBe('tool_calls');
  });

  it('response_format json_schema: the answer is valid JSON of the schema, streamed or not', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 10 }, population: { type: 'integer' } }, required: ['city', 'population'], additionalProperties: false };
    const response_format = { type: 'json_schema', json_schema: { name: 'city', schema, strict: true } };
    const r = await chat('A city as JSON', { response_format, max_tokens: 120 });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]!.finish_reason).toBe('stop');
    const value = JSON.parse(body.choices[0]!.message.content) as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['city', 'population']);
    expect(Number.isInteger(value.population)).toBe(true);
    const streamed = await chat('A city as JSON', { response_format, max_tokens: 120, stream: true });
    const { events } = await readEvents(streamed);
    const text = (events as ChatChunk[]).flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(text).toBe(body.choices[0]!.message.content);
    const object = await chat('Anything', { response_format: { type: 'json_object' }, max_tokens: 120, temperature: 1, seed: 3 });
    const content = ((await object.json()) as { choices: { message: { content: string }; finish_reason: string }[] }).choices[0]!;
    if (content.finish_reason === 'stop') expect(JSON.parse(content.message.content)).toBeTypeOf('object');
    else expect(content.message.content.trimStart().startsWith('{')).toBe(true);
  });
});

describe('qwen2 serve --parallel (built CLI)', () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  let server: ServerProcess;
  const golden = JSON.parse(readFileSync(join(MODELS, 'full-vocab-bf16', 'golden.json'), 'utf8')) as { sequences: { input_ids: number[]; greedy_new_tokens: number[] }[] };

  beforeAll(async () => {
    model = modelWithTokenizer();
    server = await startServer(['--model', model.dir, '--backend', 'js', '--parallel', '3', '--max-context', '128']);
  }, 60_000);
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
    model?.cleanup();
  });

  it('answers concurrent requests together, each with its own golden continuation, while one client leaves', async () => {
    const leaving = new AbortController();
    const left = post(`${server.url}/v1/completions`, { prompt: golden.sequences[0]!.input_ids, max_tokens: 100_000, temperature: 0, ignore_eos: true, stream: true }, leaving.signal)
      .then(async (r) => {
        const reader = r.body!.getReader();
        for (let got = 0; got < 3; got++) await reader.read();
        leaving.abort();
      }).catch(() => {});
    const answers = await Promise.all(golden.sequences.map(async (seq) => {
      const r = await post(`${server.url}/v1/completions`, { prompt: seq.input_ids, max_tokens: 16, temperature: 0, ignore_eos: true });
      expect(r.status).toBe(200);
      return (await r.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
    }));
    await left;
    const tokenizer = Qwen2Tokenizer.fromFiles({
      tokenizerJson: readFileSync(join(FIXTURES, 'tokenizer', 'tokenizer.json'), 'utf8'),
      tokenizerConfigJson: readFileSync(join(FIXTURES, 'configs', 'Qwen2-0.5B-Instruct', 'tokenizer_config.json'), 'utf8'),
    });
    answers.forEach((a, i) => {
      expect(a.choices[0]!.text).toBe(tokenizer.decode(golden.sequences[i]!.greedy_new_tokens));
      expect(a.usage.completion_tokens).toBe(16);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.stderr()).toMatch(/client left/);
  });

  it('refuses --parallel with speculative decoding, and a --parallel out of range', () => {
    const both = cli(['serve', '--model', model.dir, '--backend', 'js', '--parallel', '2', '--prompt-lookup']);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--parallel above 1 cannot be combined with --prompt-lookup or --draft-model/);
    const zero = cli(['serve', '--model', model.dir, '--backend', 'js', '--parallel', '0']);
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/--parallel/);
  });
});
