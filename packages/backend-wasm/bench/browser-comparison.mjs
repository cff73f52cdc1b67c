// What the in-browser comparisons (vs-wllama.mjs, vs-onnxruntime.mjs) share: a random Qwen2-0.5B
// checkpoint served with the built packages from a loopback server whose headers make the page
// cross-origin isolated (SharedArrayBuffer, so every engine runs multi-threaded) and allow Range reads
// (our URL folder loader uses them); one page with our engine's entry point and the other engine's; a
// fresh headless Chromium context per engine, format and round (neither inherits the other's memory or
// workers), alternating; medians over rounds and the per-round ratios ours / theirs.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { comparisonArgs, median, sendFile } from './util.mjs';

const CHROMIUM = '/usr/bin/chromium';
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

/**
 * The prompt of run `run`: `count` random digits. Qwen2's pre-tokenizer makes every digit a token of its
 * own (ids 15..24 for '0'..'9'), so it is `count` tokens in every engine, whatever their tokenizers'
 * other differences (the engines check). Prompts differ per run: our engine reuses the KV cache of a shared prefix.
 */
export const PROMPT_SCRIPT = `
const promptText = (count, run) => {
  let x = (0x9e3779b9 ^ (run + 1) * 0x85ebca6b) >>> 0;
  return Array.from({ length: count }, () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return String((x >>> 16) % 10); }).join('');
};
const promptIds = (count, run) => Array.from(promptText(count, run), (d) => 15 + Number(d));`;

// Our engine: `Qwen2.load` from the URL folder, then generate as `qwen2 bench` does (P-token prompt, G
// greedy decode steps, EOS ignored); the first run of a page is a warm-up.
const OURS_SCRIPT = `
import { Qwen2 } from '/core/index.js';
import { wasmBackend } from '/backend-wasm/index.js';
window.ours = async ({ format, threads, promptTokens, genTokens, repeats }) => {
  const backend = await wasmBackend({ threads });
  const t0 = performance.now();
  const model = await Qwen2.load(location.origin + '/model/', { backend, dtype: format, browserCache: false, maxContext: promptTokens + genTokens + 16 });
  const loadMs = performance.now() - t0;
  const runs = [];
  for (let run = 0; run < 1 + repeats; run++) {
    const stream = model.generate(promptText(promptTokens, run), { maxNewTokens: genTokens + 1, temperature: 0, repetitionPenalty: 1, ignoreEos: true });
    for await (const chunk of stream) void chunk;
    const r = await stream.result;
    if (r.promptTokens !== promptTokens || r.ids.length !== genTokens + 1) throw new Error('ours: prompt ' + r.promptTokens + ' and ' + r.ids.length + ' new tokens, expected ' + promptTokens + ' and ' + (genTokens + 1));
    if (run > 0) runs.push({ prefill: r.prefillTokensPerSecond, decode: r.decodeTokensPerSecond });
  }
  const device = backend.info.device;
  await model.dispose();
  await backend.dispose();
  return { loadMs, device, runs };
};`;

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/** Serves `page` at / and the folders of `served` under their prefixes, cross-origin isolated, with Range. */
function server(page, served) {
  return createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };
    if (url.pathname === '/') return void res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(page);
    const prefix = Object.keys(served).find((p) => url.pathname.startsWith(p));
    const file = prefix ? join(served[prefix], decodeURIComponent(url.pathname.slice(prefix.length))) : '';
    sendFile(req, res, file, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
  });
}

/** One engine's entry point run in a fresh browser context. */
async function measure(browser, origin, engine, options, tag) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(origin);
    await page.waitForFunction(() => window.ready === true, undefined, { timeout: 60_000 }).catch(() => {
      throw new Error(`${tag}: the page did not load: ${errors.join('; ') || 'no error reported'}`);
    });
    if (!(await page.evaluate(() => self.crossOriginIsolated))) throw new Error(`${tag}: the page is not cross-origin isolated`);
    return await page.evaluate(([name, opts]) => window[name](opts), [engine, options]);
  } finally {
    await context.close();
  }
}

/**
 * Runs the comparison and prints it (or its JSON with --json).
 * @param spec.tag - the script's name, for messages
 * @param spec.theirs - the other engine's name; its page function is `window[theirs]`, given the same options as ours
 * @param spec.served - more folders to serve ({ '/prefix/': dir }); the model folder is '/model/'
 * @param spec.script - the page's module code for the other engine (PROMPT_SCRIPT's helpers are in scope)
 * @param spec.importMap - more bare-specifier mappings for the page
 * @param spec.prepare - `(format, dir) => cleanup` writes the other engine's model files for a format
 * @param spec.note - a line printed under the table (how the other engine was run)
 */
export async function runBrowserComparison({ tag, theirs, served: more, script, importMap = {}, prepare, defaultFormats, note }) {
  const { args, formats, threads, promptTokens, genTokens, repeats, rounds } = comparisonArgs(process.argv.slice(2), { formats: defaultFormats });
  const served = {
    '/backend-wasm/': here('../dist/'),
    '/core/': here('../../core/dist/'),
    '/loader/': here('../../loader/dist/'),
    '/tokenizer/': here('../../tokenizer/dist/'),
    '/jinja/': here('../../tokenizer/node_modules/@huggingface/jinja/dist/'),
    ...more,
  };
  for (const [name, d] of Object.entries(served)) {
    if (!existsSync(d)) {
      console.error(`${tag}: ${d} is missing (served as ${name}): run \`node_modules/.bin/pnpm build\` at the root first`);
      process.exit(1);
    }
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`${tag}: ${CHROMIUM} is missing (the test command installs it: apt-get install chromium)`);
    process.exit(1);
  }
  const imports = { '@qwen2-ts/core': '/core/index.js', '@qwen2-ts/loader': '/loader/index.js', '@qwen2-ts/tokenizer': '/tokenizer/index.js', '@huggingface/jinja': '/jinja/index.js', ...importMap };
  const page = `<!doctype html><meta charset="utf-8"><script type="importmap">${JSON.stringify({ imports })}</script>
<script type="module">${PROMPT_SCRIPT}${OURS_SCRIPT}${script}
window.ready = true;
</script>`;
  const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), `qwen2-${tag}-`));
  served['/model/'] = `${dir}/`;
  const http = server(page, served);
  let browser;
  try {
    writeRandomCheckpoint(dir, 'Qwen2-0.5B');
    await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${http.address().port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic'] });
    const rows = [];
    const options = { threads, promptTokens, genTokens, repeats };
    for (const format of formats) {
      const cleanup = await prepare(format, dir);
      const runs = [];
      for (let round = 0; round < rounds; round++) {
        const ours = await measure(browser, origin, 'ours', { ...options, format }, tag);
        const other = await measure(browser, origin, theirs, { ...options, format }, tag);
        runs.push({ ours, theirs: other });
        if (!args.has('json')) console.error(`[${tag}] ${format} round ${round + 1}/${rounds}: decode ours ${median(ours.runs.map((r) => r.decode)).toFixed(1)}, ${theirs} ${median(other.runs.map((r) => r.decode)).toFixed(1)} tokens/s`);
      }
      await cleanup?.();
      const pick = (side, key) => median(runs.map((r) => median(r[side].runs.map((x) => x[key]))));
      const ratios = (key) => runs.map((r) => median(r.ours.runs.map((x) => x[key])) / median(r.theirs.runs.map((x) => x[key]))).sort((a, b) => a - b);
      rows.push({
        format, device: { ours: runs[0].ours.device, [theirs]: runs[0].theirs.device },
        ours: { prefill_tokens_per_s: pick('ours', 'prefill'), decode_tokens_per_s: pick('ours', 'decode'), load_ms: median(runs.map((r) => r.ours.loadMs)) },
        [theirs]: { prefill_tokens_per_s: pick('theirs', 'prefill'), decode_tokens_per_s: pick('theirs', 'decode'), load_ms: median(runs.map((r) => r.theirs.loadMs)) },
        prefillRatios: ratios('prefill'), decodeRatios: ratios('decode'), runs,
      });
    }
    const fmt = (x, d = 1) => x.toFixed(d);
    if (args.has('json')) {
      console.log(JSON.stringify({ model: 'Qwen2-0.5B', threads, prompt_tokens: promptTokens, gen_tokens: genTokens, rounds, repeats, rows }));
      return;
    }
    const w = Math.max(6, theirs.length);
    console.log(`Qwen2-0.5B shapes, random weights, headless Chromium, ${threads} threads, prompt ${promptTokens} tokens, ${genTokens} decode steps; ${rounds} alternating rounds of ${repeats} runs each`);
    console.log(`format | prefill tok/s ours | ${theirs.padEnd(w)} | ratio (range)    | decode tok/s ours | ${theirs.padEnd(w)} | ratio (range)    | load s ours | ${theirs}`);
    const ratio = (xs) => `${fmt(median(xs), 2)} (${fmt(xs[0], 2)}-${fmt(xs.at(-1), 2)})`.padEnd(16);
    for (const r of rows) {
      console.log([
        r.format.padEnd(6), fmt(r.ours.prefill_tokens_per_s).padStart(18), fmt(r[theirs].prefill_tokens_per_s).padStart(w), ratio(r.prefillRatios),
        fmt(r.ours.decode_tokens_per_s).padStart(17), fmt(r[theirs].decode_tokens_per_s).padStart(w), ratio(r.decodeRatios),
        fmt(r.ours.load_ms / 1000, 2).padStart(11), fmt(r[theirs].load_ms / 1000, 2).padStart(6),
      ].join(' | '));
    }
    console.log(`ours: ${rows[0]?.device.ours}; ${theirs}: ${rows[0]?.device[theirs]}; ratio = ours / ${theirs} per round (above 1: we are faster), median and range`);
    if (note) console.log(note);
  } catch (e) {
    console.error(e.message);
    process.exitCode = 1;
  } finally {
    await browser?.close();
    http.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
