/**
 * Loopback HTTP servers for the browser test: the built app (vite preview, with the COOP/COEP headers
 * that enable threads), and a model folder served like a CDN (CORS, Range, HEAD) that counts what it sends.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { preview } from 'vite';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** One request the model server answered. */
export interface ServedRequest {
  method: string;
  path: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  range?: string;
}

export interface RunningServer {
  url: string;
  /** Every request so far, in order. */
  log: ServedRequest[];
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('server has no port');
  return `http://127.0.0.1:${address.port}`;
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

async function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  headers: Record<string, string>,
  record: (status: number, bytes: number) => void,
): Promise<void> {
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a file');
    size = s.size;
  } catch {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found');
    record(404, 0);
    return;
  }
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  const common = { ...headers, 'content-type': type, 'accept-ranges': 'bytes', 'cache-control': 'no-cache' };
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  let status = 200;
  if (range && (range[1] !== '' || range[2] !== '')) {
    if (range[1] === '') {
      start = Math.max(0, size - Number(range[2]));
    } else {
      start = Number(range[1]);
      end = range[2] === '' ? size - 1 : Math.min(size - 1, Number(range[2]));
    }
    if (start >= size || start > end) {
      res.writeHead(416, { ...common, 'content-range': `bytes */${size}` }).end();
      record(416, 0);
      return;
    }
    status = 206;
  }
  const length = end - start + 1;
  res.writeHead(status, { ...common, 'content-length': String(length), ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}) });
  if (req.method === 'HEAD') {
    res.end();
    record(status, 0);
    return;
  }
  const stream = createReadStream(file, { start, end });
  let sent = 0;
  stream.on('data', (chunk) => (sent += chunk.length));
  stream.pipe(res);
  await new Promise<void>((resolve) => res.on('close', () => resolve()));
  record(status, sent);
}

/**
 * Serves the built app with `vite preview` and the package's vite.config.ts, exactly as
 * `npm run playground` does (so the COOP/COEP headers under test are the shipped ones).
 */
export async function serveBuiltApp(appDir: string): Promise<RunningServer> {
  const server = await preview({ root: appDir, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false } });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('vite preview has no port');
  return { url: `http://127.0.0.1:${address.port}`, log: [], close: () => server.close() };
}

/** Serves `files` (URL name → path on disk) under `/<prefix>/` the way a CDN or the Hub does: CORS for any origin, Range, HEAD. */
export async function serveModel(prefix: string, files: Record<string, string>): Promise<RunningServer> {
  const log: ServedRequest[] = [];
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'content-length, content-range, accept-ranges, etag',
    'cross-origin-resource-policy': 'cross-origin',
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const record = (status: number, bytes: number) => log.push({ method: req.method ?? 'GET', path, status, bytes, ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors, 'access-control-allow-methods': 'GET, HEAD', 'access-control-allow-headers': 'range, authorization', 'access-control-max-age': '600' }).end();
      record(204, 0);
      return;
    }
    const name = path.startsWith(`/${prefix}/`) ? decodeURIComponent(path.slice(prefix.length + 2)) : undefined;
    const file = name !== undefined ? files[name] : undefined;
    if (!file) {
      res.writeHead(404, { ...cors, 'content-type': 'text/plain' }).end('not found');
      record(404, 0);
      return;
    }
    void sendFile(req, res, file, cors, record);
  });
  const url = await listen(server);
  return { url: `${url}/${prefix}`, log, close: closer(server) };
}
