#!/usr/bin/env node
// Whole-model benchmark through core's Qwen2Model graph on random weights at real Qwen2 shapes:
// prefill and decode tokens/s per weight format, each as a fraction of the memory-bandwidth bound
// (weight bytes read per decoded token / measured read bandwidth), and peak RSS against the bytes
// the backend stores (weights + KV cache).
//
//   node bench/model.mjs --model=0.5b --formats=bf16,q8_0,q4_0 --threads=2
//   node bench/model.mjs --model=7b --formats=q4_0          (one format per process: peak RSS is per process)
//
// Weights are generated in-process, one tensor at a time, directly in the stored format (random codes
// with scales chosen to keep activations O(1)), and uploaded as they are made: the host never holds
// more than one tensor beside the backend.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Qwen2Model } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { measureReadBandwidth } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const model = args.get('model') ?? '0.5b';
const formats = (args.get('formats') ?? (model === '7b' ? 'q4_0' : 'bf16,q8_0,q4_0')).split(',');
const threads = Number(args.get('threads') ?? 2);
const promptTokens = Number(args.get('prompt') ?? (model === '7b' ? 16 : 64));
const decodeTokens = Number(args.get('decode') ?? (model === '7b' ? 8 : 32));
const maxTokens = Number(args.get('context') ?? 1024);

const configFile = new URL(`../../../fixtures/configs/${model === '7b' ? 'Qwen2-7B' : 'Qwen2-0.5B'}/config.json`, import.meta.url);
const hf = JSON.parse(readFileSync(configFile, 'utf8'));
const config = {
  vocabSize: hf.vocab_size, hiddenSize: hf.hidden_size, intermediateSize: hf.intermediate_size, numHiddenLayers: hf.num_hidden_layers,
  numAttentionHeads: hf.num_attention_heads, numKeyValueHeads: hf.num_key_value_heads, headDim: hf.hidden_size / hf.num_attention_heads,
  rmsNormEps: hf.rms_norm_eps, ropeTheta: hf.rope_theta, tieWordEmbeddings: hf.tie_word_embeddings, maxPositionEmbeddings: hf.max_position_embeddings,
  slidingWindow: undefined, maxWindowLayers: hf.max_window_layers ?? hf.num_hidden_layers,
};

// A pool of random bytes that tensors copy from at random offsets (generating 4-8 GB one byte at a
// time would take minutes and measure nothing).
const POOL = new Uint8Array(64 << 20);
{ let s = 12345; for (let i = 0; i < POOL.length; i += 4) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; POOL[i] = s; POOL[i + 1] = s >> 8; POOL[i + 2] = s >> 16; POOL[i + 3] = s >> 24; } }
let cursor = 0;
function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; ) {
    const start = (cursor = (cursor * 1103515245 + 12345) % (POOL.length - 4096)) & ~63;
    const len = Math.min(n - o, POOL.length - start);
    out.set(POOL.subarray(start, start + len), o);
    o += len;
  }
  return out;
}
const f16 = (v) => { const f = new Float32Array([v]); const u = new Uint32Array(f.buffer)[0]; return ((u >> 16) & 0x8000) | ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff); };
function matrix(format, rows, cols) {
  const n = rows * cols;
  const std = 1 / Math.sqrt(cols); // keeps each output O(1) for O(1) inputs
  if (format === 'q8_0' || format === 'q4_0') {
    const scales = new Uint16Array(n / 32).fill(f16(format === 'q8_0' ? std / 73 : std / 4.6));
    const raw = randomBytes(format === 'q8_0' ? n : n / 2);
    return { format, rows, cols, scales, quants: format === 'q8_0' ? new Int8Array(raw.buffer) : raw };
  }
  if (format === 'bf16' || format === 'f16') {
    const data = new Uint16Array(randomBytes(n * 2).buffer);
    // Keep sign and low mantissa bits, pin the exponent near std: random values of about the right size.
    const e = Math.round(Math.log2(std));
    const hi = format === 'bf16' ? ((127 + e) << 7) : ((15 + e) << 10);
    const mant = format === 'bf16' ? 0x7f : 0x3ff;
    for (let i = 0; i < n; i++) data[i] = (data[i] & 0x8000) | hi | (data[i] & mant);
    return { format, rows, cols, data };
  }
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (POOL[i & (POOL.length - 1)] / 128 - 1) * std * 1.7;
  return { format, rows, cols, data };
}
const vector = (cols, value) => ({ format: 'f32', rows: 1, cols, data: new Float32Array(cols).fill(value) });
const biasVec = (cols) => ({ format: 'f32', rows: 1, cols, data: Float32Array.from({ length: cols }, (_, i) => ((POOL[i] / 255) - 0.5) * 0.1) });

async function uploadModel(backend, format) {
  const { hiddenSize: H, intermediateSize: I, numAttentionHeads: nh, numKeyValueHeads: kvh, headDim: hd, vocabSize: V } = config;
  const up = (w, name) => backend.uploadWeight(w, name);
  const embed = await up(matrix(format, V, H), 'embed');
  const layers = [];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    layers.push({
      inputNorm: await up(vector(H, 1), 'in_norm'), postNorm: await up(vector(H, 1), 'post_norm'),
      q: await up(matrix(format, nh * hd, H), 'q'), k: await up(matrix(format, kvh * hd, H), 'k'), v: await up(matrix(format, kvh * hd, H), 'v'),
      qBias: await up(biasVec(nh * hd), 'qb'), kBias: await up(biasVec(kvh * hd), 'kb'), vBias: await up(biasVec(kvh * hd), 'vb'),
      o: await up(matrix(format, H, nh * hd), 'o'),
      gate: await up(matrix(format, I, H), 'gate'), up: await up(matrix(format, I, H), 'up'), down: await up(matrix(format, H, I), 'down'),
    });
  }
  const norm = await up(vector(H, 1), 'norm');
  const lmHead = config.tieWordEmbeddings ? embed : await up(matrix(format, V, H), 'lm_head');
  return { embed, layers, norm, lmHead, bytes: backend.memory().weights, fallbacks: [] };
}

// Peak RSS is per process: several formats run as one child process each, this one prints the header.
const child = args.has('child');
if (formats.length > 1 && !child) {
  const rest = process.argv.slice(2).filter((a) => !a.startsWith('--formats'));
  let header = true;
  for (const f of formats) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...rest, `--formats=${f}`, ...(header ? [] : ['--child'])], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
    header = false;
  }
  process.exit(0);
}

const bandwidth = await measureReadBandwidth(wasmBackend, threads);
if (!child) console.log(`Qwen2-${model} shapes (${config.numHiddenLayers} layers, hidden ${config.hiddenSize}, vocab ${config.vocabSize}), ${threads} threads; bound = weight bytes per token / read bandwidth measured by each run`);
if (!child) console.log('format  read GB/s  weights GB  memories  load s  prefill tok/s  decode tok/s  decode ms/tok  bound ms/tok  %bound  peak RSS GB  RSS/(weights+KV)');

for (const format of formats) {
  const backend = await wasmBackend({ threads, relaxedSimd: !args.has('plain') });
  const t0 = performance.now();
  const weights = await uploadModel(backend, format);
  const loadSeconds = (performance.now() - t0) / 1000;
  const m = new Qwen2Model(backend, config, weights, { maxChunk: 256 });
  const seq = m.createSequence(maxTokens);
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % config.vocabSize);
  let s = performance.now();
  let logits = m.forward(seq, prompt);
  let next = (await backend.argmax(logits))[0];
  const prefillSeconds = (performance.now() - s) / 1000;
  s = performance.now();
  for (let i = 0; i < decodeTokens; i++) {
    logits = m.forward(seq, [next]);
    next = (await backend.argmax(logits))[0];
  }
  const decodeSeconds = (performance.now() - s) / 1000;
  const mem = backend.memory();
  // Bytes read per decoded token: every matrix once (a tied embedding is read as the lm_head only).
  const perToken = mem.weights - (config.tieWordEmbeddings ? 0 : weights.embed.bytes) + (seq.length ?? 0) * 0;
  const boundMs = (perToken / (bandwidth * 1e9)) * 1e3;
  const msPerToken = (decodeSeconds / decodeTokens) * 1e3;
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(`${format.padEnd(6)} ${bandwidth.toFixed(1).padStart(11)} ${(mem.weights / 1e9).toFixed(2).padStart(10)} ${String(backend.memories).padStart(9)} ${loadSeconds.toFixed(1).padStart(7)} ${(promptTokens / prefillSeconds).toFixed(1).padStart(14)} ${(decodeTokens / decodeSeconds).toFixed(2).padStart(13)} ${msPerToken.toFixed(1).padStart(14)} ${boundMs.toFixed(1).padStart(13)} ${((100 * boundMs) / msPerToken).toFixed(0).padStart(7)} ${(peak / 1e9).toFixed(2).padStart(12)} ${(peak / (mem.weights + mem.kvCache)).toFixed(3).padStart(17)}`);
  if (!Number.isFinite((await backend.read(logits))[0])) console.log(`  warning: ${format} logits are not finite`);
  if (backend.pool?.soloJobs) console.log(`  note: ${backend.pool.soloJobs} jobs ran on the main thread alone (contention guard: the machine is busier than ${threads} cores)`);
  await backend.dispose();
}
