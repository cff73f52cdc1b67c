// Loading a pre-quantized checkpoint (Qwen's -AWQ and -GPTQ-Int4 layout, or a GGUF file as in Qwen's
// -GGUF repositories) against loading the bf16 checkpoint of the same shapes into q4_0: what it takes from disk, how long the load takes (read,
// dequantize or quantize, upload), what the backend holds, and the decode speed that follows (the same
// q4_0 kernels, so it should match).
//
// Random weights at Qwen2-0.5B shapes on the WASM backend. Rounds alternate the checkpoints; the medians
// and the ratio to the bf16 load are printed.
//
//   node bench/quantized-load.mjs [--model=Qwen2-0.5B] [--cases=bf16,awq,gptq,gguf-q4_0,gguf-q8_0,gguf-q4_k,gguf-q4_k-requantized] [--rounds=3] [--threads=2] [--gen=32] [--dir=/tmp]
//
// gguf-q4_0 / gguf-q8_0 are the bf16 checkpoint converted by core (llama.cpp's block layout); gguf-q4_k
// is a random model laid out about as llama.cpp's Q4_K_M files are (Q4_K where rows are whole 256-value
// blocks, Q5_0 elsewhere; the embedding Q8_0 at 0.5B, whose 896-wide rows K-quants cannot take, Q6_K at 7B).
// Its Q4_K blocks are kept as q4_k; gguf-q4_k-requantized loads the same file on the backend with q4_k
// hidden from core, as for a backend without q4_k kernels (webgpu, cuda): Q4_K quantized again into q4_0.
//
// Peak RSS is the process's highest resident size seen during each load (sampled every 20 ms); run one
// case alone (--cases=awq) to read it without the others' memory (a WebAssembly memory never shrinks).
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Qwen2 } from '@qwen2-ts/core';
import { writeGgufFixture, writeRandomGguf } from '@qwen2-ts/core/testing';
import { parseQwen2Config } from '@qwen2-ts/loader';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { writeRandomQuantizedCheckpoint } from './random-quantized-checkpoint.mjs';
import { median } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const modelName = args.get('model') ?? 'Qwen2-0.5B';
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);
const GEN = Number(args.get('gen') ?? 32);

const tokenizerJson = readFileSync(fileURLToPath(new URL('../../../fixtures/tokenizer/tokenizer.json', import.meta.url)), 'utf8');
const root = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-quantized-load-'));
const wanted = (args.get('cases') ?? 'bf16,awq,gptq').split(',');
const configFile = fileURLToPath(new URL(`../../../fixtures/configs/${modelName}/config.json`, import.meta.url));
const config = parseQwen2Config(JSON.parse(readFileSync(configFile, 'utf8')), configFile);
const ggufFile = (d) => join(d, 'model.gguf');
/** The bf16 checkpoint the GGUF conversions start from (written once, also when its case is not run). */
const bf16Dir = join(root, 'bf16');
const source = () => { try { statSync(join(bf16Dir, 'model.safetensors')); } catch { mkdirSync(bf16Dir, { recursive: true }); writeRandomCheckpoint(bf16Dir, modelName); } return bf16Dir; };
/** A random model in llama.cpp's Q4_K_M layout, written once per folder (two cases read it). */
async function q4kmFile(d) {
  try { return { bytes: statSync(ggufFile(d)).size }; } catch { /* not written yet */ }
  await writeRandomGguf(ggufFile(d), { config, matrixType: 'Q4_K', fallbackType: 'Q5_0', embeddingType: config.hiddenSize % 256 === 0 ? 'Q6_K' : 'Q8_0' });
  return { bytes: statSync(ggufFile(d)).size };
}
const converted = (format) => async (d) => { await writeGgufFixture(source(), ggufFile(d), { format }); return { bytes: statSync(ggufFile(d)).size }; };
const cases = [
  { key: 'bf16', name: 'bf16 -> q4_0', dir: bf16Dir, dtype: 'q4_0', write: (d) => writeRandomCheckpoint(d, modelName) },
  { key: 'awq', name: 'AWQ (auto)', dir: join(root, 'awq'), dtype: 'auto', write: (d) => writeRandomQuantizedCheckpoint(d, modelName, 'awq') },
  { key: 'gptq', name: 'GPTQ-Int4 (auto)', dir: join(root, 'gptq'), dtype: 'auto', write: (d) => writeRandomQuantizedCheckpoint(d, modelName, 'gptq') },
  { key: 'gguf-q4_0', name: 'GGUF Q4_0 (auto)', dir: join(root, 'gguf-q4_0'), file: true, dtype: 'auto', write: converted('q4_0') },
  { key: 'gguf-q8_0', name: 'GGUF Q8_0 (auto)', dir: join(root, 'gguf-q8_0'), file: true, dtype: 'auto', write: converted('q8_0') },
  { key: 'gguf-q4_k', name: 'GGUF Q4_K_M (auto)', dir: join(root, 'gguf-q4_k'), file: true, dtype: 'auto', write: q4kmFile },
  { key: 'gguf-q4_k-requantized', name: 'GGUF Q4_K_M, no q4_k', dir: join(root, 'gguf-q4_k'), file: true, dtype: 'auto', withoutQ4K: true, write: q4kmFile },
].filter((c) => wanted.includes(c.key));
const backend = await wasmBackend({ threads });
/** Loads a case; `withoutQ4K` hides q4_k from core's format choice while the weights load (only then does it count). */
async function load(c) {
  const info = backend.info;
  if (c.withoutQ4K) backend.info = { ...info, formats: info.formats.filter((f) => f !== 'q4_k') };
  try {
    return await Qwen2.load(c.file ? ggufFile(c.dir) : c.dir, { backend, dtype: c.dtype, maxContext: GEN + 16, tokenizer: { tokenizerJson } });
  } finally {
    backend.info = info;
  }
}
try {
  for (const c of cases) {
    mkdirSync(c.dir, { recursive: true });
    c.bytes = (await c.write(c.dir)).bytes;
    c.loads = [];
    c.decode = [];
    c.peak = 0;
  }
  console.log(`${modelName} shapes, random weights; ${backend.info.device}; ${rounds} rounds`);
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      const t0 = performance.now();
      const sampler = setInterval(() => (c.peak = Math.max(c.peak, process.memoryUsage().rss)), 20);
      const model = await load(c);
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
  console.log(`\n(on disk: model.safetensors or model.gguf; ${cases.every((c) => statSync(c.file ? ggufFile(c.dir) : join(c.dir, 'model.safetensors')).size === c.bytes) ? 'sizes checked' : 'size mismatch'})`);
} finally {
  await backend.dispose();
  rmSync(root, { recursive: true, force: true });
}
