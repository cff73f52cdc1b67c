#!/usr/bin/env node
// Matmul benchmark at Qwen2-0.5B shapes: our kernels (f32/bf16/q8_0/q4_0, 1 and 2 threads) next to
// @tensorflow/tfjs-backend-wasm's f32 matmul (XNNPACK, single-threaded in Node), and both against the
// memory bandwidth measured with a plain wasm read loop. Run: pnpm --filter @qwen2-ts/backend-wasm bench
// (after build). Options: --quick (fewer shapes), --prefill=T (GEMM tokens, default 128; 0: decode only), --plain (plain
// SIMD128 kernels even where relaxed SIMD is available), --formats=q4_0,q4_k (default
// f32,bf16,q8_0,q4_0; q4_k is ggml's Q4_K), --shapes=18944x3584,896x4864 (out x in), --threads=2 (default
// 1 and 2), --no-tfjs, --vs=q4_0 (each format's time over that format's, same shape, tokens and
// threads), --rounds=3 (the formats of a cell timed in turn that many times; the median is printed).
// q4_k against q4_0 at Qwen2-7B and 0.5B shapes, two threads:
//   node bench/matmul.mjs --formats=q4_0,q4_k --vs=q4_0 --shapes=18944x3584,3584x18944,896x4864 --prefill=64 --threads=2 --no-tfjs --rounds=3
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { wasmBackend } from '../dist/index.js';
import { median, randomWeight, timeIt } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const PREFILL = Number(args.get('prefill') ?? 128);
const SHAPES = args.has('shapes') ? args.get('shapes').split(',').map((s) => s.split('x').map(Number))
  : args.has('quick') ? [[4864, 896]] : [[896, 896], [4864, 896], [896, 4864], [151936, 896]];
const FORMATS = (args.get('formats') ?? 'f32,bf16,q8_0,q4_0').split(',');
// Bytes a decode step reads per weight as stored (q4_k: 152 per 256, assembly/q4_k_layout.ts).
const BYTES_PER_WEIGHT = { f32: 4, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q4_k: 152 / 256 };
const VS = args.get('vs');
const ROUNDS = Number(args.get('rounds') ?? 1);
const TFJS = !args.has('no-tfjs');

const relaxedSimd = !args.has('plain');
const THREADS = args.has('threads') ? [Number(args.get('threads'))] : [1, 2];
const backends = Object.fromEntries(await Promise.all(THREADS.map(async (t) => [t, await wasmBackend({ threads: t, relaxedSimd })])));
const anyBackend = backends[THREADS[THREADS.length - 1]];
console.log(`kernels: ${anyBackend.info.device}`);

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
console.log(`memory read bandwidth (wasm v128 loads): ${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''} ${bandwidth[t].toFixed(1)} GB/s`).join(', ')}`);

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
  console.log(`one parallel job (dispatch + join, tiny work): ${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''} ${perJob[t].toFixed(3)} us`).join(', ')}` +
    (solo ? ` (${solo} jobs ran on the main thread alone: the contention guard saw the worker lagging, the machine is busy)` : '') + '\n');
}

// ---- tfjs-backend-wasm -----------------------------------------------------------------------------
let tf;
if (TFJS) {
  const require = createRequire(import.meta.url);
  tf = await import('@tensorflow/tfjs-core');
  const tfw = await import('@tensorflow/tfjs-backend-wasm');
  tfw.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')) + '/');
  await tf.setBackend('wasm');
  await tf.ready();
}

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
console.log(`shape (out x in)   T    format  threads    ms      GB/s     %BW   GFLOP/s${TFJS ? '   speed vs tfjs f32' : ''}${VS ? `   time / ${VS}` : ''}`);
for (const [N, K] of SHAPES) {
  for (const T of PREFILL > 1 ? [1, PREFILL] : [1]) {
    if (T > 1 && N > 100000) continue; // prefill computes the lm_head for the last token only
    const flop = 2 * T * N * K;
    const tfs = TFJS ? tfjsTime(T, N, K) : undefined;
    // GB/s and % of bandwidth only mean something for decode (T = 1), where each weight is read once per token.
    const bw = (bytes, s, threads) => (T === 1 ? `${fmt(bytes / s / 1e9)} ${fmt((100 * bytes) / s / 1e9 / bandwidth[threads], 0)}` : `${'-'.padStart(7)} ${'-'.padStart(7)}`);
    if (TFJS) console.log(`${`${N}x${K}`.padEnd(16)} ${String(T).padStart(4)}  tfjs-f32      1  ${fmt(tfs * 1e3, 2)}  ${bw(N * K * 4, tfs, 1)}  ${fmt(flop / tfs / 1e9)}`);
    const hosts = Object.fromEntries(FORMATS.map((format) => [format, randomWeight(format, N, K, 1).host]));
    for (const [threads, b] of Object.entries(backends)) {
      // Every format of this cell uploaded, then timed in turn ROUNDS times (a shared machine's load
      // drifts; alternating keeps the formats' times comparable).
      const runs = {};
      for (const format of FORMATS) {
        const bytes = N * K * BYTES_PER_WEIGHT[format];
        // Cycle through enough copies (>= 256 MB) that every call streams its weight from DRAM, as in a
        // real forward pass, instead of finding it in the last-level cache.
        const copies = T === 1 ? Math.ceil((256 << 20) / bytes) : 1;
        const ws = [];
        for (let i = 0; i < copies; i++) ws.push(await b.uploadWeight(hosts[format], 'w'));
        runs[format] = { bytes, copies, ws, times: [] };
      }
      const x = b.alloc(T, K);
      b.write(x, new Float32Array(T * K).map((_, i) => Math.sin(i)));
      const out = b.alloc(T, N);
      for (let round = 0; round < ROUNDS; round++) {
        for (const format of FORMATS) {
          const { ws, copies, times } = runs[format];
          let next = 0;
          times.push(timeIt(() => b.matmul(x, [ws[next++ % copies]], [undefined], [out]), 0.4, copies));
        }
      }
      for (const format of FORMATS) {
        const { bytes, ws, times } = runs[format];
        const s = median(times);
        const vs = VS && runs[VS] ? `   ${fmt(s / median(runs[VS].times), 3)}` : '';
        console.log(`${`${N}x${K}`.padEnd(16)} ${String(T).padStart(4)}  ${format.padEnd(8)} ${String(threads).padStart(5)}  ${fmt(s * 1e3, 2)}  ${bw(bytes, s, threads)}  ${fmt(flop / s / 1e9)}${TFJS ? `   ${fmt(tfs / s, 2)}x` : ''}${vs}`);
        for (const w of ws) b.free(w);
      }
      b.free(x); b.free(out);
    }
  }
}
for (const b of Object.values(backends)) await b.dispose();
