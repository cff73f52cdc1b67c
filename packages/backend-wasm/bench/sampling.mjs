// Sampling on the WASM backend: its kernel-module sampler against core's JavaScript reference
// (`sampleFromLogits`, which the backend called before), per draw over Qwen2's 151,936 logits and in
// whole decoding at Qwen2-0.5B with the sampling settings of Qwen2-0.5B-Instruct's generation_config
// (temperature 0.7, top-k 20, top-p 0.8, repetition penalty 1.05) and two others, next to greedy.
//
// Random weights (q4_0 by default), 2 threads; the samplers alternate in each round (the reference by
// swapping the backend's `sample` for one that reads the row and calls sampleFromLogits). Prints medians.
//
//   node bench/sampling.mjs [--format=q4_0] [--tokens=64] [--rounds=3] [--threads=2] [--dir=/tmp]
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qwen2, sampleFromLogits } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { median } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const format = args.get('format') ?? 'q4_0';
const tokens = Number(args.get('tokens') ?? 64);
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);

const SETTINGS = {
  'Instruct (T 0.7, top-k 20, top-p 0.8, rep 1.05)': { temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.05 },
  'temperature 1 alone': { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
  'T 0.8, min-p 0.05': { temperature: 0.8, topK: 0, topP: 1, minP: 0.05, repetitionPenalty: 1 },
};

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-sampling-'));
const backend = await wasmBackend({ threads });
const kernels = backend.sample;
const reference = async (logits, params) => sampleFromLogits(await backend.read(logits), params);
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  const model = await Qwen2.load(dir, { backend, dtype: format, maxContext: 512 });
  console.log(`Qwen2-0.5B shapes, ${format} weights, random; ${backend.info.device}; ${tokens} tokens after a 16-token prompt`);
  const prompt = Array.from({ length: 16 }, (_, i) => 1000 + 37 * i);

  // Per draw, on the logits the model gives after the prompt.
  const [row] = await model.logits(prompt);
  const t = backend.alloc(1, row.length);
  backend.write(t, row);
  console.log('\nper draw over 151,936 logits     reference ms   kernels ms   reference/kernels');
  for (const [name, s] of Object.entries(SETTINGS)) {
    const params = { topK: 0, topP: 1, minP: 0, presencePenalty: 0, frequencyPenalty: 0, ...s, history: { ids: Int32Array.from(prompt), counts: new Int32Array(16).fill(1) } };
    const ms = { reference: [], kernels: [] };
    for (let i = 0; i < 21; i++) {
      for (const which of ['reference', 'kernels']) {
        const t0 = performance.now();
        await (which === 'reference' ? reference : kernels.bind(backend))(t, { ...params, uniform: (i * 0.618) % 1 });
        ms[which].push(performance.now() - t0);
      }
    }
    const [a, b] = [median(ms.reference), median(ms.kernels)];
    console.log(`${name.padEnd(48)} ${a.toFixed(2).padStart(6)}   ${b.toFixed(3).padStart(10)}   ${(a / b).toFixed(1).padStart(17)}`);
  }
  backend.free(t);

  // Whole decoding.
  const rate = { greedy: [] };
  for (const name of Object.keys(SETTINGS)) rate[`${name}|reference`] = [], rate[`${name}|kernels`] = [];
  for (let r = 0; r < rounds; r++) {
    const ids = prompt.map((id) => id + r);
    rate.greedy.push((await model.generate(ids, { temperature: 0, maxNewTokens: tokens, ignoreEos: true })).decodeTokensPerSecond);
    for (const [name, s] of Object.entries(SETTINGS)) {
      for (const which of r % 2 ? ['kernels', 'reference'] : ['reference', 'kernels']) {
        backend.sample = which === 'reference' ? reference : kernels;
        rate[`${name}|${which}`].push((await model.generate(ids, { ...s, seed: r, maxNewTokens: tokens, ignoreEos: true })).decodeTokensPerSecond);
      }
      backend.sample = kernels;
    }
  }
  const greedy = median(rate.greedy);
  console.log(`\ndecode tokens/s (median of ${rounds})                reference   kernels   kernels/reference   kernels/greedy`);
  console.log(`${'greedy'.padEnd(48)} ${greedy.toFixed(1).padStart(9)}`);
  for (const name of Object.keys(SETTINGS)) {
    const [a, b] = [median(rate[`${name}|reference`]), median(rate[`${name}|kernels`])];
    console.log(`${name.padEnd(48)} ${a.toFixed(1).padStart(9)} ${b.toFixed(1).padStart(9)} ${(b / a).toFixed(2).padStart(19)} ${(b / greedy).toFixed(2).padStart(16)}`);
  }
  await model.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
