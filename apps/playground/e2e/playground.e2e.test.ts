/**
 * End to end in a real browser: Debian's Chromium, headless, driven by playwright-core. The built app
 * (served by `vite preview` with the package's own config, as `npm run playground` does) and a fixture
 * model are served from loopback; the test loads the model with the WASM backend and with
 * the WebGPU backend (Chromium's SwiftShader adapter), chats at temperature 0 and compares the streamed
 * token ids with the greedy ids core's reference backend computes in Node for the same chat-templated
 * prompt (also with "JSON output" on), checks the progress bar, that a reload downloads nothing again (by counting the requests the
 * model server answered), stop and regenerate, the cache size and clearing, and a phone-sized viewport.
 * Screenshots go to apps/playground/test-results/ (gitignored).
 *
 * Needs `npm run build` first (turbo runs build before test) and /usr/bin/chromium (installed by
 * scripts/setup-test-env.mjs; CHROMIUM_PATH overrides).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, errors, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedGreedyReply } from './expected.js';
import { MODEL_FILES, modelFolderOnDisk } from './model-folder.js';
import { serveBuiltApp, serveModel, type RunningServer } from './servers.js';

const appDir = fileURLToPath(new URL('..', import.meta.url));
const dist = join(appDir, 'dist');
const results = join(appDir, 'test-results');
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The chat turn the test sends, and the sampling it uses (greedy, no penalties). */
const PROMPT = 'Hello! What can you do?';
const NEW_TOKENS = 16;
const GREEDY = { temperature: '0', topK: '0', topP: '1', minP: '0', repetitionPenalty: '1' };

let app: RunningServer;
let model: RunningServer;
let context: BrowserContext;
let profile: string;
let localModel: string;
let expected: number[];
let expectedJson: number[];
let expectedF16Cache: number[];

/** Requests for the weights file that carried bytes (the only big download). */
function weightDownloads(): number {
  return model.log.filter((r) => r.path.endsWith('/model.safetensors') && r.method === 'GET' && r.bytes > 0).length;
}

async function openApp(page: Page, backend: 'wasm' | 'webgpu', newTokens = NEW_TOKENS): Promise<void> {
  await page.goto(`${app.url}/?backend=${backend}&model=${encodeURIComponent(model.url)}`);
  await page.waitForSelector('body[data-state="idle"]', { timeout: 30_000 });
  for (const [name, value] of Object.entries({ ...GREEDY, maxNewTokens: String(newTokens) })) await page.fill(`#settings input[name="${name}"]`, value);
}

/** Clicks Load and waits for the model; returns the progress bar's final state. */
async function loadModel(page: Page): Promise<{ fraction: number; value: number; phase: string; downloaded: number; backend: string }> {
  await page.click('#load');
  await page.waitForSelector('body[data-state="ready"], #load-error:not(:empty)', { timeout: 90_000 });
  const error = await page.textContent('#load-error');
  expect(error, 'load error shown on the page').toBe('');
  return page.evaluate(() => {
    const bar = document.querySelector<HTMLProgressElement>('#load-progress')!;
    return {
      fraction: Number(bar.dataset.fraction),
      value: bar.value,
      phase: bar.dataset.phase!,
      downloaded: Number(bar.dataset.downloadedBytes),
      backend: document.querySelector<HTMLElement>('#model-info')!.dataset.backend!,
    };
  });
}

/** Sends a message and waits for the reply; returns its token ids and finish reason. */
async function chat(page: Page, text: string): Promise<{ ids: number[]; finish: string }> {
  const before = await page.locator('.turn[data-role="assistant"]').count();
  await page.fill('#prompt', text);
  await page.click('#send');
  return lastReply(page, before + 1);
}

async function lastReply(page: Page, count: number): Promise<{ ids: number[]; finish: string }> {
  const reply = page.locator('.turn[data-role="assistant"]').nth(count - 1);
  // Generous: WebGPU on SwiftShader is slow, and CI runs other packages' tests at the same time.
  await reply.and(page.locator('[data-finish-reason]')).waitFor({ timeout: 180_000 });
  const error = await page.textContent('#chat-error');
  expect(error, 'chat error shown on the page').toBe('');
  const ids = (await reply.getAttribute('data-token-ids'))!;
  return { ids: ids === '' ? [] : ids.split(',').map(Number), finish: (await reply.getAttribute('data-finish-reason'))! };
}

beforeAll(async () => {
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`${dist} has no built app: run \`pnpm --filter @qwen2-ts/playground build\` first`);
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: run apps/playground/scripts/setup-test-env.mjs (installs Debian's chromium) or set CHROMIUM_PATH`);
  mkdirSync(results, { recursive: true });
  localModel = modelFolderOnDisk();
  expected = await expectedGreedyReply(localModel, PROMPT, NEW_TOKENS);
  expectedJson = await expectedGreedyReply(localModel, PROMPT, NEW_TOKENS, { type: 'json_object' });
  expectedF16Cache = await expectedGreedyReply(localModel, PROMPT, NEW_TOKENS, undefined, 'f16');
  app = await serveBuiltApp(appDir);
  model = await serveModel('models/qwen2-full-vocab', MODEL_FILES);
  profile = mkdtempSync(join(tmpdir(), 'qwen2-ts-playground-profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await app?.close();
  await model?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (localModel) rmSync(localModel, { recursive: true, force: true });
});

describe('playground in Chromium', () => {
  it('loads with WASM (progress to 100%), streams the greedy reply token for token, and caches the weights', async () => {
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await openApp(page, 'wasm');
    expect(await page.evaluate(() => crossOriginIsolated), 'served with COOP/COEP').toBe(true);
    const bar = await loadModel(page);
    expect(bar).toMatchObject({ fraction: 1, value: 1, backend: 'wasm' });
    expect(bar.downloaded, 'first load downloads the weights').toBeGreaterThan(19_000_000);
    expect(weightDownloads()).toBe(1);
    expect(Number(await page.getAttribute('#cache-size', 'data-bytes'))).toBeGreaterThan(19_000_000);

    const reply = await chat(page, PROMPT);
    expect(reply.ids).toEqual(expected);
    expect(reply.finish).toBe('length');
    // core's measured stats replace the live estimates at the end.
    expect(await page.getAttribute('#stats', 'data-final')).toBe('true');
    for (const id of ['#stat-ttft', '#stat-decode', '#stat-prefill', '#stat-memory']) expect(await page.textContent(id), id).not.toBe('–');

    // Regenerate at temperature 0 gives the same reply again.
    await page.click('#regenerate');
    expect((await lastReply(page, 1)).ids).toEqual(expected);

    // "JSON output": the greedy reply to the same single-turn chat, constrained to a JSON object, as core
    // computes it in Node.
    await page.click('#clear-chat');
    await page.check('#json-output');
    const json = await chat(page, PROMPT);
    await page.uncheck('#json-output');
    expect(json.ids).toEqual(expectedJson);
    const text = (await page.locator('.turn[data-role="assistant"]').last().textContent())!;
    if (json.finish === 'stop') expect(JSON.parse(text)).toBeTypeOf('object');
    else expect(text.trimStart().startsWith('{'), text).toBe(true);
    // "Speculative decoding": prompt lookup changes the speed, not the reply.
    await page.click('#clear-chat');
    await page.check('#prompt-lookup');
    const speculative = await chat(page, PROMPT);
    await page.uncheck('#prompt-lookup');
    expect(speculative.ids).toEqual(expected);
    await page.screenshot({ path: join(results, 'playground-wasm.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 150_000);

  it("after a reload loads from the browser cache: nothing is downloaded twice (and the KV cache in f16 gives the f16 reference's reply)", async () => {
    const page = context.pages()[0]!;
    const requestsBefore = model.log.length;
    await page.reload();
    await openApp(page, 'wasm');
    // This time with the KV cache in f16: the reply is the reference's with an f16 cache.
    await page.selectOption('#kv-cache', 'f16');
    const bar = await loadModel(page);
    expect(bar).toMatchObject({ fraction: 1, value: 1, phase: 'read', downloaded: 0 });
    expect(weightDownloads()).toBe(1);
    const again = model.log.slice(requestsBefore).filter((r) => r.method === 'GET' && r.status < 400);
    expect(again, 'files fetched again after the reload').toEqual([]);
    expect((await chat(page, PROMPT)).ids).toEqual(expectedF16Cache);
  }, 120_000);

  it('loads a local folder picked with the folder input (File[] source), without touching the network', async () => {
    const page = context.pages()[0]!;
    await openApp(page, 'wasm');
    const requestsBefore = model.log.length;
    // Chromium has showDirectoryPicker (a native dialog); the <input webkitdirectory> fallback is what
    // other browsers use, and the one a test can fill.
    await page.setInputFiles('#folder-input', localModel);
    expect(await page.textContent('#picked-folder')).toMatch(/^local folder ".+" \(7 files\)$/);
    expect(await page.inputValue('#model-text')).toBe('');
    const bar = await loadModel(page);
    expect(bar).toMatchObject({ fraction: 1, value: 1, downloaded: 0, backend: 'wasm' });
    expect((await chat(page, PROMPT)).ids).toEqual(expected);
    expect(model.log.slice(requestsBefore)).toEqual([]);
  }, 120_000);

  it('stops a long reply and keeps the page responsive while the worker generates', async () => {
    const page = context.pages()[0]!;
    await page.fill('#settings input[name="maxNewTokens"]', '4000');
    // Longest gap between main-thread timer ticks while generating: the page must not freeze.
    await page.evaluate(() => {
      const w = window as unknown as { __gap: number; __tick: number; __timer: number };
      w.__gap = 0;
      w.__tick = performance.now();
      w.__timer = window.setInterval(() => {
        const now = performance.now();
        w.__gap = Math.max(w.__gap, now - w.__tick);
        w.__tick = now;
      }, 10);
    });
    const before = await page.locator('.turn[data-role="assistant"]').count();
    await page.fill('#prompt', 'Tell me a long story.');
    await page.click('#send');
    const reply = page.locator('.turn[data-role="assistant"]').nth(before);
    await page.waitForFunction((i) => (document.querySelectorAll<HTMLElement>('.turn[data-role="assistant"]')[i]?.dataset.tokenIds ?? '').split(',').length >= 5, before, { timeout: 60_000 });
    const stopBoxAtStart = await page.locator('#stop').boundingBox();
    // Let it generate for a while: were inference on this thread, the page would freeze that long. 2 s,
    // or until 400 tokens if that comes first, so that stop lands while it still generates however
    // fast the kernels are (this tiny model reached its 4000-token limit within 2 s once attention
    // got faster, and the reply ended by length before stop).
    try {
      await page.waitForFunction((i) => (document.querySelectorAll<HTMLElement>('.turn[data-role="assistant"]')[i]?.dataset.tokenIds ?? '').split(',').length >= 400, before, { timeout: 2000 });
    } catch (e) {
      if (!(e instanceof errors.TimeoutError)) throw e;
    }
    // The page is the viewport's size and the reply scrolls inside the message list, so the Stop button
    // neither moved nor left the screen (it once drifted down with the text, and a click waits for a
    // button to hold still).
    const stopBox = await page.locator('#stop').boundingBox();
    const view = await page.evaluate(() => {
      const list = document.querySelector('#messages')!;
      return {
        pageOverflow: document.documentElement.scrollHeight - window.innerHeight,
        listFollowsReply: list.scrollHeight - list.scrollTop - list.clientHeight < 80,
      };
    });
    expect(view).toEqual({ pageOverflow: 0, listFollowsReply: true });
    expect(stopBox, 'Stop button where it was before the reply grew').toEqual(stopBoxAtStart);
    expect(stopBox!.y + stopBox!.height).toBeLessThanOrEqual(page.viewportSize()!.height);
    await page.click('#stop');
    await reply.and(page.locator('[data-finish-reason]')).waitFor({ timeout: 30_000 });
    expect(await reply.getAttribute('data-finish-reason')).toBe('abort');
    const ids = (await reply.getAttribute('data-token-ids'))!.split(',');
    expect(ids.length).toBeGreaterThanOrEqual(5);
    expect(ids.length).toBeLessThan(4000);
    const gap = await page.evaluate(() => {
      const w = window as unknown as { __gap: number; __timer: number };
      clearInterval(w.__timer);
      return w.__gap;
    });
    expect(gap, 'longest main-thread stall (ms) while generating').toBeLessThan(1000);
    expect(await page.getAttribute('body', 'data-state')).toBe('ready');
  }, 120_000);

  it('loads with WebGPU (SwiftShader) and streams the same greedy reply', async () => {
    const page = context.pages()[0]!;
    await openApp(page, 'webgpu');
    const reason = await page.textContent('.reason[data-for="webgpu"]');
    expect(reason).not.toMatch(/unavailable/);
    const bar = await loadModel(page);
    expect(bar).toMatchObject({ fraction: 1, value: 1, downloaded: 0, backend: 'webgpu' });
    expect(weightDownloads()).toBe(1);
    const reply = await chat(page, PROMPT);
    expect(reply.ids).toEqual(expected);
    expect(reply.finish).toBe('length');
    await page.screenshot({ path: join(results, 'playground-webgpu.png'), fullPage: true });
  }, 240_000);

  it('clears the browser cache', async () => {
    const page = context.pages()[0]!;
    expect(Number(await page.getAttribute('#cache-size', 'data-bytes'))).toBeGreaterThan(0);
    await page.click('#clear-cache');
    await page.waitForFunction(() => document.querySelector<HTMLElement>('#cache-size')!.dataset.bytes === '0', undefined, { timeout: 10_000 });
    expect(await page.evaluate(() => caches.has('qwen2-ts-models'))).toBe(false);
  }, 30_000);

  it('says why WebGPU is unavailable and defaults to WASM when the browser has no WebGPU', async () => {
    const page = await context.newPage();
    await page.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    await page.goto(`${app.url}/?model=${encodeURIComponent(model.url)}`);
    await page.waitForSelector('body[data-state="idle"]', { timeout: 30_000 });
    expect(await page.isDisabled('input[name="backend"][value="webgpu"]')).toBe(true);
    expect(await page.isChecked('input[name="backend"][value="wasm"]')).toBe(true);
    expect(await page.textContent('.reason[data-for="webgpu"]')).toMatch(/^unavailable: WebGPU is not available here/);
    expect(await page.textContent('.reason[data-for="wasm"]')).toMatch(/^\d+ threads?$/);
    expect(await page.textContent('#environment')).toMatch(/WebGPU: unavailable/);
    await page.close();
  }, 30_000);

  it('fits a phone-sized viewport', async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${app.url}/?backend=wasm&model=${encodeURIComponent(model.url)}`);
    await page.waitForSelector('body[data-state="idle"]', { timeout: 30_000 });
    const layout = await page.evaluate(() => {
      const box = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
      const inside = (sel: string) => box(sel).left >= 0 && box(sel).right <= window.innerWidth;
      return {
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        controls: ['#model-text', '#load', '#prompt', '#send', '#stop', '#regenerate', '#messages', '#stats'].filter((s) => !inside(s)),
        columns: getComputedStyle(document.querySelector('.layout')!).gridTemplateColumns.split(' ').length,
      };
    });
    expect(layout).toEqual({ overflow: 0, controls: [], columns: 1 });
    await page.screenshot({ path: join(results, 'playground-phone.png'), fullPage: true });
    await page.close();
  }, 60_000);
});
