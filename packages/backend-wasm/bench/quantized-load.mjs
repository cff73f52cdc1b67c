// Loading a pre-quantized checkpoint (Qwen's -AWQ and -GPTQ-Int4 layout) against loading the bf16
// checkpoint of the same shapes into q4_0: what it takes from disk, how long the load takes (read,
// dequantize or quantize, upload), what the backend holds, and the decode speed that follows (the same
// q4_0 kernels, so it should match).
//
// Random weights at Qwen2-0.5B shapes on the WASM backend. Rounds alternate the checkpoints; the medians
// and the ratio to the bf16 load are printed.
//
//   node bench/quantized-load.mjs [--model=Qwen2-0.5B] [--cases=bf16,awq,gptq] [--rounds=3] [--threads=2] [--gen=32] [--dir=/tmp]
//
// Peak RSS is the process's highest resident size seen during each load (sampled every 20 ms); run one
// case alone (--cases=awq) to read it without the others' memory (a WebAssembly memory never shrinks).
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { writeRandomQuantizedCheckpoint } from './random-quantized-checkpoint.mjs';
import { median } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const modelName = args.get('model') ?? 'Qwen2-0.5B';
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);
const GEN = Number(args.get('gen') ?? 32);

const root = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-quantized-load-'));
const wanted = (args.get('cases') ?? 'bf16,awq,gptq').split(',');
const cases = [
  { key: 'bf16', name: 'bf16 -> q4_0', dir: join(root, 'bf16'), dtype: 'q4_0', write: (d) => writeRandomCheckpoint(d, modelName) },
  { key: 'awq', name: 'AWQ (auto)', dir: join(root, 'awq'), dtype: 'auto', write: (d) => writeRandomQuantizedCheckpoint(d, modelName, 'awq') },
  { key: 'gptq', name: 'GPTQ-Int4 (auto)', dir: join(root, 'gptq'), dtype: 'auto', write: (d) => writeRandomQuantizedCheckpoint(d, modelName, 'gptq') },
].filter((c) => wanted.includes(c.key));
const backend = await wasmBackend({ threads });
try {
  for (const c of cases) {
    mkdirSync(c.dir);
    c.bytes = c.write(c.dir).bytes;
    c.loads = [];
    c.decode = [];
    c.peak = 0;
  }
  console.log(`${modelName} shapes, random weights; ${backend.info.device}; ${rounds} rounds`);
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      const t0 = performance.now();
      const sampler = setInterval(() => (c.peak = Math.max(c.peak, process.memoryUsage().rss)), 20);
      const model = await Qwen2.load(c.dir, { backend, dtype: c.dtype, maxContext: GEN + 16 });
      clearInterval(sampler);
      c.peak = Math.max(c.peak, process.memoryUsage().rss);
      c.loads.push((performance.now() - t0) / 1000);
      c.format = model.weightFormat;
      c.weightBytes = model.weightsBytes;
      const t1 = performance.now();
      const out = await model.generate([1, 2, 3, 4], { temperature: 0, maxNewTokens: GEN, ignoreEos: true });
      c.decode.push(out.ids.length / ((performance.now() - t1) / 1000));
      await model.dispose();
    }
  }
  const base = median(cases[0].loads);
  const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
  console.log('\ncheckpoint          on disk    matrices  backend holds  load s (median, all)            load / first  decode tok/s  peak RSS');
  for (const c of cases) {
    const load = median(c.loads);
    console.log(`${c.name.padEnd(19)} ${mb(c.bytes).padStart(7)}    ${c.format.padEnd(8)}  ${mb(c.weightBytes).padStart(10)}     ${load.toFixed(2)} (${c.loads.map((s) => s.toFixed(2)).join(', ')})`.padEnd(95) +
      `${(load / base).toFixed(2)}x`.padEnd(14) + median(c.decode).toFixed(1).padEnd(14) + mb(c.peak));
  }
  console.log(`\n(on disk: model.safetensors; ${cases.every((c) => statSync(join(c.dir, 'model.safetensors')).size === c.bytes) ? 'sizes checked' : 'size mismatch'})`);
} finally {
  await backend.dispose();
  rmSync(root, { recursive: true, force: true });
}
