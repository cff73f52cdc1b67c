// `qwen2 download` over one connection and over several, against a loopback Hub whose CDN serves each
// connection at a fixed rate (as real CDNs do: one connection gets a fraction of a fast link). Writes a
// random bf16 checkpoint at Qwen2-0.5B's shapes (942 MiB) with the real config and tokenizer, serves it
// from a separate process with the Hub's resolve protocol (HEAD with X-Linked-Etag / X-Linked-Size, a
// 302 to the CDN, Range), and runs the built CLI into a fresh cache each time, alternating.
//
//   node bench/download.mjs [--rate=40] [--connections=8] [--rounds=3] [--dir=/tmp]
// (--rate: MB/s per connection)
//
// Needs the built CLI (`node_modules/.bin/pnpm build` at the root).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const REPO = 'bench-org/qwen2-0.5b-random';
const COMMIT = 'c0ffee'.padEnd(40, '0');

if (args.has('serve')) await serve(args.get('serve'), Number(args.get('rate')) * 1e6);
else await main();

/** The Hub process: every file of `dir` under REPO at COMMIT; the CDN paces each response to `rate` bytes/s. */
async function serve(dir, rate) {
  const files = new Map();
  for (const name of readdirSync(dir)) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(join(dir, name))) hash.update(chunk);
    files.set(name, { path: join(dir, name), size: statSync(join(dir, name)).size, sha: hash.digest('hex') });
  }
  const bySha = new Map([...files.values()].map((f) => [f.sha, f]));
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const resolve = new RegExp(`^/${REPO}/resolve/[^/]+/(.+)$`).exec(url.pathname);
    if (resolve) {
      const f = files.get(decodeURIComponent(resolve[1]));
      if (!f) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': COMMIT }).end();
      // Every file as an LFS file: its sha256 is the blob id, its bytes come from the CDN.
      return void res.writeHead(302, { location: `http://${req.headers.host}/cdn/${f.sha}`, 'x-repo-commit': COMMIT, 'x-linked-etag': `"${f.sha}"`, 'x-linked-size': String(f.size), etag: `"${f.sha.slice(0, 40)}"` }).end();
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    const f = cdn && bySha.get(cdn[1]);
    if (!f) return void res.writeHead(404).end();
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Math.min(f.size - 1, Number(range[2])) : f.size - 1;
    res.writeHead(range ? 206 : 200, { 'content-length': end - start + 1, 'accept-ranges': 'bytes', ...(range ? { 'content-range': `bytes ${start}-${end}/${f.size}` } : {}) });
    if (req.method === 'HEAD') return void res.end();
    // Paced: 64 KiB pieces, each no sooner than the rate allows since this response began.
    const began = performance.now();
    let sent = 0;
    const stream = createReadStream(f.path, { start, end, highWaterMark: 65536 });
    res.on('close', () => stream.destroy());
    (async () => {
      for await (const piece of stream) {
        const due = began + ((sent + piece.byteLength) / rate) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
        sent += piece.byteLength;
        if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    })().catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('disconnect', () => process.exit(0));
}

async function main() {
  const rate = Number(args.get('rate') ?? 40);
  const connections = Number(args.get('connections') ?? 8);
  const rounds = Number(args.get('rounds') ?? 3);
  const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const { writeRandomCheckpoint } = await import('../../backend-wasm/bench/random-checkpoint.mjs');
  const work = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-download-bench-'));
  const model = join(work, 'model');
  let server;
  try {
    (await import('node:fs')).mkdirSync(model);
    writeRandomCheckpoint(model, 'Qwen2-0.5B');
    const bytes = readdirSync(model).reduce((n, f) => n + statSync(join(model, f)).size, 0);
    server = spawn(process.execPath, [fileURLToPath(import.meta.url), `--serve=${model}`, `--rate=${rate}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const { port } = await new Promise((resolve, reject) => {
      server.once('message', resolve);
      server.once('exit', (code) => reject(new Error(`download bench: the Hub process exited (${code})`)));
    });
    const ways = [['one connection', 1], [`${connections} connections`, connections]];
    const times = ways.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (const [i, [name, n]] of ways.entries()) {
        const cache = join(work, `cache-${round}-${i}`);
        const env = { ...process.env, HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HUB_CACHE: cache, HF_HOME: join(work, 'home'), HF_TOKEN: '' };
        const t0 = performance.now();
        await promisify(execFile)(process.execPath, [cli, 'download', REPO, '--connections', String(n)], { env, maxBuffer: 1 << 24 });
        times[i].push((performance.now() - t0) / 1000);
        rmSync(cache, { recursive: true, force: true });
        console.error(`[download] round ${round + 1}/${rounds}: ${name} ${times[i].at(-1).toFixed(1)} s`);
      }
    }
    console.log(`qwen2 download of ${(bytes / 2 ** 20).toFixed(0)} MiB (Qwen2-0.5B shapes, random bf16) from a loopback Hub whose CDN serves ${rate} MB/s per connection; ${rounds} alternating rounds`);
    console.log('connections      | seconds (median) | range     | MB/s');
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    for (const [i, [name]] of ways.entries()) {
      const t = [...times[i]].sort((a, b) => a - b);
      console.log(`${name.padEnd(16)} | ${median(t).toFixed(1).padStart(16)} | ${`${t[0].toFixed(1)}-${t.at(-1).toFixed(1)}`.padEnd(9)} | ${(bytes / 1e6 / median(t)).toFixed(0)}`);
    }
    console.log(`${connections} connections / one: ${(median(times[0]) / median(times[1])).toFixed(2)}x faster`);
  } finally {
    server?.kill();
    rmSync(work, { recursive: true, force: true });
  }
}
