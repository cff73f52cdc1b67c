// The built package in headless Chromium (playwright-core): on a cross-origin isolated page the backend
// starts Web Workers (Blob URL) over shared memories and matches Node's results; on a plain page
// SharedArrayBuffer is missing and it falls back to one thread, saying so. Needs `build` first (turbo
// runs it before test) and /usr/bin/chromium.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmBackend } from './backend.js';
import { randomF32, randomWeight } from './test-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const root = (p: string) => fileURLToPath(new URL(p, import.meta.url));
// Bare specifiers of the built packages, resolved by an import map to their dist folders.
const SERVED: Record<string, string> = {
  '/backend-wasm/': root('../dist/'),
  '/core/': root('../../core/dist/'),
  '/loader/': root('../../loader/dist/'),
  '/tokenizer/': root('../../tokenizer/dist/'),
  '/jinja/': root('../../tokenizer/node_modules/@huggingface/jinja/dist/'),
};
const PAGE = `<!doctype html><title>backend-wasm</title>
<script type="importmap">{"imports": {"@qwen2-ts/core": "/core/index.js", "@qwen2-ts/loader": "/loader/index.js",
  "@qwen2-ts/tokenizer": "/tokenizer/index.js", "@huggingface/jinja": "/jinja/index.js"}}</script>
<script type="module">
import { wasmBackend } from '/backend-wasm/index.js';
window.run = async (threads, h, x, T) => {
  const host = { ...h, scales: new Uint16Array(h.scales), quants: new Uint8Array(h.quants) };
  const b = await wasmBackend({ threads });
  const w = await b.uploadWeight(host, 'w');
  const xt = b.alloc(T, host.cols);
  b.write(xt, x);
  const out = b.alloc(T, host.rows);
  b.matmul(xt, [w], [undefined], [out]);
  const result = { info: b.info, out: Array.from(await b.read(out)), isolated: self.crossOriginIsolated };
  await b.dispose();
  return result;
};
window.ready = true;
</script>`;

describe.skipIf(!existsSync(CHROMIUM))('in headless Chromium (skipped only when /usr/bin/chromium is absent)', () => {
  let server: Server;
  let origin: string;
  let context: BrowserContext;
  const profile = mkdtempSync(join(tmpdir(), 'qwen2-wasm-chromium-'));

  beforeAll(async () => {
    if (!existsSync(root('../dist/index.js'))) throw new Error('backend-wasm dist/index.js is missing: run `pnpm --filter @qwen2-ts/backend-wasm build` first');
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      // ?isolated=1 serves the page cross-origin isolated (COOP + COEP): SharedArrayBuffer exists there.
      const headers: Record<string, string> = url.searchParams.has('isolated')
        ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
      if (url.pathname === '/') return void res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(PAGE);
      const prefix = Object.keys(SERVED).find((p) => url.pathname.startsWith(p));
      const file = prefix ? join(SERVED[prefix]!, url.pathname.slice(prefix.length)) : '';
      if (!file || !existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/javascript', 'cross-origin-resource-policy': 'same-origin' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    rmSync(profile, { recursive: true, force: true });
  });

  type RunResult = { info: { threads: number; device: string }; out: number[]; isolated: boolean };
  async function runInPage(query: string, threads: number, host: unknown, x: Float32Array, T: number): Promise<RunResult> {
    const page = await context.newPage();
    try {
      await page.goto(`${origin}/${query}`);
      await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
      return await page.evaluate(([t, h, xs, rows]) => (window as unknown as { run(...a: unknown[]): Promise<RunResult> }).run(t, h, new Float32Array(xs as number[]), rows),
        [threads, host, Array.from(x), T] as const);
    } finally {
      await page.close();
    }
  }

  it('runs matmul on 2 threads (Web Workers) on an isolated page, equal to Node; 1 thread with a note otherwise', async () => {
    const T = 3, K = 128, N = 96;
    const { host } = randomWeight('q4_0', N, K, 5);
    const x = randomF32(T * K, 6);
    const node = await wasmBackend({ threads: 1 });
    const w = await node.uploadWeight(host, 'w');
    const xt = node.alloc(T, K);
    node.write(xt, x);
    const out = node.alloc(T, N);
    node.matmul(xt, [w], [undefined], [out]);
    const want = Array.from(await node.read(out));
    await node.dispose();
    // Typed arrays do not survive page.evaluate's JSON: send plain arrays and rebuild them in the page.
    const h = host as { format: string; rows: number; cols: number; scales: Uint16Array; quants: Uint8Array };
    const plain = { format: h.format, rows: h.rows, cols: h.cols, scales: Array.from(h.scales), quants: Array.from(h.quants) };

    const isolated = await runInPage('?isolated=1', 2, plain, x, T);
    expect(isolated.isolated).toBe(true);
    expect(isolated.info.threads).toBe(2);
    expect(isolated.out).toEqual(want);

    const plainPage = await runInPage('', 2, plain, x, T);
    expect(plainPage.isolated).toBe(false);
    expect(plainPage.info.threads).toBe(1);
    expect(plainPage.info.device).toMatch(/SharedArrayBuffer unavailable/);
    expect(plainPage.out).toEqual(want);
  }, 60_000);
});
