/** A loopback server that answers like the Hugging Face Hub's `resolve` endpoint for one repository. */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

export const FAKE_COMMIT = '0123456789abcdef0123456789abcdef01234567';

/**
 * Serves the files of `folder` as `<repo>` at revision `main`: HEAD and GET (with Range) on
 * `/<repo>/resolve/<rev>/<file>`, `X-Repo-Commit`, an LFS-style sha256 ETag, 404 EntryNotFound otherwise.
 */
export async function startFakeHub(repo: string, folder: string): Promise<{ endpoint: string; requests: string[]; close: () => Promise<void> }> {
  const files = new Map(readdirSync(folder).filter((f) => !f.startsWith('golden')).map((f) => [f, readFileSync(join(folder, f))] as const));
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURI(req.url ?? ''));
    if (!m || m[1] !== repo) {
      res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end();
      return;
    }
    const body = files.get(m[3]!);
    if (!body) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    const headers = { 'x-repo-commit': FAKE_COMMIT, etag: `"${createHash('sha256').update(body).digest('hex')}"`, 'accept-ranges': 'bytes' };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const part = body.subarray(start);
    res.writeHead(range ? 206 : 200, { ...headers, 'content-length': part.length, ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    if (req.method === 'HEAD') res.end();
    else res.end(part);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
