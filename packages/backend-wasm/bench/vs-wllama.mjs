#!/usr/bin/env node
// Our WASM backend against wllama (npm @wllama/wllama: llama.cpp's CPU backend compiled to WebAssembly
// SIMD, the other engine that runs Qwen2 checkpoints on the CPU of a browser) in the same headless
// Chromium, on the same weights, in one run:
//   1. writes a random-weight bf16 checkpoint at Qwen2-0.5B's real shapes (random-checkpoint.mjs) and,
//      per format, its GGUF (llama-cpp/gguf-writer.mjs: q8_0/q4_0 blocks bit-identical to ours);
//   2. serves both, the built packages and wllama from a loopback server with the headers that make the
//      page cross-origin isolated (SharedArrayBuffer, so both run multi-threaded);
//   3. per format and round, a fresh browser context runs ours (`Qwen2.load` from the URL folder, then
//      generate as `qwen2 bench` does: a P-token prompt of new ids each run, G greedy decode steps, EOS
//      ignored), then another fresh context runs wllama (its GGUF as a Blob, `createCompletion` with the
//      same ids, `max_tokens` G + 1, greedy, EOS ignored, no prompt cache) and reads llama-server's own
//      timings (prompt and predicted tokens per second);
//   4. prints medians over rounds and the per-round ratios (ours / wllama, above 1: we are faster).
//
//   node bench/vs-wllama.mjs [--formats=bf16,q8_0,q4_0] [--threads=2] [--prompt-tokens=64] [--gen-tokens=32]
//                            [--rounds=3] [--repeats=2] [--json]
// Needs `build` of core, loader, tokenizer and this package (the root `pnpm build`), /usr/bin/chromium
// (the test command installs it), and the devDependencies playwright-core and @wllama/wllama.
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { writeGguf } from './llama-cpp/gguf-writer.mjs';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { comparisonArgs, median } from './util.mjs';

const { args, formats, threads, promptTokens, genTokens, repeats, rounds } = comparisonArgs();
const CHROMIUM = '/usr/bin/chromium';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const wllamaRoot = join(dirname(createRequire(import.meta.url).resolve('@wllama/wllama/package.json')), 'esm');

/** Path prefixes of the loopback server; `/model/` is filled in once the checkpoint is written. */
const served = {
  '/backend-wasm/': here('../dist/'),
  '/core/': here('../../core/dist/'),
  '/loader/': here('../../loader/dist/'),
  '/tokenizer/': here('../../tokenizer/dist/'),
  '/jinja/': here('../../tokenizer/node_modules/@huggingface/jinja/dist/'),
  '/wllama/': `${wllamaRoot}/`,
};

// The page: both engines' entry points, run with the same prompts and greedy settings. A prompt is P
// random digits: Qwen2's pre-tokenizer makes every digit a token of its own, in both engines, so it is
// P tokens in both (checked) whatever the tokenizers' other differences; wllama's completion takes text
// only. Prompts differ per run: our engine reuses the KV cache of a shared prefix (wllama is asked not to).
const PAGE = `<!doctype html><title>qwen2-ts vs wllama</title>
<script type="importmap">{"imports": {"@qwen2-ts/core": "/core/index.js", "@qwen2-ts/loader": "/loader/index.js",
  "@qwen2-ts/tokenizer": "/tokenizer/index.js", "@huggingface/jinja": "/jinja/index.js"}}</script>
<script type="module">
import { Qwen2 } from '/core/index.js';
import { wasmBackend } from '/backend-wasm/index.js';
import { Wllama } from '/wllama/index.js';
const promptText = (count, run) => {
  let x = (0x9e3779b9 ^ (run + 1) * 0x85ebca6b) >>> 0;
  return Array.from({ length: count }, () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return String((x >>> 16) % 10); }).join('');
};
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
};
window.wllama = async ({ format, threads, promptTokens, genTokens, repeats }) => {
  const w = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  const t0 = performance.now();
  const blob = await (await fetch('/model/model-' + format + '.gguf')).blob();
  await w.loadModel([blob], { n_threads: threads, n_ctx: promptTokens + genTokens + 16, n_batch: 512, n_gpu_layers: 0, n_parallel: 1 });
  const loadMs = performance.now() - t0;
  const runs = [];
  for (let run = 0; run < 1 + repeats; run++) {
    const r = await w.createCompletion({ prompt: promptText(promptTokens, run), max_tokens: genTokens + 1, temperature: 0, ignore_eos: true, cache_prompt: false });
    const t = r.timings;
    if (!t || t.prompt_n !== promptTokens || t.predicted_n !== genTokens + 1) throw new Error('wllama: timings ' + JSON.stringify(t));
    // llama-server's predicted timing covers every sampled token after the prompt's; ours covers the G
    // steps after the first token, which the prompt's pass yields: the same G + 1 tokens, one counted with
    // the prompt on each side (llama-server samples the first in its predicted time, so it is a little
    // pessimistic for wllama's decode, by a token's sampling in G + 1).
    if (run > 0) runs.push({ prefill: t.prompt_per_second, decode: t.predicted_per_second });
  }
  const device = 'wllama ' + (w.isMultithread() ? threads + ' threads' : '1 thread (no multi-thread build)');
  await w.exit();
  return { loadMs, device, runs };
};
window.ready = true;
</script>`;

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/** Serves PAGE and the prefixes above, cross-origin isolated, with Range reads (our URL folder loader uses them). */
function serve(req, res) {
  const url = new URL(req.url, 'http://x');
  const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };
  if (url.pathname === '/') return void res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(PAGE);
  const prefix = Object.keys(served).find((p) => url.pathname.startsWith(p));
  const file = prefix ? join(served[prefix], decodeURIComponent(url.pathname.slice(prefix.length))) : '';
  if (!file || !existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404, headers).end();
  const size = statSync(file).size;
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]), end = Math.min(size - 1, range[2] ? Number(range[2]) : size - 1);
    if (start >= size) return void res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
    res.writeHead(206, { ...headers, 'content-type': type, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
    return void (req.method === 'HEAD' ? res.end() : createReadStream(file, { start, end }).pipe(res));
  }
  res.writeHead(200, { ...headers, 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes' });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
}

/** One engine in a fresh browser context (so neither inherits the other's memory or workers). */
async function measure(browser, origin, engine, format) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(origin);
    await page.waitForFunction(() => window.ready === true, undefined, { timeout: 60_000 }).catch(() => {
      throw new Error(`vs-wllama: the page did not load: ${errors.join('; ') || 'no error reported'}`);
    });
    if (!(await page.evaluate(() => self.crossOriginIsolated))) throw new Error('vs-wllama: the page is not cross-origin isolated');
    return await page.evaluate(([name, opts]) => window[name](opts), [engine, { format, threads, promptTokens, genTokens, repeats }]);
  } finally {
    await context.close();
  }
}

for (const [name, dir] of Object.entries(served)) {
  if (!existsSync(dir)) {
    console.error(`vs-wllama: ${dir} is missing (served as ${name}): run \`node_modules/.bin/pnpm build\` at the root first`);
    process.exit(1);
  }
}
if (!existsSync(CHROMIUM)) {
  console.error(`vs-wllama: ${CHROMIUM} is missing (the test command installs it: apt-get install chromium)`);
  process.exit(1);
}

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-vs-wllama-'));
served['/model/'] = `${dir}/`;
const server = createServer(serve);
let browser;
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic'] });
  const rows = [];
  for (const format of formats) {
    const gguf = join(dir, `model-${format}.gguf`);
    await writeGguf(dir, gguf, { format });
    const runs = [];
    for (let round = 0; round < rounds; round++) {
      const ours = await measure(browser, origin, 'ours', format);
      const wllama = await measure(browser, origin, 'wllama', format);
      runs.push({ ours, wllama });
      if (!args.has('json')) console.error(`[vs-wllama] ${format} round ${round + 1}/${rounds}: decode ours ${median(ours.runs.map((r) => r.decode)).toFixed(1)}, wllama ${median(wllama.runs.map((r) => r.decode)).toFixed(1)} tokens/s`);
    }
    rmSync(gguf);
    const pick = (side, key) => median(runs.map((r) => median(r[side].runs.map((x) => x[key]))));
    const ratios = (key) => runs.map((r) => median(r.ours.runs.map((x) => x[key])) / median(r.wllama.runs.map((x) => x[key]))).sort((a, b) => a - b);
    rows.push({
      format, device: { ours: runs[0].ours.device, wllama: runs[0].wllama.device },
      ours: { prefill_tokens_per_s: pick('ours', 'prefill'), decode_tokens_per_s: pick('ours', 'decode'), load_ms: median(runs.map((r) => r.ours.loadMs)) },
      wllama: { prefill_tokens_per_s: pick('wllama', 'prefill'), decode_tokens_per_s: pick('wllama', 'decode'), load_ms: median(runs.map((r) => r.wllama.loadMs)) },
      prefillRatios: ratios('prefill'), decodeRatios: ratios('decode'), runs,
    });
  }
  const fmt = (x, d = 1) => x.toFixed(d);
  if (args.has('json')) {
    console.log(JSON.stringify({ model: 'Qwen2-0.5B', threads, prompt_tokens: promptTokens, gen_tokens: genTokens, rounds, repeats, rows }));
  } else {
    console.log(`Qwen2-0.5B shapes, random weights, headless Chromium, ${threads} threads, prompt ${promptTokens} tokens, ${genTokens} decode steps; ${rounds} alternating rounds of ${repeats} runs each`);
    console.log('format | prefill tok/s ours | wllama | ratio (range)    | decode tok/s ours | wllama | ratio (range)    | load s ours | wllama');
    const ratio = (xs) => `${fmt(median(xs), 2)} (${fmt(xs[0], 2)}-${fmt(xs.at(-1), 2)})`.padEnd(16);
    for (const r of rows) {
      console.log([
        r.format.padEnd(6), fmt(r.ours.prefill_tokens_per_s).padStart(18), fmt(r.wllama.prefill_tokens_per_s).padStart(6), ratio(r.prefillRatios),
        fmt(r.ours.decode_tokens_per_s).padStart(17), fmt(r.wllama.decode_tokens_per_s).padStart(6), ratio(r.decodeRatios),
        fmt(r.ours.load_ms / 1000, 2).padStart(11), fmt(r.wllama.load_ms / 1000, 2).padStart(6),
      ].join(' | '));
    }
    console.log(`ours: ${rows[0]?.device.ours}; ${rows[0]?.device.wllama}; ratio = ours / wllama per round (above 1: we are faster), median and range`);
  }
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser?.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
