/**
 * An OpenAI-compatible HTTP server over one loaded model: `POST /v1/chat/completions`,
 * `POST /v1/completions` (both with server-sent-events streaming), `GET /v1/models`. Generations run
 * through a {@link GenerationQueue}, one at a time or, on a model loaded with `parallel` above 1, that
 * many at once (the model decodes them in one batch); a client that disconnects aborts its generation
 * (or leaves the queue).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chatChoice, ChatChunkChoices, finishReason, type GenerateOptions, type GenerationChunk, type GenerationResult, type GenerationStream, type Qwen2, type SpeculativeOptions } from '@qwen2-ts/core';
import { completionLogprobs, concatLogprobs } from './completion-logprobs.js';
import { describeError, isAbortError } from '../util/errors.js';
import { EventStream, HttpError, readJsonBody, sendError, sendJson, sendPreflight } from './http-util.js';
import { GenerationQueue } from './queue.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import { parseChatRequest, parseCompletionRequest } from './requests.js';

/** Server settings. */
export interface OpenAIServerOptions {
  /** The id reported by `/v1/models` and in every response. */
  modelId: string;
  /** `max_tokens` for chat requests that give none. */
  defaultMaxTokens: number;
  /** Called for each finished request, for a log line. */
  onRequest?: (line: string) => void;
  /** Speculative decoding for every request (the output is the same; `qwen2 serve --prompt-lookup`). */
  speculative?: SpeculativeOptions;
}

function usage(result: GenerationResult) {
  return { prompt_tokens: result.promptTokens, completion_tokens: result.ids.length, total_tokens: result.promptTokens + result.ids.length };
}

/** The HTTP server and a way to wait for the generations it started. */
export interface OpenAIServer {
  server: Server;
  /** Resolves when no generation is running or queued (after a shutdown aborted them). */
  idle(): Promise<void>;
}

/**
 * Creates (does not start) the HTTP server.
 * @param model - a loaded model; the server never disposes it
 */
export function createOpenAIServer(model: Qwen2, options: OpenAIServerOptions): OpenAIServer {
  const queue = new GenerationQueue(model.parallel);
  const created = Math.floor(Date.now() / 1000);

  /** Runs one task on the model in the queue, with a signal that aborts when the client goes away. */
  async function whileConnected<T>(req: IncomingMessage, res: ServerResponse, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort();
    };
    res.on('close', onClose);
    // The client may have left while the body was read.
    if (res.destroyed || req.socket.destroyed) controller.abort();
    try {
      return await queue.run(() => task(controller.signal), controller.signal);
    } finally {
      res.off('close', onClose);
    }
  }

  /** Runs one generation in the queue, aborting it when the client goes away. */
  function runQueued(
    req: IncomingMessage,
    res: ServerResponse,
    start: (signal: AbortSignal) => GenerationStream,
    onChunk: (chunk: GenerationChunk) => void,
  ): Promise<GenerationResult> {
    return whileConnected(req, res, async (signal) => {
      const stream = start(signal);
      for await (const chunk of stream) {
        onChunk(chunk);
        await yieldToEventLoop();
      }
      return await stream.result;
    });
  }

  /** A request's options with what the server adds to every request (speculative decoding). */
  function withServerOptions<T extends GenerateOptions>(requested: T): T {
    return options.speculative ? { ...requested, speculative: options.speculative } : requested;
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse): Promise<string> {
    const request = parseChatRequest(await readJsonBody(req), options.defaultMaxTokens);
    const id = `chatcmpl-${randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    const base = { id, object: 'chat.completion.chunk', created: now, model: options.modelId };
    const chatOptions = withServerOptions(request.options);
    if (!request.stream) {
      const result = await runQueued(req, res, (signal) => model.chat(request.messages, { ...chatOptions, signal }), () => {});
      sendJson(res, 200, {
        id, object: 'chat.completion', created: now, model: options.modelId,
        choices: [chatChoice(model.tokenizer, result)],
        usage: usage(result),
      });
      return `chat ${result.ids.length} tokens${result.toolCalls ? `, ${result.toolCalls.length} tool calls` : ''}`;
    }
    const events = new EventStream(res);
    events.send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }] });
    const choices = new ChatChunkChoices(model.tokenizer, chatOptions);
    try {
      const result = await runQueued(req, res, (signal) => model.chat(request.messages, { ...chatOptions, signal }), (chunk) => {
        const choice = choices.push(chunk);
        if (choice) events.send({ ...base, choices: [choice] });
      });
      for (const choice of choices.finish(result)) events.send({ ...base, choices: [choice] });
      if (request.includeUsage) events.send({ ...base, choices: [], usage: usage(result) });
      events.end();
      return `chat (stream) ${result.ids.length} tokens${result.finishReason === 'abort' ? ', client left' : ''}`;
    } catch (err) {
      streamError(events, err);
      throw err;
    }
  }

  async function completions(req: IncomingMessage, res: ServerResponse): Promise<string> {
    const request = parseCompletionRequest(await readJsonBody(req), options.defaultMaxTokens);
    if (Array.isArray(request.prompt)) {
      const bad = request.prompt.find((t) => t >= model.config.vocabSize);
      if (bad !== undefined) throw new HttpError(400, `token id ${bad} is outside the vocabulary (size ${model.config.vocabSize})`, 'invalid_request_error', 'prompt');
    }
    const id = `cmpl-${randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    const base = { id, object: 'text_completion', created: now, model: options.modelId };
    const tokenizer = model.tokenizer;
    const top = request.topLogprobs;
    // The echoed prompt: its text, and its tokens' logprobs (scored in the queue like a generation).
    let echo: { text: string; logprobs?: ReturnType<typeof completionLogprobs> } | undefined;
    if (request.echo) {
      const text = typeof request.prompt === 'string' ? request.prompt : tokenizer.decode(request.prompt);
      echo = { text };
      if (top !== undefined) {
        const scored = await whileConnected(req, res, () => model.promptLogprobs(request.prompt, top));
        echo.logprobs = completionLogprobs(tokenizer, scored.ids, scored.logprobs);
      }
    }
    const generateOptions = withServerOptions(request.options);
    const generatedLogprobs = (r: GenerationResult) => completionLogprobs(tokenizer, r.ids, r.logprobs ?? [], echo?.text.length ?? 0);
    if (!request.stream) {
      const result = await runQueued(req, res, (signal) => model.generate(request.prompt, { ...generateOptions, signal }), () => {});
      const logprobs = top === undefined ? null : echo?.logprobs ? concatLogprobs(echo.logprobs, generatedLogprobs(result)) : generatedLogprobs(result);
      sendJson(res, 200, { ...base, choices: [{ index: 0, text: (echo?.text ?? '') + result.text, finish_reason: finishReason(result), logprobs }], usage: usage(result) });
      return `completion ${result.ids.length} tokens`;
    }
    const events = new EventStream(res);
    try {
      if (echo) events.send({ ...base, choices: [{ index: 0, text: echo.text, finish_reason: null, logprobs: echo.logprobs ?? null }] });
      let offset = echo?.text.length ?? 0;
      const result = await runQueued(req, res, (signal) => model.generate(request.prompt, { ...generateOptions, signal }), (chunk) => {
        if (chunk.tokenId < 0 && !chunk.text) return;
        const logprobs = chunk.logprob ? completionLogprobs(tokenizer, [chunk.tokenId], [chunk.logprob], offset) : null;
        offset += chunk.text.length;
        if (chunk.text || logprobs) events.send({ ...base, choices: [{ index: 0, text: chunk.text, finish_reason: null, logprobs }] });
      });
      events.send({ ...base, choices: [{ index: 0, text: '', finish_reason: finishReason(result), logprobs: null }] });
      if (request.includeUsage) events.send({ ...base, choices: [], usage: usage(result) });
      events.end();
      return `completion (stream) ${result.ids.length} tokens${result.finishReason === 'abort' ? ', client left' : ''}`;
    } catch (err) {
      streamError(events, err);
      throw err;
    }
  }

  /** Reports a failure inside an already-started event stream, then closes it. */
  function streamError(events: EventStream, err: unknown): void {
    if (isAbortError(err)) return;
    events.send({ error: { message: describeError(err), type: 'server_error', param: null, code: null } });
    events.end();
  }

  function models(res: ServerResponse): void {
    sendJson(res, 200, { object: 'list', data: [{ id: options.modelId, object: 'model', created, owned_by: 'qwen2-ts' }] });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '');
    let what = '';
    try {
      if (req.method === 'OPTIONS') return sendPreflight(res);
      if (path === '/v1/models' && req.method === 'GET') {
        models(res);
        what = 'models';
      } else if (path === '/v1/chat/completions' && req.method === 'POST') {
        what = await chatCompletions(req, res);
      } else if (path === '/v1/completions' && req.method === 'POST') {
        what = await completions(req, res);
      } else if (path === '/v1/models' || path === '/v1/chat/completions' || path === '/v1/completions') {
        throw new HttpError(405, `${req.method} is not allowed on ${path}`);
      } else {
        throw new HttpError(404, `no route ${req.method} ${path} (this server offers POST /v1/chat/completions, POST /v1/completions, GET /v1/models)`);
      }
    } catch (err) {
      what = isAbortError(err) ? 'client left while queued' : `error: ${describeError(err)}`;
      if (!res.headersSent && !res.destroyed) {
        if (err instanceof HttpError) sendError(res, err);
        else if (!isAbortError(err)) sendError(res, new HttpError(isUserError(err) ? 400 : 500, describeError(err), isUserError(err) ? 'invalid_request_error' : 'server_error'));
      } else if (!res.writableEnded) {
        res.end();
      }
    } finally {
      options.onRequest?.(`${req.method} ${path} ${res.statusCode} ${what} ${(performance.now() - started).toFixed(0)} ms`);
    }
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  return { server, idle: () => queue.idle() };
}

/** Errors caused by the request's content rather than the server (too long a prompt, a bad template). */
function isUserError(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name ?? '';
  return ['ContextOverflowError', 'ContextLengthError', 'TokenizerError', 'ChatTemplateError', 'RangeError'].includes(name);
}
