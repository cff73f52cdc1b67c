/**
 * Test support (not part of the build): a loopback HTTP server that speaks the Hub's protocol as
 * huggingface_hub expects it: `/{repo}/resolve/{rev}/{file}` with X-Repo-Commit, ETag / X-Linked-Etag /
 * X-Linked-Size, a 302 to a CDN path for LFS files, Range on the CDN, 404 with X-Error-Code, 401 for a
 * gated repo without a token, and fault injection (dropped connections, corrupted bytes).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MockRepo { files: Record<string, Uint8Array>; commit: string; gatedToken?: string }
export interface LoggedRequest { method: string; path: string; query: string; range?: string; authorization?: string }

export interface MockHub {
  endpoint: string;
  log: LoggedRequest[];
  /** Files whose next N CDN GETs send half the body, then drop the connection. */
  dropNext: Map<string, number>;
  /** Files whose body is served with one byte flipped. */
  corrupt: Set<string>;
  /** The next N resolve requests get 503 Service Unavailable. */
  unavailable: number;
  /** Serve GETs slowly (ms between 64 KB chunks), to test aborts. */
  slowMs: number;
  /** Files whose next GET with a Range starting at this byte sends half the body, then drops the connection. */
  dropRangeAt: Map<string, number>;
  /** Answer every GET whole (HTTP 200), ignoring Range, as some servers do. */
  ignoreRange: boolean;
  /** Most CDN GETs served at the same time since the last reset (set it to 0 to reset). */
  mostInFlight: number;
  close(): Promise<void>;
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Uint8Array) => createHash('sha1').update(`blob ${b.byteLength}\0`).update(b).digest('hex');
const isLfs = (file: string) => /\.(safetensors|gguf)$/.test(file);

export async function startMockHub(repos: Record<string, MockRepo>): Promise<MockHub> {
  const log: LoggedRequest[] = [];
  const dropNext = new Map<string, number>();
  const corrupt = new Set<string>();
  const byBlob = new Map<string, { repo: string; file: string; bytes: Uint8Array }>();
  for (const [repo, r] of Object.entries(repos)) for (const [file, bytes] of Object.entries(r.files)) byBlob.set(sha256(bytes), { repo, file, bytes });
  const hub = { log, dropNext, corrupt, slowMs: 0, unavailable: 0, dropRangeAt: new Map(), ignoreRange: false, mostInFlight: 0 } as MockHub;
  let inFlight = 0;

  const serveBytes = async (req: IncomingMessage, res: ServerResponse, file: string, bytes: Uint8Array, headers: Record<string, string>) => {
    let body = bytes;
    if (corrupt.has(file)) {
      body = new Uint8Array(bytes);
      body[body.byteLength >> 1] ^= 0xff;
    }
    let start = 0;
    const range = hub.ignoreRange && req.method === 'GET' ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), body.byteLength - 1) : body.byteLength - 1;
      if (start >= body.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${body.byteLength}` }).end();
        return;
      }
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${body.byteLength}`, 'content-length': String(end - start + 1), 'accept-ranges': 'bytes' });
      body = body.subarray(start, end + 1);
    } else {
      res.writeHead(200, { ...headers, 'content-length': String(body.byteLength), 'accept-ranges': 'bytes' });
    }
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const drops = dropNext.get(file) ?? 0;
    const dropHere = range !== null && hub.dropRangeAt.get(file) === start;
    if (dropHere) hub.dropRangeAt.delete(file);
    if (drops > 0 || dropHere) {
      if (!dropHere) dropNext.set(file, drops - 1);
      res.write(body.subarray(0, body.byteLength >> 1), () => res.destroy());
      return;
    }
    for (let at = 0; at < body.byteLength; at += 65536) {
      if (hub.slowMs) await new Promise((r) => setTimeout(r, hub.slowMs));
      if (res.destroyed) return;
      res.write(body.subarray(at, at + 65536));
    }
    res.end();
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    log.push({ method: req.method ?? '', path: url.pathname, query: url.search, range: req.headers.range, authorization: req.headers.authorization });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const blob = byBlob.get(cdn[1]);
      if (!blob) return void res.writeHead(404).end();
      if (req.method === 'GET') {
        hub.mostInFlight = Math.max(hub.mostInFlight, ++inFlight);
        res.on('close', () => inFlight--);
      }
      return void serveBytes(req, res, blob.file, blob.bytes, { etag: `"${cdn[1]}"` });
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    if (hub.unavailable > 0) {
      hub.unavailable--;
      return void res.writeHead(503).end();
    }
    const [, repoId, revision, file] = [m[0], m[1], decodeURIComponent(m[2]), decodeURIComponent(m[3])];
    const repo = repos[repoId];
    const token = req.headers.authorization?.replace(/^Bearer /, '');
    if (!repo) return void res.writeHead(token ? 404 : 401, { 'x-error-code': 'RepoNotFound' }).end();
    if (repo.gatedToken && token !== repo.gatedToken) return void res.writeHead(401, { 'x-error-code': 'GatedRepo', 'x-error-message': 'Access to model is restricted.' }).end();
    if (revision !== 'main' && revision !== repo.commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
    const bytes = repo.files[file];
    const common = { 'x-repo-commit': repo.commit };
    if (!bytes) return void res.writeHead(404, { ...common, 'x-error-code': 'EntryNotFound' }).end();
    if (isLfs(file)) {
      const sha = sha256(bytes);
      return void res.writeHead(302, { ...common, location: `${hub.endpoint}/cdn/${sha}`, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(bytes.byteLength), etag: `"${gitSha1(new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\n`))}"` }).end();
    }
    void serveBytes(req, res, file, bytes, { ...common, etag: `"${gitSha1(bytes)}"` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return hub;
}
