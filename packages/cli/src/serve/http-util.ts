/** Small HTTP helpers for the OpenAI-compatible server: JSON bodies, JSON replies, server-sent events. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error that becomes an OpenAI-shaped error reply with this status. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error', readonly param?: string) {
    super(message);
  }
}

/** Reads a JSON request body of at most `limit` bytes. */
export async function readJsonBody(req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'empty request body; expected a JSON object');
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

const CORS = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type, authorization', 'access-control-allow-methods': 'GET, POST, OPTIONS' };

/** Sends a JSON reply. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...CORS });
  res.end(text);
}

/** Sends an OpenAI-shaped error reply. */
export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { message: err.message, type: err.type, param: err.param ?? null, code: null } });
}

/** Answers a CORS preflight. */
export function sendPreflight(res: ServerResponse): void {
  res.writeHead(204, CORS);
  res.end();
}

/** A server-sent-events response: `data: <json>\n\n` events, ended by `data: [DONE]`. */
export class EventStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...CORS });
    res.flushHeaders();
  }

  /** Whether the client is still there. */
  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  send(data: unknown): void {
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (!this.open) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }
}
