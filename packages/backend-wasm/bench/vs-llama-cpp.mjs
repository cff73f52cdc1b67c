#!/usr/bin/env node
// Our WASM backend against llama.cpp's CPU backend on the same weights, in one run:
//   1. writes a random-weight bf16 checkpoint at Qwen2-0.5B's real shapes (random-checkpoint.mjs);
//   2. per format, `qwen2 bench --backend wasm --dtype F` on it (the CLI, a process of its own), then
//      the same checkpoint converted to GGUF by our writer (llama-cpp/gguf-writer.mjs: the q8_0/q4_0
//      blocks are bit-identical to what we run) and measured by llama-cpp/llama-bench.mjs;
//   3. prints prefill and decode tokens/s of both, their ratios, and each decode as a fraction of the
//      memory-bandwidth bound (bytes of weights read per token / read bandwidth measured here).
// The two alternate in --rounds rounds per format (each a fresh process of each, --repeats measured runs
// after a warmup), so that the load of this shared machine, which swings by tens of percent over
// seconds, hits both alike; the table shows the medians over rounds and the median of the per-round
// ratios, with their range.
//
//   node bench/vs-llama-cpp.mjs [--model=Qwen2-0.5B] [--formats=bf16,q8_0,q4_0] [--threads=2]
//                               [--prompt-tokens=64] [--gen-tokens=32] [--rounds=3] [--repeats=2] [--json]
// Needs the built CLI (`pnpm build` at the root) and the devDependency node-llama-cpp.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { qwen2CheckpointLayout } from '@qwen2-ts/loader';
import { wasmBackend } from '../dist/index.js';
import { writeGguf } from './llama-cpp/gguf-writer.mjs';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { comparisonArgs, measureReadBandwidth, median } from './util.mjs';

const { args, formats, threads, promptTokens, genTokens, repeats, rounds } = comparisonArgs();
const modelName = args.get('model') ?? 'Qwen2-0.5B';
const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));
const llamaBench = fileURLToPath(new URL('./llama-cpp/llama-bench.mjs', import.meta.url));

/** Runs a Node script in its own process and parses the JSON line it prints last; a failure becomes one clear line. */
function runJson(script, scriptArgs) {
  try {
    const out = execFileSync(process.execPath, [script, ...scriptArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (e) {
    throw new Error(`vs-llama-cpp: ${script} ${scriptArgs.join(' ')} failed: ${e.message.split('\n')[0]}`);
  }
}

/** Bytes one decoded token reads: every matrix and vector once (a tied embedding is read as the lm_head). */
function bytesPerToken(config, format) {
  const matrixBytes = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 }[format];
  // An untied embedding is only looked up (one row); the tied one is read whole as the lm_head.
  const read = qwen2CheckpointLayout(config).filter((t) => config.tieWordEmbeddings || t.name !== 'model.embed_tokens.weight');
  return read.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1) * (t.shape.length === 2 ? matrixBytes : 4), 0);
}

if (!existsSync(cli)) {
  console.error(`vs-llama-cpp: the CLI is not built (${cli} is missing): run \`npm test\` or \`node_modules/.bin/pnpm build\` at the root first`);
  process.exit(1);
}
const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-vs-llama-'));
try {
  const { config } = writeRandomCheckpoint(dir, modelName);
  const bandwidth = await measureReadBandwidth(wasmBackend, threads);
  const common = [`--threads=${threads}`, `--prompt-tokens=${promptTokens}`, `--gen-tokens=${genTokens}`, `--repeats=${repeats}`];
  const rows = [];
  for (const format of formats) {
    const gguf = join(dir, `model-${format}.gguf`);
    await writeGguf(dir, gguf, { format });
    const ggufBytes = statSync(gguf).size;
    const runs = [];
    for (let round = 0; round < rounds; round++) {
      const ours = runJson(cli, ['bench', '--model', dir, '--backend', 'wasm', '--dtype', format, '--json', ...common.flatMap((f) => f.split('='))]);
      const llama = runJson(llamaBench, [`--model=${gguf}`, ...common]);
      runs.push({ ours, llama });
    }
    rmSync(gguf);
    const perToken = bytesPerToken(config, format);
    const boundTokensPerS = (bandwidth * 1e9) / perToken;
    const pick = (side, key) => median(runs.map((r) => r[side][key]));
    const ratios = (key) => runs.map((r) => r.ours[key] / r.llama[key]).sort((a, b) => a - b);
    const summary = (side) => ({
      prefill_tokens_per_s: pick(side, 'prefill_tokens_per_s'), decode_tokens_per_s: pick(side, 'decode_tokens_per_s'),
      peak_rss_bytes: Math.max(...runs.map((r) => r[side].peak_rss_bytes)), ...(side === 'llama' ? { cpu: runs[0].llama.cpu } : { device: runs[0].ours.backend }),
    });
    rows.push({ format, ours: summary('ours'), llama: summary('llama'), prefillRatios: ratios('prefill_tokens_per_s'), decodeRatios: ratios('decode_tokens_per_s'), ggufBytes, perToken, boundTokensPerS, runs });
  }

  const fmt = (x, d = 1) => x.toFixed(d);
  if (args.has('json')) {
    console.log(JSON.stringify({ model: modelName, threads, prompt_tokens: promptTokens, gen_tokens: genTokens, rounds, repeats, read_gb_per_s: bandwidth, rows }));
  } else {
    console.log(`${modelName} shapes, random weights, ${threads} threads, prompt ${promptTokens} tokens, ${genTokens} decode steps; ${rounds} alternating rounds of ${repeats} runs each`);
    console.log(`read bandwidth ${fmt(bandwidth)} GB/s (${threads} threads); llama.cpp CPU features: ${rows[0]?.llama.cpu}`);
    console.log('format | prefill tok/s ours | llama.cpp | ratio (range)    | decode tok/s ours | llama.cpp | ratio (range)    | bound tok/s | ours %bound | llama %bound | peak RSS ours | llama');
    const ratio = (xs) => `${fmt(median(xs), 2)} (${fmt(xs[0], 2)}-${fmt(xs.at(-1), 2)})`.padEnd(16);
    for (const r of rows) {
      const o = r.ours, l = r.llama;
      console.log([
        r.format.padEnd(6), fmt(o.prefill_tokens_per_s).padStart(18), fmt(l.prefill_tokens_per_s).padStart(9), ratio(r.prefillRatios),
        fmt(o.decode_tokens_per_s).padStart(17), fmt(l.decode_tokens_per_s).padStart(9), ratio(r.decodeRatios),
        fmt(r.boundTokensPerS).padStart(11), `${fmt((100 * o.decode_tokens_per_s) / r.boundTokensPerS, 0)}%`.padStart(11), `${fmt((100 * l.decode_tokens_per_s) / r.boundTokensPerS, 0)}%`.padStart(12),
        `${fmt(o.peak_rss_bytes / 1e9, 2)} GB`.padStart(13), `${fmt(l.peak_rss_bytes / 1e9, 2)} GB`.padStart(8),
      ].join(' | '));
    }
    console.log(`ours: ${rows[0]?.ours.device}; ratio = ours / llama.cpp per round (above 1: we are faster), median and range; bound = read bandwidth / weight bytes per token`);
  }
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
