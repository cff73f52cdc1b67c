#!/usr/bin/env node
// Decode and prefill throughput of the CUDA backend at real Qwen2 shapes (random weights: speed does not
// depend on the values), side by side with the memory-bandwidth bound measured on the same GPU by a copy
// kernel. Where CUDA is unusable it prints one line and exits 0.
//
//   node scripts/bench.mjs [--models 0.5B,7B] [--formats bf16,q4_0] [--steps 128] [--prefill 512] [--copy-mib 1024]
//                          [--long-context 8192]   (decode after that many tokens with an f32 and an f16 KV cache; 0 skips)
//                          [--batch 1,4,16]        (continuous batching: that many sequences decoded in one pass per step)
import { f32ToBf16, f32ToF16, Qwen2Model, TokenHistory } from '@qwen2-ts/core';
import { cudaAvailability, cudaBackend } from '../dist/index.js';

const SHAPES = {
  // Not a Qwen2 model: checks this script end to end on the emulated addon (QWEN2_CUDA_ADDON).
  micro: { vocabSize: 1000, hiddenSize: 128, intermediateSize: 256, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 64, tieWordEmbeddings: true },
  '0.5B': { vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24, numAttentionHeads: 14, numKeyValueHeads: 2, headDim: 64, tieWordEmbeddings: true },
  '1.5B': { vocabSize: 151936, hiddenSize: 1536, intermediateSize: 8960, numHiddenLayers: 28, numAttentionHeads: 12, numKeyValueHeads: 2, headDim: 128, tieWordEmbeddings: true },
  '7B': { vocabSize: 152064, hiddenSize: 3584, intermediateSize: 18944, numHiddenLayers: 28, numAttentionHeads: 28, numKeyValueHeads: 4, headDim: 128, tieWordEmbeddings: false },
};
// Issue 9's targets on an H200.
const TARGETS = { decodeRatio7B: 0.75, decode05B: 1000, prefill7B: 20000 };

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const models = opt('--models', '0.5B,7B').split(',');
const formats = opt('--formats', 'bf16,q4_0').split(',');
const steps = Number(opt('--steps', '128'));
const prefillTokens = Number(opt('--prefill', '512'));
const copyMiB = Number(opt('--copy-mib', '1024'));
const longContext = Number(opt('--long-context', '8192'));
const batches = opt('--batch', '1,4,16').split(',').map(Number).filter((n) => n > 0);

const availability = cudaAvailability();
if (!availability.available) {
  console.log(`[backend-cuda bench] skipped: ${availability.reason}`);
  process.exit(0);
}

/** xorshift32: fast, seeded, good enough to fill weights. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** A standard normal sample (Box-Muller) from two draws of `next`. */
function normal(next) {
  const u = (next() + 1) / 4294967297, v = (next() + 1) / 4294967297;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A rows x cols device tensor filled with `sample()`. */
function filledTensor(backend, rows, cols, sample) {
  const t = backend.alloc(rows, cols);
  backend.write(t, Float32Array.from({ length: rows * cols }, sample));
  return t;
}

const hostCache = new Map();
/** A random host weight of `format` (values ~ N(0, std)); one per shape, reused by every layer. */
function hostWeight(format, rows, cols, std) {
  const key = `${format}:${rows}x${cols}:${std}`;
  if (hostCache.has(key)) return hostCache.get(key);
  const next = rng(rows * 31 + cols);
  const n = rows * cols;
  let w;
  if (format === 'bf16' || format === 'f16') {
    // A pool of normal samples, then random picks from it: ~1 ns per value.
    const pool = new Uint16Array(65536);
    for (let i = 0; i < pool.length; i++) {
      const z = normal(next) * std;
      pool[i] = format === 'bf16' ? f32ToBf16(z) : f32ToF16(z);
    }
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) data[i] = pool[next() & 0xffff];
    w = { format, rows, cols, data };
  } else if (format === 'q8_0' || format === 'q4_0') {
    const quants = format === 'q8_0' ? new Int8Array(n) : new Uint8Array(n / 2);
    const words = new Uint32Array(quants.buffer);
    for (let i = 0; i < words.length; i++) words[i] = next();
    // Uniform quants have std ~ 4.6 (q4_0) or ~ 74 (q8_0): scale them to `std`.
    const scale = f32ToF16(format === 'q4_0' ? std / 4.6 : std / 74);
    w = { format, rows, cols, scales: new Uint16Array(n / 32).fill(scale), quants };
  } else {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((next() / 4294967296) * 2 - 1) * std * 1.7;
    w = { format: 'f32', rows, cols, data };
  }
  hostCache.set(key, w);
  return w;
}

const ones = (n) => ({ format: 'f32', rows: 1, cols: n, data: new Float32Array(n).fill(1) });
const small = (n) => ({ format: 'f32', rows: 1, cols: n, data: new Float32Array(n).fill(0.01) });

async function uploadModel(backend, c, format) {
  const H = c.hiddenSize, I = c.intermediateSize, qw = c.numAttentionHeads * c.headDim, kvw = c.numKeyValueHeads * c.headDim;
  const up = (w, name) => backend.uploadWeight(w, name);
  const embed = await up(hostWeight(format, c.vocabSize, H, 1), 'embed');
  const layers = [];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    layers.push({
      inputNorm: await up(ones(H), 'in_norm'), postNorm: await up(ones(H), 'post_norm'),
      q: await up(hostWeight(format, qw, H, 1 / Math.sqrt(H)), 'q'), k: await up(hostWeight(format, kvw, H, 1 / Math.sqrt(H)), 'k'),
      v: await up(hostWeight(format, kvw, H, 1 / Math.sqrt(H)), 'v'),
      qBias: await up(small(qw), 'qb'), kBias: await up(small(kvw), 'kb'), vBias: await up(small(kvw), 'vb'),
      o: await up(hostWeight(format, H, qw, 1 / Math.sqrt(qw)), 'o'),
      gate: await up(hostWeight(format, I, H, 1 / Math.sqrt(H)), 'gate'), up: await up(hostWeight(format, I, H, 1 / Math.sqrt(H)), 'up'),
      down: await up(hostWeight(format, H, I, 1 / Math.sqrt(I)), 'down'),
    });
  }
  const norm = await up(ones(H), 'norm');
  const lmHead = c.tieWordEmbeddings ? embed : await up(hostWeight(format, c.vocabSize, H, 1 / Math.sqrt(H)), 'lm_head');
  let layerBytes = 0;
  for (const L of layers) for (const w of Object.values(L)) layerBytes += w.bytes;
  const bytes = embed.bytes + layerBytes + norm.bytes + (c.tieWordEmbeddings ? 0 : lmHead.bytes);
  // What one decode step reads: every layer weight, the final norm and the whole head (one embedding row).
  const perToken = layerBytes + norm.bytes + lmHead.bytes;
  return { weights: { embed, layers, norm, lmHead, bytes, fallbacks: [] }, perToken };
}

const fullConfig = (shape) => ({ ...SHAPES[shape], rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositionEmbeddings: 32768, maxWindowLayers: SHAPES[shape].numHiddenLayers });
const gb = (b) => (b / 1e9).toFixed(2);

const probe = await cudaBackend();
console.log(`[backend-cuda bench] ${probe.info.device}`);
const bandwidth = probe.measureCopyBandwidth(copyMiB * 2 ** 20, 20);
console.log(`copy kernel bandwidth: ${gb(bandwidth)} GB/s (${copyMiB} MiB buffers, reads + writes)`);
await probe.dispose();

for (const shape of models) {
  for (const format of formats) {
    const backend = await cudaBackend();
    const config = fullConfig(shape);
    const t0 = performance.now();
    const { weights, perToken } = await uploadModel(backend, config, format);
    const loadS = (performance.now() - t0) / 1e3;
    const ids = (n, s = 1) => Int32Array.from({ length: n }, (_, i) => (i * 7919 + s) % config.vocabSize);

    // Decode: a short prompt, then `steps` single-token passes (CUDA graphs after the second step), in
    // rounds that alternate programmatic dependent launch off and on where the GPU has it (the graphs
    // are captured again after each switch, in the warm-up steps).
    const model = new Qwen2Model(backend, config, weights, { maxChunk: prefillTokens });
    const decodeRate = async (pdl) => {
      backend.programmaticDependentLaunch = pdl;
      const seq = model.createSequence(steps + 64);
      let id = (await backend.argmax(model.forward(seq, ids(16))))[0];
      for (let i = 0; i < 4; i++) id = (await backend.argmax(model.forward(seq, [id])))[0];
      const d0 = performance.now();
      for (let i = 0; i < steps; i++) id = (await backend.argmax(model.forward(seq, [id])))[0];
      const s = (performance.now() - d0) / 1e3;
      seq.free();
      return steps / s;
    };
    // The same steps with device tokens, as core's greedy generation runs them: step n+1 (its embed
    // reading the id step n's argmax left on the device) is launched before token n is read.
    const deviceTokenRate = async () => {
      backend.programmaticDependentLaunch = false;
      const seq = model.createSequence(steps + 64);
      let drawn = backend.argmaxOnDevice(model.forward(seq, ids(16)));
      const step = async () => {
        const ahead = backend.argmaxOnDevice(model.forwardOnDevice(seq, drawn));
        await drawn.ids();
        drawn = ahead;
      };
      for (let i = 0; i < 4; i++) await step();
      const d0 = performance.now();
      for (let i = 0; i < steps; i++) await step();
      await drawn.ids();
      const s = (performance.now() - d0) / 1e3;
      seq.free();
      return steps / s;
    };
    // Sampling as Qwen2-0.5B-Instruct's generation_config asks (temperature 0.7, top-k 20, top-p 0.8,
    // repetition penalty 1.1), step by step or with device tokens (the previous draw counted on the
    // device), as core's generation runs each.
    const instructSampling = { temperature: 0.7, topK: 20, topP: 0.8, minP: 0, repetitionPenalty: 1.1, presencePenalty: 0, frequencyPenalty: 0 };
    const sampledRate = async (onDevice) => {
      backend.programmaticDependentLaunch = false;
      const seq = model.createSequence(steps + 64);
      const prompt = ids(16);
      const history = new TokenHistory(prompt);
      const next = rng(7);
      const params = () => ({ ...instructSampling, history: history.toParams(), uniform: next() / 2 ** 32 });
      const logits = model.forward(seq, prompt);
      let drawn = onDevice ? backend.sampleOnDevice(logits, params()) : undefined;
      let id = onDevice ? -1 : await backend.sample(logits, params());
      const step = async () => {
        if (!onDevice) {
          history.add(id);
          id = await backend.sample(model.forward(seq, [id]), params());
          return;
        }
        const ahead = backend.sampleOnDevice(model.forwardOnDevice(seq, drawn), params(), drawn);
        history.add((await drawn.ids())[0]);
        drawn = ahead;
      };
      for (let i = 0; i < 4; i++) await step();
      const d0 = performance.now();
      for (let i = 0; i < steps; i++) await step();
      if (drawn) await drawn.ids();
      const s = (performance.now() - d0) / 1e3;
      seq.free();
      return steps / s;
    };
    backend.programmaticDependentLaunch = true;
    const modes = backend.programmaticDependentLaunch ? [false, true] : [false];
    const rates = new Map(modes.map((m) => [m, []]));
    const deviceTokenRates = [];
    for (let round = 0; round < 3; round++) {
      for (const m of modes) rates.get(m).push(await decodeRate(m));
      deviceTokenRates.push(await deviceTokenRate());
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const tps = median(rates.get(false));
    const bound = bandwidth / perToken;
    const stats = backend.passStats;
    console.log(`Qwen2-${shape} ${format} decode: ${tps.toFixed(1)} tokens/s (median of 3 rounds) | bandwidth bound ${bound.toFixed(1)} tokens/s (${gb(perToken)} GB/token) | ratio ${(tps / bound).toFixed(3)} | passes eager ${stats.eager}, captured ${stats.captured}, replayed ${stats.replayed}, ops fused ${stats.fused} | weights ${gb(weights.bytes)} GB uploaded in ${loadS.toFixed(1)} s`);
    let best = tps;
    if (modes.length > 1) {
      const on = median(rates.get(true));
      best = Math.max(best, on);
      const ratios = rates.get(true).map((r, i) => (r / rates.get(false)[i]).toFixed(3)).join(', ');
      console.log(`  with programmatic dependent launch: ${on.toFixed(1)} tokens/s | ratio ${(on / bound).toFixed(3)} of the bound | on / off per round: ${ratios}`);
    } else console.log('  programmatic dependent launch: not available on this GPU');
    const onDevice = median(deviceTokenRates);
    best = Math.max(best, onDevice);
    console.log(`  with device tokens (step n+1 launched before token n is read, as greedy generation runs): ${onDevice.toFixed(1)} tokens/s | ratio ${(onDevice / bound).toFixed(3)} of the bound | ${(onDevice / tps).toFixed(3)}x the step-by-step loop`);
    const sampledSteps = await sampledRate(false), sampledDevice = await sampledRate(true);
    console.log(`  sampled as Qwen2-0.5B-Instruct asks (T 0.7, top-k 20, top-p 0.8, repetition 1.1): step by step ${sampledSteps.toFixed(1)} tokens/s, with device tokens ${sampledDevice.toFixed(1)} (${(sampledDevice / sampledSteps).toFixed(3)}x)`);
    if (shape === '7B' && format === 'bf16') console.log(`  target: ratio >= ${TARGETS.decodeRatio7B} -> ${best / bound >= TARGETS.decodeRatio7B ? 'met' : 'NOT met'}`);
    if (shape === '0.5B') console.log(`  target: >= ${TARGETS.decode05B} tokens/s -> ${best >= TARGETS.decode05B ? 'met' : 'NOT met'}`);
    backend.programmaticDependentLaunch = false;

    // Continuous batching (core's Qwen2Model.forwardBatch, what Qwen2.load's `parallel` runs): B sequences
    // after their own 64-token prompts, one pass per step for all of them, the argmax of every row read
    // back each step; aggregate tokens/s, best of 3 rounds of `steps` steps, against one sequence's rate.
    if (batches.length > 0) {
      const batchRate = async (B, round) => {
        const seqs = Array.from({ length: B }, () => model.createSequence(64 + steps + 8));
        let next = [];
        for (const [i, seq] of seqs.entries()) next.push((await backend.argmax(model.forward(seq, ids(64, 10 + round * B + i))))[0]);
        for (let i = 0; i < 2; i++) next = Array.from(await backend.argmax(model.forwardBatch(seqs, next)));
        const d0 = performance.now();
        for (let i = 0; i < steps - 2; i++) next = Array.from(await backend.argmax(model.forwardBatch(seqs, next)));
        const s = (performance.now() - d0) / 1e3;
        for (const seq of seqs) seq.free();
        return (B * (steps - 2)) / s;
      };
      const line = [];
      let one;
      for (const B of batches) {
        let best = 0;
        for (let round = 0; round < 3; round++) best = Math.max(best, await batchRate(B, round));
        one ??= best;
        line.push(`${B}: ${best.toFixed(1)}${B === batches[0] ? '' : ` (${(best / one).toFixed(2)}x)`}`);
      }
      console.log(`  batched decode, sequences: aggregate tokens/s (x the first) | ${line.join(' | ')}`);
    }

    // Decode after a long prompt, where each step reads the KV cache as well as the weights: an f32
    // cache against an f16 one (half the bytes), alternating, median of 3 rounds of `steps` steps.
    if (longContext > 0) {
      const longRate = async (kv) => {
        const seq = model.createSequence(longContext + steps + 8, kv);
        let id = (await backend.argmax(model.forward(seq, ids(longContext, 3))))[0];
        for (let i = 0; i < 4; i++) id = (await backend.argmax(model.forward(seq, [id])))[0];
        const d0 = performance.now();
        for (let i = 0; i < steps; i++) id = (await backend.argmax(model.forward(seq, [id])))[0];
        const s = (performance.now() - d0) / 1e3;
        const bytes = seq.cache.bytes;
        seq.free();
        return { rate: steps / s, bytes };
      };
      const long = { f32: [], f16: [] };
      const cacheBytes = {};
      for (let round = 0; round < 3; round++) {
        for (const kv of round % 2 ? ['f16', 'f32'] : ['f32', 'f16']) {
          const r = await longRate(kv);
          long[kv].push(r.rate);
          cacheBytes[kv] = r.bytes;
        }
      }
      const f32 = median(long.f32), f16 = median(long.f16);
      console.log(`  decode after ${longContext} tokens: f32 KV cache ${f32.toFixed(1)} tokens/s (${gb(cacheBytes.f32)} GB), f16 KV cache ${f16.toFixed(1)} tokens/s (${gb(cacheBytes.f16)} GB) | f16 / f32 ${(f16 / f32).toFixed(3)}`);
    }

    // Prefill: one pass of `prefillTokens` tokens into an empty cache, best of 3; with f16/bf16 weights
    // at both GEMM precisions (x split into hi + lo, or rounded once to 16 bits).
    const precisions = format === 'bf16' || format === 'f16' ? ['f32', '16-bit'] : ['f32'];
    for (const precision of precisions) {
      backend.prefillPrecision = precision;
      let best = Infinity;
      for (let r = 0; r < 3; r++) {
        const s = model.createSequence(prefillTokens + 8);
        const p0 = performance.now();
        await backend.argmax(model.forward(s, ids(prefillTokens, r)));
        best = Math.min(best, (performance.now() - p0) / 1e3);
        s.free();
      }
      const ptps = prefillTokens / best;
      const label = precisions.length > 1 ? ` (GEMM precision ${precision})` : '';
      console.log(`Qwen2-${shape} ${format} prefill ${prefillTokens}${label}: ${ptps.toFixed(0)} tokens/s (${(best * 1e3).toFixed(1)} ms)`);
      if (shape === '7B') console.log(`  target: >= ${TARGETS.prefill7B} tokens/s -> ${ptps >= TARGETS.prefill7B ? 'met' : 'NOT met'}`);
    }
    // The prefill GEMMs alone: one layer's four matmul calls (q/k/v, o, gate/up, down) on
    // `prefillTokens` rows, 10 times each per precision, as tensor throughput (2 * rows * N * K per
    // weight); with split-K (the default) and without it, side by side, per call and for the layer.
    {
      const L = weights.layers[0];
      const H = config.hiddenSize, I = config.intermediateSize, qw = config.numAttentionHeads * config.headDim, kvw = config.numKeyValueHeads * config.headDim;
      const T = prefillTokens, next = rng(7);
      const filled = (cols) => filledTensor(backend, T, cols, () => next() / 2 ** 32 * 2 - 1);
      const x = filled(H), xi = filled(I), q = backend.alloc(T, qw), k = backend.alloc(T, kvw), v = backend.alloc(T, kvw);
      const o = backend.alloc(T, H), g = backend.alloc(T, I), u = backend.alloc(T, I);
      const calls = [
        ['q/k/v', 2 * T * H * (qw + 2 * kvw), () => backend.matmul(x, [L.q, L.k, L.v], [L.qBias, L.kBias, L.vBias], [q, k, v])],
        ['o', 2 * T * qw * H, () => backend.matmul(q, [L.o], [undefined], [o])],
        ['gate/up', 2 * T * 2 * H * I, () => backend.matmul(x, [L.gate, L.up], [undefined, undefined], [g, u])],
        ['down', 2 * T * I * H, () => backend.matmul(xi, [L.down], [undefined], [o])],
      ];
      const flops = calls.reduce((sum, c) => sum + c[1], 0);
      // Seconds per call of each of the four, averaged over 10 runs after a warm-up run.
      const timeCalls = async () => {
        const seconds = [];
        for (const [, , run] of calls) {
          run();
          await backend.read(backend.view(o, 0, 1));
          const g0 = performance.now();
          for (let r = 0; r < 10; r++) run();
          await backend.read(backend.view(o, 0, 1));
          seconds.push((performance.now() - g0) / 1e3 / 10);
        }
        return seconds;
      };
      for (const precision of precisions) {
        backend.prefillPrecision = precision;
        const on = await timeCalls();
        backend.prefillSplitK = false;
        const off = await timeCalls();
        backend.prefillSplitK = true;
        const s = on.reduce((a, b) => a + b, 0), sOff = off.reduce((a, b) => a + b, 0);
        const label = precisions.length > 1 ? ` (GEMM precision ${precision})` : '';
        const perCall = calls.map((c, i) => `${c[0]} ${(c[1] / on[i] / 1e12).toFixed(1)} (${(off[i] / on[i]).toFixed(2)}x)`).join(', ');
        console.log(`  prefill GEMMs of one layer at ${T} rows${label}: ${(flops / s / 1e12).toFixed(1)} TFLOP/s (${(s * 1e3).toFixed(2)} ms per layer, ${(s * 1e3 * config.numHiddenLayers).toFixed(1)} ms for ${config.numHiddenLayers} layers)`);
        console.log(`    without split-K: ${(flops / sOff / 1e12).toFixed(1)} TFLOP/s; split-K on / off speed ${(sOff / s).toFixed(3)}; per call TFLOP/s (speed vs off): ${perCall}`);
      }
      for (const t of [x, xi, q, k, v, o, g, u]) backend.free(t);
    }
    // Prefill attention alone: one layer's causal attention over `prefillTokens` new tokens, 10 times per
    // precision ('f32': the f32 kernels; '16-bit': bf16 tensor cores where they suit), as throughput
    // (2 * 2 * heads * head_dim per visible (query, key) pair), and how far the 16-bit output lies from
    // the f32 one on the GPU (the emulated kernel tests bound it against a float64 reference).
    {
      const T = prefillTokens, next = rng(11);
      const heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads, hd = config.headDim;
      const filled = (cols, std) => filledTensor(backend, T, cols, () => normal(next) * std);
      // Scores of standard deviation ~2, so the softmax is neither flat nor one-hot.
      const q = filled(heads * hd, 2), k = filled(kvHeads * hd, 1), v = filled(kvHeads * hd, 1);
      const cache = backend.createKVCache({ layers: 1, kvHeads, headDim: hd, maxTokens: T });
      backend.writeKV(cache, 0, k, v, 0);
      const spec = { heads, kvHeads, headDim: hd, scale: 1 / Math.sqrt(hd) };
      const flops = 4 * heads * hd * (T * (T + 1)) / 2;
      const outputs = [];
      for (const precision of precisions.includes('16-bit') ? precisions : ['f32', '16-bit']) {
        backend.prefillPrecision = precision;
        const out = backend.alloc(T, heads * hd);
        backend.attention(q, cache, 0, 0, spec, out);
        await backend.read(backend.view(out, 0, 1));
        const a0 = performance.now();
        for (let r = 0; r < 10; r++) backend.attention(q, cache, 0, 0, spec, out);
        await backend.read(backend.view(out, 0, 1));
        const s = (performance.now() - a0) / 1e3 / 10;
        outputs.push(await backend.read(out));
        backend.free(out);
        console.log(`  prefill attention of one layer at ${T} tokens (precision ${precision}): ${(flops / s / 1e12).toFixed(1)} TFLOP/s (${(s * 1e3).toFixed(3)} ms per layer, ${(s * 1e3 * config.numHiddenLayers).toFixed(1)} ms for ${config.numHiddenLayers} layers)`);
      }
      let diff = 0, mag = 0;
      for (let i = 0; i < outputs[0].length; i++) {
        diff = Math.max(diff, Math.abs(outputs[0][i] - outputs[1][i]));
        mag = Math.max(mag, Math.abs(outputs[0][i]));
      }
      // bf16 rounding (unit roundoff 2^-8 = 3.9e-3) of q, k, v and the probabilities moves outputs of these
      // N(0, 1) values by up to about 1e-2 (1.3e-2 on the emulated addon at --models micro --prefill 32);
      // a wrong kernel moves them by their own size.
      console.log(`  16-bit attention vs f32: largest difference ${diff.toExponential(2)} (largest |output| ${mag.toFixed(3)}; bf16 rounding alone gives up to about 1e-2)`);
      for (const t of [q, k, v]) backend.free(t);
      backend.free(cache);
    }
    model.dispose();
    await backend.dispose();
  }
}
