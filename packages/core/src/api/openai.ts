import type { ChatMessage, Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import type { TokenLogprob } from '../generate/logprobs.js';
import { JsonSchemaError, type JsonSchema, type ResponseFormat } from '../constrain/json-schema.js';
import type { ChatOptions, GenerateOptions, GenerationChunk, GenerationResult } from './types.js';
import { ToolCallFilter, type ToolCall, type ToolChoice, type ToolDefinition } from './tool-calls.js';
import type { Qwen2 } from './qwen2.js';

/** The request of `openai.chat.completions.create`, in OpenAI's field names. */
export interface ChatCompletionRequest {
  messages: ChatMessage[];
  /** Echoed back; the loaded model answers whatever it says. */
  model?: string;
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  /** Extensions many OpenAI-compatible servers accept. */
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  stop?: string | string[];
  /** Only 1 is supported. */
  n?: number;
  tools?: ToolDefinition[];
  /** 'auto' (default), 'none', 'required', or `{ type: 'function', function: { name } }` (see {@link ChatOptions.toolChoice}). */
  tool_choice?: ToolChoice;
  /** Report each token's log-probability (`choices[].logprobs.content`). */
  logprobs?: boolean;
  /** With `logprobs`: how many most likely tokens to list at each position (0-20). */
  top_logprobs?: number;
  /** `{ type: 'json_object' }`, or `{ type: 'json_schema', json_schema: { name, schema, strict } }` (see {@link GenerateOptions.responseFormat}). */
  response_format?: OpenAIResponseFormat;
  signal?: AbortSignal;
}

/** One token of OpenAI's chat `logprobs.content`: its text, log-probability, UTF-8 bytes and the most likely tokens. */
export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/**
 * A token's log-probability in OpenAI's chat shape. `token` is the token's text (U+FFFD where it holds
 * part of a character), `bytes` its exact bytes.
 */
export function chatLogprob(tokenizer: Qwen2Tokenizer, lp: TokenLogprob): ChatLogprob {
  const entry = (id: number, logprob: number) => ({ token: tokenizer.decode([id]), logprob, bytes: [...(tokenizer.tokenBytes(id) ?? [])] });
  return { ...entry(lp.tokenId, lp.logprob), top_logprobs: lp.top.map((t) => entry(t.tokenId, t.logprob)) };
}

/** OpenAI's `response_format`. */
export type OpenAIResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name?: string; description?: string; schema?: JsonSchema; strict?: boolean | null } };

/**
 * OpenAI's `response_format` as {@link ResponseFormat}. A `json_schema` without `schema` takes any JSON
 * value; `strict` changes nothing (the output always follows the schema).
 * @throws JsonSchemaError when the object has none of OpenAI's shapes
 */
export function fromOpenAIResponseFormat(format: unknown): ResponseFormat {
  const f = format as { type?: unknown; json_schema?: { schema?: JsonSchema } } | null;
  if (typeof f !== 'object' || f === null) throw new JsonSchemaError('response_format', 'must be an object');
  if (f.type === 'text' || f.type === 'json_object') return { type: f.type };
  if (f.type === 'json_schema') {
    const spec = f.json_schema;
    if (typeof spec !== 'object' || spec === null) throw new JsonSchemaError('response_format', "json_schema must be an object with a 'schema'");
    return { type: 'json_schema', schema: spec.schema ?? true };
  }
  throw new JsonSchemaError('response_format', `type must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(f.type)}`);
}

/** OpenAI's finish reasons; an aborted request reports 'stop'. */
export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** A whole chat completion (OpenAI's `chat.completion` object). */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  /** With tool calls, `content` is the text before them (null when there is none). */
  choices: { index: number; message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }; finish_reason: FinishReason; logprobs: { content: ChatLogprob[] } | null }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** One streamed piece (OpenAI's `chat.completion.chunk` object). */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: { role?: 'assistant'; content?: string; tool_calls?: (ToolCall & { index: number })[] }; finish_reason: FinishReason | null; logprobs: { content: ChatLogprob[] } | null }[];
  /** On the last chunk only. */
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** `model.openai`: OpenAI's chat API shape over a loaded model. */
export interface OpenAIChat {
  chat: {
    completions: {
      /** Streams `chat.completion.chunk` objects. */
      create(request: ChatCompletionRequest & { stream: true }): AsyncIterable<ChatCompletionChunk>;
      /** Resolves to one `chat.completion` object. */
      create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
      /** A stream when `request.stream` is true, otherwise a promise of the whole completion. */
      create(request: ChatCompletionRequest): Promise<ChatCompletion> | AsyncIterable<ChatCompletionChunk>;
    };
  };
}

/** Maps OpenAI's request fields to {@link GenerateOptions}. @throws RangeError for n != 1 */
export function toGenerateOptions(req: ChatCompletionRequest): GenerateOptions {
  if (req.n !== undefined && req.n !== 1) throw new RangeError(`n = ${req.n} is not supported (only one choice per request)`);
  if (!Array.isArray(req.messages) || req.messages.length === 0) throw new RangeError('messages must be a non-empty array');
  const o: GenerateOptions = {};
  const max = req.max_completion_tokens ?? req.max_tokens;
  if (max !== undefined) o.maxNewTokens = max;
  if (req.temperature !== undefined) o.temperature = req.temperature;
  if (req.top_p !== undefined) o.topP = req.top_p;
  if (req.top_k !== undefined) o.topK = req.top_k;
  if (req.min_p !== undefined) o.minP = req.min_p;
  if (req.repetition_penalty !== undefined) o.repetitionPenalty = req.repetition_penalty;
  if (req.presence_penalty !== undefined) o.presencePenalty = req.presence_penalty;
  if (req.frequency_penalty !== undefined) o.frequencyPenalty = req.frequency_penalty;
  if (req.seed !== undefined) o.seed = req.seed;
  if (req.stop !== undefined) o.stop = typeof req.stop === 'string' ? [req.stop] : req.stop;
  if (req.response_format !== undefined) o.responseFormat = fromOpenAIResponseFormat(req.response_format);
  if (req.logprobs) o.logprobs = req.top_logprobs ?? 0;
  if (req.signal) o.signal = req.signal;
  return o;
}

/** OpenAI's finish reason of a finished reply: 'tool_calls' when it made calls; an abort reads 'stop'. */
export function finishReason(r: GenerationResult): FinishReason {
  if (r.toolCalls && r.toolCalls.length > 0) return 'tool_calls';
  return r.finishReason === 'length' ? 'length' : 'stop';
}

/** The chat options of a request: generation options, tools and tool choice. */
export function toChatOptions(req: ChatCompletionRequest): ChatOptions {
  const o: ChatOptions = toGenerateOptions(req);
  if (req.tools) o.tools = req.tools;
  if (req.tool_choice !== undefined) o.toolChoice = req.tool_choice;
  return o;
}

/** The assistant message of a finished reply: tool calls apart from the text before them. */
export function assistantMessage(r: GenerationResult): ChatCompletion['choices'][number]['message'] {
  if (!r.toolCalls || r.toolCalls.length === 0) return { role: 'assistant', content: r.text };
  const before = r.text.slice(0, r.text.indexOf('<tool_call>')).trimEnd();
  return { role: 'assistant', content: before === '' ? null : before, tool_calls: r.toolCalls };
}

/** The one choice of a whole chat completion: the message, the finish reason, the logprobs when asked for. */
export function chatChoice(tokenizer: Qwen2Tokenizer, r: GenerationResult): ChatCompletion['choices'][number] {
  return {
    index: 0,
    message: assistantMessage(r),
    finish_reason: finishReason(r),
    logprobs: r.logprobs ? { content: r.logprobs.map((lp) => chatLogprob(tokenizer, lp)) } : null,
  };
}

type ChunkChoice = ChatCompletionChunk['choices'][number];

/**
 * The choices of a streamed chat completion, chunk by chunk. With tools offered, text that may be a
 * call is held back until the reply ends; the calls then come as one `delta.tool_calls` choice.
 */
export class ChatChunkChoices {
  private readonly filter: ToolCallFilter | undefined;

  constructor(private readonly tokenizer: Qwen2Tokenizer, options: ChatOptions) {
    this.filter = options.tools?.length && options.toolChoice !== 'none' ? new ToolCallFilter() : undefined;
  }

  /** The choice a generated chunk gives, or undefined when it shows nothing yet. */
  push(chunk: GenerationChunk): ChunkChoice | undefined {
    const text = this.filter ? this.filter.push(chunk.text) : chunk.text;
    const logprobs = chunk.logprob ? { content: [chatLogprob(this.tokenizer, chunk.logprob)] } : null;
    return text || logprobs ? { index: 0, delta: { content: text }, finish_reason: null, logprobs } : undefined;
  }

  /** The last choices once the reply is done: held-back text, the tool calls, and the finish reason (last). */
  finish(r: GenerationResult): ChunkChoice[] {
    const out: ChunkChoice[] = [];
    const rest = this.filter?.finish();
    if (rest?.text) out.push({ index: 0, delta: { content: rest.text }, finish_reason: null, logprobs: null });
    if (rest && rest.toolCalls.length > 0) {
      out.push({ index: 0, delta: { tool_calls: rest.toolCalls.map((call, index) => ({ index, ...call })) }, finish_reason: null, logprobs: null });
    }
    out.push({ index: 0, delta: {}, finish_reason: finishReason(r), logprobs: null });
    return out;
  }
}

function usage(r: GenerationResult) {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.ids.length, total_tokens: r.promptTokens + r.ids.length };
}

/** @internal builds `model.openai` */
export function createOpenAI(model: Qwen2): OpenAIChat {
  function create(req: ChatCompletionRequest): Promise<ChatCompletion> | AsyncIterable<ChatCompletionChunk> {
    const id = `chatcmpl-${Math.random().toString(36).slice(2, 14)}`;
    const created = Math.floor(Date.now() / 1000);
    const name = req.model ?? model.source;
    if (!req.stream) {
      return (async () => {
        const stream = model.chat(req.messages, toChatOptions(req));
        const r = await stream.result;
        return {
          id, object: 'chat.completion', created, model: name,
          choices: [chatChoice(model.tokenizer, r)],
          usage: usage(r),
        } satisfies ChatCompletion;
      })();
    }
    return {
      async *[Symbol.asyncIterator]() {
        const options = toChatOptions(req);
        const stream = model.chat(req.messages, options);
        const base = { id, object: 'chat.completion.chunk' as const, created, model: name };
        yield { ...base, choices: [{ index: 0, delta: { role: 'assistant' as const, content: '' }, finish_reason: null, logprobs: null }] };
        const choices = new ChatChunkChoices(model.tokenizer, options);
        for await (const c of stream) {
          const choice = choices.push(c);
          if (choice) yield { ...base, choices: [choice] };
        }
        const r = await stream.result;
        const last = choices.finish(r);
        for (const [i, choice] of last.entries()) yield { ...base, choices: [choice], ...(i === last.length - 1 ? { usage: usage(r) } : {}) };
      },
    };
  }
  return { chat: { completions: { create: create as OpenAIChat['chat']['completions']['create'] } } };
}
