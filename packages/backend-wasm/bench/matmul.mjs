#!/usr/bin/env node
// Matmul benchmark at Qwen2-0.5B shapes: our kernels (f32/bf16/q8_0/q4_0, 1 and 2 threads) next to
// @tensorflow/tfjs-backend-wasm's f32 matmul (XNNPACK, single-threaded in Node), and both against the
// memory bandwidth measured with a plain wasm read loop. Run: pnpm --filter @qwen2-ts/backend-wasm bench
// (after build). Options: --quick (fewer shapes), --prefill=T (GEMM tokens, default 128), --plain (plain
// SIMD128 kernels even where relaxed SIMD is available).
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { wasmBackend } from '../dist/index.js';
import { randomWeight, timeIt } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const PREFILL = Number(args.get('prefill') ?? 128);
const SHAPES = args.has('quick') ? [[4864, 896]] : [[896, 896], [4864, 896], [896, 4864], [151936, 896]];
const FORMATS = ['f32', 'bf16', 'q8_0', 'q4_0'];
const BYTES_PER_WEIGHT = { f32: 4, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };

const relaxedSimd = !args.has('plain');
const backends = { 1: await wasmBackend({ threads: 1, relaxedSimd }), 2: await wasmBackend({ threads: 2, relaxedSimd }) };
console.log(`kernels: ${backends[2].info.device}`);

// ---- memory bandwidth: sum 512 MiB with 4 v128 loads per 64 bytes ---------------------------------
const BW_BYTES = 512 * 1024 * 1024;
const bandwidth = {};
for (const [threads, b] of Object.entries(backends)) {
  const buf = b.alloc(BW_BYTES / 4 / 1024, 1024);
  b.write(buf, new Float32Array(BW_BYTES / 4).fill(1));
  const chunk = 1 << 20;
  const s = timeIt(() => b.run('read_chunks', 0, BW_BYTES / chunk, 1, [buf.ptr, chunk], { base: b.alloc(threads * 16, 1).ptr, stride: 64 }), 0.5);
  bandwidth[threads] = BW_BYTES / s / 1e9;
  b.free(buf);
}
console.log(`memory read bandwidth (wasm v128 loads): 1 thread ${bandwidth[1].toFixed(1)} GB/s, 2 threads ${bandwidth[2].toFixed(1)} GB/s`);

// ---- cost of one parallel job: a 2-unit job of 64 bytes each, so nearly all of it is synchronization ----
{
  const perJob = {};
  let solo = 0;
  for (const [threads, b] of Object.entries(backends)) {
    const before = b.pool?.soloJobs ?? 0;
    const buf = b.alloc(64, 1);
    const scratch = b.alloc(threads * 16, 1);
    const jobs = 20000;
    const s = timeIt(() => { for (let i = 0; i < jobs; i++) b.run('read_chunks', 0, 2, 1, [buf.ptr, 64], { base: scratch.ptr, stride: 64 }); }, 0.5);
    perJob[threads] = (s / jobs) * 1e6;
    solo += (b.pool?.soloJobs ?? 0) - before;
  }
  console.log(`one parallel job (dispatch + join, tiny work): 1 thread ${perJob[1].toFixed(3)} us, 2 threads ${perJob[2].toFixed(3)} us` +
    (solo ? ` (${solo} jobs ran on the main thread alone: the contention guard saw the worker lagging, the machine is busy)` : '') + '\n');
}

// ---- tfjs-backend-wasm -----------------------------------------------------------------------------
const require = createRequire(import.meta.url);
const tf = await import('@tensorflow/tfjs-core');
const tfw = await import('@tensorflow/tfjs-backend-wasm');
tfw.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')) + '/');
await tf.setBackend('wasm');
await tf.ready();

function tfjsTime(T, N, K) {
  // tfjs wants [in, out] (transposeB is 8-12x slower); the same cycling of cold copies as ours.
  const copies = T === 1 ? Math.ceil((256 << 20) / (N * K * 4)) : 1;
  const ws = Array.from({ length: copies }, () => tf.randomUniform([K, N], -1, 1, 'float32'));
  const x = tf.randomUniform([T, K], -1, 1, 'float32');
  let next = 0;
  // Every copy once before timing: XNNPACK packs a weight on its first use.
  const s = timeIt(() => { const y = tf.matMul(x, ws[next++ % copies]); y.dataSync(); y.dispose(); }, 0.4, copies);
  for (const w of ws) w.dispose();
  x.dispose();
  return s;
}

const fmt = (v, d = 1) => v.toFixed(d).padStart(7);
console.log('shape (out x in)   T    format  threads    ms      GB/s     %BW   GFLOP/s   speed vs tfjs f32');
for (const [N, K] of SHAPES) {
  for (const T of [1, PREFILL]) {
    if (T > 1 && N > 100000) continue; // prefill computes the lm_head for the last token only
    const flop = 2 * T * N * K;
    const tfs = tfjsTime(T, N, K);
    // GB/s and % of bandwidth only mean something for decode (T = 1), where each weight is read once per token.
    const bw = (bytes, s, threads) => (T === 1 ? `${fmt(bytes / s / 1e9)} ${fmt((100 * bytes) / s / 1e9 / bandwidth[threads], 0)}` : `${'-'.padStart(7)} ${'-'.padStart(7)}`);
    console.log(`${`${N}x${K}`.padEnd(16)} ${String(T).padStart(4)}  tfjs-f32      1  ${fmt(tfs * 1e3, 2)}  ${bw(N * K * 4, tfs, 1)}  ${fmt(flop / tfs / 1e9)}`);
    for (const format of FORMATS) {
      const { host } = randomWeight(format, N, K, 1);
      for (const [threads, b] of Object.entries(backends)) {
        const bytes = N * K * BYTES_PER_WEIGHT[format];
        // Cycle through enough copies (>= 256 MB) that every call streams its weight from DRAM, as in a
        // real forward pass, instead of finding it in the last-level cache.
        const copies = T === 1 ? Math.ceil((256 << 20) / bytes) : 1;
        const ws = [];
        for (let i = 0; i < copies; i++) ws.push(await b.uploadWeight(host, 'w'));
        const x = b.alloc(T, K);
        b.write(x, new Float32Array(T * K).map((_, i) => Math.sin(i)));
        const out = b.alloc(T, N);
        let next = 0;
        const s = timeIt(() => b.matmul(x, [ws[next++ % copies]], [undefined], [out]), 0.4, copies);
        console.log(`${`${N}x${K}`.padEnd(16)} ${String(T).padStart(4)}  ${format.padEnd(8)} ${String(threads).padStart(5)}  ${fmt(s * 1e3, 2)}  ${bw(bytes, s, threads)}  ${fmt(flop / s / 1e9)}   ${fmt(tfs / s, 2)}x`);
        for (const w of ws) b.free(w);
        b.free(x); b.free(out);
      }
    }
  }
}
for (const b of Object.values(backends)) await b.dispose();
