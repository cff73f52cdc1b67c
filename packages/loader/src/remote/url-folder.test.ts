// URL sources against a loopback static server: tensors arrive through HTTP Range requests, and the
// browser path (Cache API) downloads each file once, then serves reloads from the cache.
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelNotFoundError, RemoteFileError } from '../errors.js';
import { openModel } from '../model.js';
import type { LoadProgress } from '../open-folder.js';
import { joinUrl } from './url-folder.js';
import { memoryCacheStorage } from '../test-support/memory-cache.js';

const FIXTURES = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

interface Logged { method: string; path: string; range?: string; sent: number }
let server: Server;
let base: string;
const log: Logged[] = [];

beforeAll(async () => {
  // /ranged/... supports Range; /plain/... ignores it (like a naive static server).
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const [, mode, ...rest] = url.pathname.split('/');
    const path = `${FIXTURES}${rest.map(decodeURIComponent).join('/')}`;
    const entry: Logged = { method: req.method ?? '', path: url.pathname, range: req.headers.range, sent: 0 };
    log.push(entry);
    let bytes: Buffer;
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
      bytes = readFileSync(path);
    } catch {
      return void res.writeHead(404).end();
    }
    const m = mode === 'ranged' ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
    let body = bytes;
    if (m) {
      const start = Number(m[1]);
      const end = Math.min(m[2] ? Number(m[2]) : bytes.byteLength - 1, bytes.byteLength - 1);
      body = bytes.subarray(start, end + 1);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${bytes.byteLength}`, 'content-length': body.byteLength });
    } else {
      res.writeHead(200, { 'content-length': bytes.byteLength });
    }
    if (req.method === 'HEAD') return void res.end();
    entry.sent = body.byteLength;
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('joinUrl', () => {
  it('puts the file in the folder, escaped, with the folder URL\'s query string', () => {
    expect(joinUrl('https://h.test/a/b', 'c d/e#.json')).toBe('https://h.test/a/b/c%20d/e%23.json');
    expect(joinUrl('https://h.test/a/b/?token=x%2Fy&v=1', 'model.safetensors')).toBe('https://h.test/a/b/model.safetensors?token=x%2Fy&v=1');
    expect(joinUrl('https://h.test/a?t=1#frag', 'config.json')).toBe('https://h.test/a/config.json?t=1');
  });
});

describe('URL source (HTTP Range)', () => {
  it('opens a sharded folder URL and reads one tensor without fetching the rest of the shard', async () => {
    log.length = 0;
    const model = await openModel(`${base}/ranged/models/tiny-f16-sharded/`);
    const local = await openModel(`${FIXTURES}models/tiny-f16-sharded`);
    try {
      expect(model.config).toEqual(local.config);
      expect(model.checkpoint.tensors).toEqual(local.checkpoint.tensors);
      const headerBytes = log.reduce((sum, r) => sum + r.sent, 0);
      const name = 'model.layers.0.self_attn.q_proj.weight';
      const t = model.checkpoint.tensors.get(name)!;
      expect(sameBytes(await model.checkpoint.read(name), await local.checkpoint.read(name))).toBe(true);
      const read = log.reduce((sum, r) => sum + r.sent, 0) - headerBytes;
      expect(read).toBe(t.byteLength); // exactly the tensor's bytes travelled, one Range request
      const shardSize = statSync(`${FIXTURES}models/tiny-f16-sharded/${t.file}`).size;
      expect(log.filter((r) => r.path.endsWith('.safetensors')).reduce((s, r) => s + r.sent, 0)).toBeLessThan(shardSize);
      for (const n of local.checkpoint.tensors.keys()) expect(sameBytes(await model.checkpoint.read(n), await local.checkpoint.read(n)), n).toBe(true);
    } finally {
      await model.close();
      await local.close();
    }
  });

  it('names a server that ignores Range, and a missing folder', async () => {
    const error = await openModel(`${base}/plain/models/tiny-f32`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFileError);
    expect((error as Error).message).toMatch(/model.safetensors: the server ignored the Range request \(HTTP 200\)/);
    await expect(openModel(`${base}/ranged/models/nothing-here/`)).rejects.toThrow(ModelNotFoundError);
  });
});

describe('browser caching with the Cache API', () => {
  it('downloads a model once with overall progress, and a reload reads everything from the cache', async () => {
    const storage = memoryCacheStorage();
    const url = `${base}/plain/models/tiny-f16-sharded/`; // whole-file downloads need no Range support
    log.length = 0;
    const progress: LoadProgress[] = [];
    const first = await openModel(url, { browserCache: { storage }, onProgress: (p) => progress.push(p) });
    const local = await openModel(`${FIXTURES}models/tiny-f16-sharded`);
    try {
      for (const n of local.checkpoint.tensors.keys()) expect(sameBytes(await first.checkpoint.read(n), await local.checkpoint.read(n)), n).toBe(true);
    } finally {
      await first.close();
      await local.close();
    }
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const total = shards.reduce((s, f) => s + statSync(`${FIXTURES}models/tiny-f16-sharded/${f}`).size, 0);
    const downloads = progress.filter((p) => p.phase === 'download' && shards.includes(p.file));
    expect(downloads[downloads.length - 1]).toMatchObject({ overallLoaded: total, overallTotal: total });
    expect(log.filter((r) => r.method === 'GET' && r.path.endsWith('.safetensors'))).toHaveLength(2);

    log.length = 0;
    const reload = await openModel(url, { browserCache: { storage } });
    await reload.checkpoint.read('lm_head.weight');
    await reload.close();
    expect(log.filter((r) => r.method === 'GET')).toEqual([]);
  });
});
