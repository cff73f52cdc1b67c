// The built package in a real browser (headless Chromium via playwright-core): a URL model is downloaded
// once into the Cache API and a page reload reads it from there; File[] sources work; the Node-only
// chunks are never requested. Needs `build` first (turbo runs it before test) and /usr/bin/chromium.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../model.js';

const CHROMIUM = '/usr/bin/chromium';
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const MODELS = fileURLToPath(new URL('../../../../fixtures/models/', import.meta.url));
// The page imports the built package itself (code passed to page.evaluate is rewritten by vitest, so
// the import() lives here) and exposes what the tests call.
const PAGE = `<!doctype html><title>loader</title><script type="module">
import { openModel } from '/dist/index.js';
window.openUrlModel = async (url) => {
  const downloads = [];
  const model = await openModel(url, { onProgress: (p) => { if (p.phase === 'download') downloads.push(p); } });
  const bytes = await model.checkpoint.read('lm_head.weight');
  await model.close();
  return { hiddenSize: model.config.hiddenSize, head: Array.from(bytes.subarray(0, 64)), length: bytes.byteLength, lastDownload: downloads.at(-1) };
};
window.openPickedFiles = async (dir, names) => {
  const files = await Promise.all(names.map(async (n) => new File([await (await fetch(dir + n)).blob()], n)));
  const model = await openModel(files);
  await model.close();
  return { size: model.checkpoint.tensors.size, hidden: model.config.hiddenSize };
};
window.ready = true;
</script>`;
const TYPES: Record<string, string> = { js: 'text/javascript', json: 'application/json', html: 'text/html' };

describe.skipIf(!existsSync(CHROMIUM))('in headless Chromium (skipped only when /usr/bin/chromium is absent)', () => {
  let server: Server;
  let origin: string;
  let context: BrowserContext;
  let page: Page;
  const profile = mkdtempSync(join(tmpdir(), 'qwen2-loader-chromium-'));
  const log: { method: string; path: string }[] = [];

  beforeAll(async () => {
    if (!existsSync(join(DIST, 'index.js'))) throw new Error(`${DIST}index.js is missing: run \`pnpm --filter @qwen2-ts/loader build\` first`);
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      log.push({ method: req.method ?? '', path });
      if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      const file = path.startsWith('/dist/') ? join(DIST, path.slice(6)) : path.startsWith('/models/') ? join(MODELS, decodeURIComponent(path.slice(8))) : '';
      if (!file || !existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404).end();
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!] ?? 'application/octet-stream', 'content-length': body.byteLength });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${origin}/`);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    rmSync(profile, { recursive: true, force: true });
  });

  type PageApi = { openUrlModel(url: string): Promise<{ hiddenSize: number; head: number[]; length: number; lastDownload?: { overallLoaded: number; overallTotal: number } }>; openPickedFiles(dir: string, names: string[]): Promise<{ size: number; hidden: number }> };
  const openInPage = async () => {
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return page.evaluate((url) => (window as unknown as PageApi).openUrlModel(url), `${origin}/models/tiny-f16-sharded/`);
  };

  it('downloads a URL model into the Cache API once; after a reload nothing is downloaded again', async () => {
    const local = await openModel(`${MODELS}tiny-f16-sharded`);
    const expected = await local.checkpoint.read('lm_head.weight');
    await local.close();
    const shardBytes = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].reduce((s, f) => s + statSync(`${MODELS}tiny-f16-sharded/${f}`).size, 0);

    log.length = 0;
    const first = await openInPage();
    expect(first).toMatchObject({ hiddenSize: 96, length: expected.byteLength, lastDownload: { overallLoaded: shardBytes, overallTotal: shardBytes } });
    expect(first.head).toEqual(Array.from(expected.subarray(0, 64)));
    expect(log.filter((r) => r.method === 'GET' && r.path.endsWith('.safetensors'))).toHaveLength(2);

    await page.reload();
    log.length = 0;
    const again = await openInPage();
    expect(again.head).toEqual(first.head);
    expect(again.lastDownload).toBeUndefined();
    expect(log.filter((r) => r.path.startsWith('/models/'))).toEqual([]);
    // The Node-only chunks (local folder, Hub cache) were never fetched by the browser.
    expect(log.filter((r) => /local-folder|hub-/.test(r.path))).toEqual([]);
  }, 60_000);

  it('opens File objects picked in the page', async () => {
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const result = await page.evaluate(() => (window as unknown as PageApi).openPickedFiles('/models/tiny-bf16-untied/', ['config.json', 'model.safetensors']));
    expect(result).toEqual({ size: 3 * 12 + 3, hidden: 128 });
  }, 30_000);
});
