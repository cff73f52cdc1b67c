// Passes of a few tokens: what a short chat turn, a speculative-decoding check or a tool result costs.
// Times one whole Qwen2-0.5B forward pass (random weights) of T tokens after a cached 64-token prompt,
// with this backend's thresholds (quantGemmMinTokens: decode kernels for q8_0 below 10 tokens, for q4_0
// under relaxed SIMD below 16) next to the one threshold of earlier versions (GEMMs from 4 tokens on),
// alternating the two in each round. Prints the median ms per pass, the multiple of a one-token pass, and
// the ratio old / new (above 1: faster now).
//
//   node bench/small-passes.mjs [--formats=q4_0,q8_0] [--rounds=3] [--threads=2] [--relaxed=0] [--dir=/tmp]
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { median } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const formats = (args.get('formats') ?? 'q4_0,q8_0').split(',');
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);
const relaxedSimd = args.get('relaxed') !== '0';
const TOKENS = [1, 2, 3, 4, 6, 8, 10, 12, 16];
const REPEATS = 5;
const PROMPT = Array.from({ length: 64 }, (_, i) => 100 + i);

/** Median ms of REPEATS passes of T new tokens after PROMPT (the prompt's cache reused each time). */
async function passMs(model, T, round) {
  const times = [];
  for (let i = 0; i < REPEATS; i++) {
    await model.logits(PROMPT);
    const ids = [...PROMPT, ...Array.from({ length: T }, (_, j) => 500 + 37 * round + 7 * i + j)];
    const t0 = performance.now();
    await model.logits(ids);
    times.push(performance.now() - t0);
  }
  return median(times);
}

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-small-passes-'));
const backends = { now: await wasmBackend({ threads, relaxedSimd }), before: await wasmBackend({ threads, relaxedSimd, quantGemmMinTokens: 4 }) };
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  console.log(`Qwen2-0.5B shapes, random weights, ${backends.now.info.device}; one pass of T tokens after a cached ${PROMPT.length}-token prompt, median of ${REPEATS} x ${rounds} rounds`);
  for (const format of formats) {
    const models = {};
    for (const [name, backend] of Object.entries(backends)) models[name] = await Qwen2.load(dir, { backend, dtype: format, maxContext: 512 });
    const ms = { now: new Map(), before: new Map() };
    for (let r = 0; r < rounds; r++) {
      for (const T of TOKENS) {
        for (const name of r % 2 ? ['before', 'now'] : ['now', 'before']) ms[name].set(T, [...(ms[name].get(T) ?? []), await passMs(models[name], T, r)]);
      }
    }
    console.log(`\n${format}    T   now ms  (x 1 token)   before ms  (x 1 token)   before / now`);
    const one = { now: median(ms.now.get(1)), before: median(ms.before.get(1)) };
    for (const T of TOKENS) {
      const now = median(ms.now.get(T));
      const before = median(ms.before.get(T));
      console.log(`${' '.repeat(format.length)} ${String(T).padStart(4)} ${now.toFixed(1).padStart(8)}  (${(now / one.now).toFixed(2).padStart(5)})  ${before.toFixed(1).padStart(11)}  (${(before / one.before).toFixed(2).padStart(5)})  ${(before / now).toFixed(2).padStart(12)}`);
    }
    for (const model of Object.values(models)) await model.dispose();
  }
} finally {
  for (const backend of Object.values(backends)) await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
