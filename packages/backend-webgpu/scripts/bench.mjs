#!/usr/bin/env node
// Decode/prefill benchmark of the WebGPU backend at real Qwen2 shapes with random weights, printed side
// by side with the device's measured copy bandwidth: tokens/s vs the memory-bandwidth bound
// (weight bytes read per token / bandwidth). Runs on the built dist (build first).
//
//   node scripts/bench.mjs [--model 0.5b|1.5b|7b|tiny|micro] [--format f16|bf16|f32|q8_0|q4_0] [--tokens 32]
//                          [--prompt 128] [--no-f16] [--kv-cache f32|f16] [--batch 8]
//
// In Node it uses Dawn (npm "webgpu"); with no GPU it falls back to the lavapipe unpacked by
// scripts/setup-test-env.mjs (numbers from a CPU driver say nothing about GPU speed).
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { MODELS, modelConfig, option as opt, uploadModel } from './model-shapes.mjs';

const args = process.argv.slice(2);
const format = opt('format', 'f16');
const kvCache = opt('kv-cache', 'f32');
if (kvCache !== 'f32' && kvCache !== 'f16') throw new Error(`unknown --kv-cache ${kvCache} (f32, f16)`);

const icd = fileURLToPath(new URL('../.vendor/lavapipe/lvp_icd.json', import.meta.url));
if (!process.env.VK_ICD_FILENAMES && !existsSync('/dev/nvidia0') && !existsSync('/dev/dri') && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
const { create } = await import('webgpu');
const { webgpuBackend } = await import('../dist/index.js');
const core = await import('@qwen2-ts/core');

const gpu = create([]);
let backend;
try {
  backend = await webgpuBackend({ gpu, preferF16: !args.includes('--no-f16') });
} catch (e) {
  // No adapter (no GPU and no CPU driver): nothing to measure; say so without failing `npm run bench`.
  console.log(`backend-webgpu bench skipped: ${e.message}`);
  process.exit(0);
}
const software = /llvmpipe|lavapipe|swiftshader/i.test(backend.info.device);
// On a CPU driver the default is the tiny shape: a 0.5B decode there takes minutes and says nothing.
const modelName = opt('model', software ? 'tiny' : '0.5b');
const m = MODELS[modelName];
if (!m) throw new Error(`unknown --model ${modelName} (${Object.keys(MODELS).join(', ')})`);
const tokens = Number(opt('tokens', software ? 4 : 32));
const promptLen = Number(opt('prompt', software ? 8 : 128));
console.log(`adapter: ${backend.info.device}${software ? '  [software adapter: numbers are not GPU numbers]' : ''}`);
console.log(`model: Qwen2-${modelName} shapes (${JSON.stringify(m)}), weights ${format}, random values`);

// ---- random weights (a repeated random block: fast to make at 7B) ----
let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const block = Float32Array.from({ length: 1 << 16 }, () => (rnd() * 2 - 1) * 0.05);
function values(n) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += block.length) out.set(block.subarray(0, Math.min(block.length, n - i)), i);
  return out;
}
function halves(v, convert) {
  const out = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = convert(v[i]);
  return out;
}
function host(fmt, rows, cols) {
  const v = values(rows * cols);
  switch (fmt) {
    case 'f32': return { format: fmt, rows, cols, data: v };
    // A loop, not Uint16Array.from(v, fn): that builds a JS array of every value first, which runs
    // Node out of heap at the 0.5B embedding (136M values).
    case 'f16': return { format: fmt, rows, cols, data: halves(v, core.f32ToF16) };
    case 'bf16': return { format: fmt, rows, cols, data: halves(v, core.f32ToBf16) };
    case 'q8_0': return core.quantizeQ8_0(v, rows, cols);
    case 'q4_0': return core.quantizeQ4_0(v, rows, cols);
    default: throw new Error(`unknown --format ${fmt}`);
  }
}
const headDim = m.hidden / m.heads;
const t0 = performance.now();
const weights = await uploadModel(backend, m, (rows, cols) => host(format, rows, cols));
console.log(`upload: ${(weights.bytes / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const config = modelConfig(m);

// ---- copy bandwidth: the bound a bandwidth-limited decode can reach ----
const copyBytes = 2 ** 27 - (1 << 20); // under every adapter's 128 MiB binding limit
const cols = 4096;
const rows = Math.floor(copyBytes / 4 / cols);
const a = backend.alloc(rows, cols);
const b = backend.alloc(rows, cols);
const reps = software ? 3 : 50;
backend.beginPass(1, 0); backend.copy(a, b); backend.endPass(); await backend.read(backend.view(b, 0, 1));
let t = performance.now();
backend.beginPass(1, 0);
for (let i = 0; i < reps; i++) backend.copy(i % 2 ? b : a, i % 2 ? a : b);
backend.endPass();
await backend.read(backend.view(a, 0, 1));
const bandwidth = (2 * rows * cols * 4 * reps) / ((performance.now() - t) / 1000);
backend.free(a); backend.free(b);
console.log(`copy bandwidth (read + write): ${(bandwidth / 1e9).toFixed(1)} GB/s`);

// ---- prefill and decode through core's graph ----
const model = new core.Qwen2Model(backend, config, weights);
const seq = model.createSequence(promptLen + 3 * tokens + 3, kvCache);
console.log(`KV cache: ${kvCache}, ${(seq.cache.bytes / 2 ** 20).toFixed(1)} MiB for ${promptLen + 3 * tokens + 3} tokens`);
const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919) % m.vocab);
t = performance.now();
let logits = model.forward(seq, prompt);
let next = (await backend.argmax(logits))[0];
const prefillS = (performance.now() - t) / 1000;
// One untimed decode step: compiles the decode pipelines (the prefill above compiled the GEMM ones,
// so its time includes compilation; run with a longer --prompt for a steadier prefill number).
logits = model.forward(seq, [next]);
next = (await backend.argmax(logits))[0];
t = performance.now();
const before = backend.recorded;
for (let i = 0; i < tokens; i++) {
  logits = model.forward(seq, [next]);
  next = (await backend.argmax(logits))[0];
}
const decodeS = (performance.now() - t) / 1000;
const after = backend.recorded;
const tps = tokens / decodeS;

// The same decode with device tokens, as core's greedy generation runs it: step n+1 (embedding the id
// that step n's argmax left on the device) is recorded and submitted before the host reads token n.
let drawn = backend.argmaxOnDevice(model.forward(seq, [next]));
t = performance.now();
for (let i = 0; i < tokens; i++) {
  const ahead = backend.argmaxOnDevice(model.forwardOnDevice(seq, drawn));
  next = (await drawn.ids())[0];
  drawn = ahead;
}
next = (await drawn.ids())[0];
const pipelinedS = (performance.now() - t) / 1000;
const pipelinedTps = tokens / pipelinedS;

// Continuous batching (core's Qwen2Model.forwardBatch, what Qwen2.load's `parallel` runs): --batch
// sequences after their own 16-token prompts decoded in one pass per step, every row's argmax read back
// each step; aggregate tokens/s over `tokens` steps after one untimed step.
const batch = Number(opt('batch', software ? 2 : 8));
let batchTps = 0;
if (batch > 1) {
  const seqs = Array.from({ length: batch }, () => model.createSequence(16 + tokens + 2, kvCache));
  let ids = [];
  for (const [b, s] of seqs.entries()) ids.push((await backend.argmax(model.forward(s, Array.from({ length: 16 }, (_, i) => (i * 7919 + 31 * b + 1) % m.vocab))))[0]);
  ids = Array.from(await backend.argmax(model.forwardBatch(seqs, ids)));
  t = performance.now();
  for (let i = 0; i < tokens; i++) ids = Array.from(await backend.argmax(model.forwardBatch(seqs, ids)));
  batchTps = (batch * tokens) / ((performance.now() - t) / 1000);
  for (const s of seqs) s.free();
}

// Host cost of one step, measured apart: recording (core's graph, the backend's ops, Dawn's calls) and
// submitting it. While a readback is pending, Dawn's Node binding polls with a new setImmediate
// callback per tick, so a long GPU step leaves garbage whose collection would land in the next
// recording: here the heap is collected before each timed step (untimed), when gc can be had.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const recordMs = [];
for (let i = 0; i < tokens; i++) {
  gc();
  const r = performance.now();
  logits = model.forward(seq, [next]); // records the step's dispatches
  const drawn = backend.argmax(logits); // records the argmax and the copy, submits all (the wait is apart)
  recordMs.push(performance.now() - r);
  next = (await drawn)[0];
}
recordMs.sort((x, y) => x - y);
const recordMedian = recordMs[recordMs.length >> 1];

// Bytes a decode step must read: every weight once (the embedding table only for its one row when the
// head is untied) plus the KV cache so far.
const embedBytes = m.tied ? 0 : weights.embed.bytes;
const kvBytes = 2 * m.layers * m.kvHeads * headDim * 4 * (promptLen + tokens / 2);
const perToken = weights.bytes - embedBytes + kvBytes;
const bound = bandwidth / perToken;
console.log(`prefill: ${promptLen} tokens in ${prefillS.toFixed(2)} s = ${(promptLen / prefillS).toFixed(1)} tokens/s`);
console.log(`decode: ${tps.toFixed(1)} tokens/s | bandwidth bound ${bound.toFixed(1)} tokens/s (${(perToken / 1e6).toFixed(0)} MB/token) | ratio ${(tps / bound).toFixed(2)}`);
console.log(`decode with device tokens (next step recorded before the token is read, as greedy generation runs): ${pipelinedTps.toFixed(1)} tokens/s | ratio ${(pipelinedTps / bound).toFixed(2)} | ${(pipelinedTps / tps).toFixed(2)}x the step-by-step loop`);
if (batch > 1) console.log(`batched decode of ${batch} sequences (one pass per step): ${batchTps.toFixed(1)} tokens/s in all | ${(batchTps / tps).toFixed(2)}x one sequence step by step`);
const perStep = (after.dispatches - before.dispatches) / tokens;
console.log(`host: ${perStep.toFixed(0)} dispatches and ${((after.submissions - before.submissions) / tokens).toFixed(1)} submissions per token (argmax included); ` +
  `recording and submitting a step takes ${recordMedian.toFixed(2)} ms (median of ${tokens}, heap collected before each), a ceiling of ${(1000 / recordMedian).toFixed(0)} tokens/s`);
// ---- one draw over a full vocabulary of logits: argmax, and sampling at a chat's usual settings ----
// Fixed random logits of Qwen2's 151,936 tokens whatever --model is: the sampler's cost depends on
// the vocabulary only (values repeat every 65,536 tokens, as every weight here does).
const V = 151936;
const vocabLogits = backend.alloc(1, V);
backend.write(vocabLogits, Float32Array.from(values(V), (v) => v * 60));
const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
const chat = (i) => ({ temperature: 0.7, topK: 40, topP: 0.9, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: (i * 0.618034) % 1 });
const draws = software ? 10 : 100;
async function msPerDraw(draw) {
  await draw(0);
  const t = performance.now();
  for (let i = 0; i < draws; i++) await draw(i);
  return (performance.now() - t) / draws;
}
const argmaxMs = await msPerDraw(() => backend.argmax(vocabLogits));
const sampleMs = await msPerDraw((i) => backend.sample(vocabLogits, chat(i)));
const topPOnlyMs = await msPerDraw((i) => backend.sample(vocabLogits, { ...chat(i), topK: 0 }));
console.log(`draw over ${V} logits: argmax ${argmaxMs.toFixed(2)} ms, sample (temperature 0.7, top-k 40, top-p 0.9) ${sampleMs.toFixed(2)} ms, ` +
  `without top-k ${topPOnlyMs.toFixed(2)} ms (mean of ${draws}, readback included)`);
await backend.dispose();
