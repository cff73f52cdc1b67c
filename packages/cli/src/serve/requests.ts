/** Validation of OpenAI request bodies into core's chat messages and generation options. */
import { chatOutput, compileResponseFormat, fromOpenAIResponseFormat, JsonSchemaError, type ChatOptions, type GenerateOptions, type ToolChoice, type ToolDefinition } from '@qwen2-ts/core';
import type { ChatMessage } from '@qwen2-ts/tokenizer';
import { HttpError } from './http-util.js';

type Json = Record<string, unknown>;

function object(body: unknown): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body as Json;
}

function num(o: Json, key: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new HttpError(400, `'${key}' must be a number in [${min}, ${max}]`, 'invalid_request_error', key);
  return v;
}

function int(o: Json, key: string, min: number): number | undefined {
  const v = num(o, key, min, Number.MAX_SAFE_INTEGER);
  if (v !== undefined && !Number.isInteger(v)) throw new HttpError(400, `'${key}' must be an integer`, 'invalid_request_error', key);
  return v;
}

/** The sampling fields common to both endpoints. */
function generationOptions(o: Json, defaultMaxTokens: number, minTokens = 1): GenerateOptions & { stream: boolean; includeUsage: boolean } {
  const n = int(o, 'n', 1);
  if (n !== undefined && n !== 1) throw new HttpError(400, "only 'n': 1 is supported", 'invalid_request_error', 'n');
  const options: GenerateOptions & { stream: boolean; includeUsage: boolean } = {
    maxNewTokens: int(o, 'max_completion_tokens', minTokens) ?? int(o, 'max_tokens', minTokens) ?? defaultMaxTokens,
    stream: o.stream === true,
    includeUsage: (o.stream_options as Json | undefined)?.include_usage === true,
  };
  const set = (key: keyof GenerateOptions, value: number | undefined) => {
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  };
  set('temperature', num(o, 'temperature', 0, 100));
  set('topP', num(o, 'top_p', 0, 1));
  set('topK', int(o, 'top_k', 0));
  set('minP', num(o, 'min_p', 0, 1));
  set('repetitionPenalty', num(o, 'repetition_penalty', Number.MIN_VALUE, 100));
  set('presencePenalty', num(o, 'presence_penalty', -2, 2));
  set('frequencyPenalty', num(o, 'frequency_penalty', -2, 2));
  set('seed', int(o, 'seed', 0));
  if (o.ignore_eos === true) options.ignoreEos = true;
  const stop = o.stop;
  if (typeof stop === 'string') options.stop = [stop];
  else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) options.stop = stop as string[];
  else if (stop !== undefined && stop !== null) throw new HttpError(400, "'stop' must be a string or an array of strings", 'invalid_request_error', 'stop');
  if (o.response_format !== undefined && o.response_format !== null) {
    try {
      options.responseFormat = fromOpenAIResponseFormat(o.response_format);
      compileResponseFormat(options.responseFormat); // a schema we cannot honour is refused before anything streams
    } catch (e) {
      throw new HttpError(400, (e as Error).message, 'invalid_request_error', 'response_format');
    }
  }
  return options;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/** Message content: a string, or OpenAI's array of parts of which the text parts are kept. */
function content(v: unknown, index: number): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    return v.map((part) => {
      const p = part as Json;
      if (p?.type === 'text' && typeof p.text === 'string') return p.text;
      throw new HttpError(400, `messages[${index}].content: only text parts are supported`, 'invalid_request_error', 'messages');
    }).join('');
  }
  throw new HttpError(400, `messages[${index}].content must be a string or an array of text parts`, 'invalid_request_error', 'messages');
}

/** A parsed `POST /v1/chat/completions` body. */
export interface ChatRequest {
  messages: ChatMessage[];
  options: ChatOptions;
  stream: boolean;
  includeUsage: boolean;
}

/** Validates a chat completion request. */
export function parseChatRequest(body: unknown, defaultMaxTokens: number): ChatRequest {
  const o = object(body);
  if (!Array.isArray(o.messages) || o.messages.length === 0) throw new HttpError(400, "'messages' must be a non-empty array", 'invalid_request_error', 'messages');
  const messages = o.messages.map((m, i): ChatMessage => {
    const msg = m as Json;
    if (typeof msg !== 'object' || msg === null || typeof msg.role !== 'string' || !ROLES.has(msg.role)) {
      throw new HttpError(400, `messages[${i}].role must be one of system, user, assistant, tool`, 'invalid_request_error', 'messages');
    }
    const out: ChatMessage = { role: msg.role as ChatMessage['role'], content: content(msg.content, i) };
    if (typeof msg.name === 'string') out.name = msg.name;
    if (Array.isArray(msg.tool_calls)) out.tool_calls = msg.tool_calls;
    return out;
  });
  const { stream, includeUsage, ...options } = generationOptions(o, defaultMaxTokens);
  const chatOptions: ChatOptions = options;
  const top = int(o, 'top_logprobs', 0);
  if (top !== undefined && top > 20) throw new HttpError(400, "'top_logprobs' must be an integer from 0 to 20", 'invalid_request_error', 'top_logprobs');
  if (o.logprobs === true) chatOptions.logprobs = top ?? 0;
  else if (top !== undefined) throw new HttpError(400, "'top_logprobs' needs 'logprobs': true", 'invalid_request_error', 'top_logprobs');
  if (o.tools !== undefined && o.tools !== null) {
    if (!Array.isArray(o.tools)) throw new HttpError(400, "'tools' must be an array", 'invalid_request_error', 'tools');
    if (o.tools.length > 0) chatOptions.tools = o.tools as ToolDefinition[];
  }
  const choice = o.tool_choice;
  if (choice !== undefined && choice !== null) {
    const named = typeof choice === 'object' && typeof (choice as Json).function === 'object' && typeof ((choice as Json).function as Json)?.name === 'string';
    if (choice !== 'none' && choice !== 'auto' && choice !== 'required' && !named) {
      throw new HttpError(400, "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}", 'invalid_request_error', 'tool_choice');
    }
    chatOptions.toolChoice = choice as ToolChoice;
    // Checked here (as chat() will) so that a bad tool list or choice is a 400 before anything streams.
    try {
      chatOutput(chatOptions);
    } catch (e) {
      throw new HttpError(400, (e as Error).message, 'invalid_request_error', e instanceof JsonSchemaError ? 'tools' : 'tool_choice');
    }
  }
  return { messages, options: chatOptions, stream, includeUsage };
}

/** A parsed `POST /v1/completions` body. */
export interface CompletionRequest {
  prompt: string | number[];
  options: GenerateOptions;
  stream: boolean;
  includeUsage: boolean;
  /** Return the prompt before the completion (with its logprobs when asked). */
  echo: boolean;
  /** `logprobs`: the number of most likely tokens listed per position, when logprobs are asked for. */
  topLogprobs?: number;
}

/** Validates a (legacy) completion request: `prompt` is a string, a token-id array, or a one-element array of either. */
export function parseCompletionRequest(body: unknown, defaultMaxTokens: number): CompletionRequest {
  const o = object(body);
  let prompt: unknown = o.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0];
  const isIds = Array.isArray(prompt) && prompt.length > 0 && prompt.every((x) => Number.isInteger(x) && (x as number) >= 0);
  if (typeof prompt !== 'string' && !isIds) throw new HttpError(400, "'prompt' must be a string or an array of token ids (one prompt per request)", 'invalid_request_error', 'prompt');
  if (typeof prompt === 'string' && prompt === '') throw new HttpError(400, "'prompt' must not be empty", 'invalid_request_error', 'prompt');
  const echo = o.echo === true;
  // With echo, max_tokens 0 scores the prompt alone (as evaluation harnesses ask).
  const { stream, includeUsage, ...options } = generationOptions(o, 16, echo ? 0 : 1);
  const request: CompletionRequest = { prompt: prompt as string | number[], options, stream, includeUsage, echo };
  const top = int(o, 'logprobs', 0);
  if (top !== undefined) {
    if (top > 20) throw new HttpError(400, "'logprobs' must be an integer from 0 to 20", 'invalid_request_error', 'logprobs');
    request.topLogprobs = top;
    options.logprobs = top;
  }
  return request;
}
