#!/usr/bin/env node
// Our WASM backend against onnxruntime-web (npm onnxruntime-web: the engine under transformers.js, its
// WebAssembly execution provider) in the same headless Chromium, on the same weights, in one run
// (browser-comparison.mjs does the serving and the rounds):
//   1. writes a random-weight bf16 checkpoint at Qwen2-0.5B's real shapes and, from it, per format an
//      ONNX model (onnx/qwen2-onnx.mjs: GroupQueryAttention with RoPE inside, the KV cache as inputs and
//      outputs, SimplifiedLayerNormalization) whose matrices are
//        q8_0 -> int8 as onnxruntime's dynamic quantization writes them (per-channel int8 weights,
//                DynamicQuantizeLinear + MatMulInteger: transformers.js' default "q8" models for WASM),
//        q4_0 -> 4-bit MatMulNBits, block 32, int8 compute (transformers.js' "q4"; onnxruntime-genai's
//                int4), its codes and scales core's q4_0 blocks: the same weights as ours;
//        bf16 -> f32 MatMul (transformers.js' "fp32"; the bf16 values widened exactly), weights in an
//                external data file (a protobuf holds at most 2 GiB);
//   2. per format and round, a fresh browser context runs ours (`Qwen2.load` from the URL folder at that
//      format, generate as `qwen2 bench` does), then another runs onnxruntime-web (`InferenceSession` on the model's URL,
//      graph optimizations on; a greedy loop over `session.run`: the P prompt ids, then G steps of one id
//      with the previous step's present keys and values; argmax over the last logits in JavaScript);
//   3. prints medians over rounds and the per-round ratios (ours / onnxruntime, above 1: we are faster).
// Prefill is timed from the prompt's run to its chosen token, decode over the G steps after it, as ours.
//
//   node bench/vs-onnxruntime.mjs [--formats=bf16,q8_0,q4_0] [--threads=2] [--prompt-tokens=64] [--gen-tokens=32] [--rounds=3] [--repeats=2] [--json]
//
// Needs `build` of core, loader, tokenizer and this package (the root `pnpm build`), /usr/bin/chromium
// (the test command installs it), and the devDependencies playwright-core and onnxruntime-web.
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runBrowserComparison } from './browser-comparison.mjs';
import { qwen2Onnx } from './onnx/qwen2-onnx.mjs';

const require = createRequire(import.meta.url);
// The package exports no package.json: its Node entry point lies in dist/.
const ortDist = dirname(require.resolve('onnxruntime-web'));
const ortVersion = JSON.parse(readFileSync(join(ortDist, '..', 'package.json'), 'utf8')).version;

const ORT_SCRIPT = `
import * as ort from '/ort/ort.wasm.min.mjs';
window.onnxruntime = async ({ format, threads, promptTokens, genTokens, repeats }) => {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = '/ort/';
  const meta = await (await fetch('/model/onnx-' + format + '.json')).json();
  const t0 = performance.now();
  const external = meta.external ? { externalData: [{ path: meta.external, data: location.origin + '/model/' + meta.external }] } : {};
  const session = await ort.InferenceSession.create(location.origin + '/model/model-' + format + '.onnx', { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...external });
  const loadMs = performance.now() - t0;
  const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, meta.kvHeads, 0, meta.headDim]);
  // One pass: ids after a cache of total - ids.length tokens; the greedy next id and the new cache.
  const step = async (ids, past, total) => {
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
      seqlens_k: new ort.Tensor('int32', Int32Array.from([total - 1]), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.from([total]), []),
    };
    for (let i = 0; i < meta.layers; i++) { feeds['past_key.' + i] = past[2 * i]; feeds['past_value.' + i] = past[2 * i + 1]; }
    const out = await session.run(feeds);
    const logits = out.logits.data;
    let next = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[next]) next = j;
    const present = [];
    for (let i = 0; i < meta.layers; i++) present.push(out['present_key.' + i], out['present_value.' + i]);
    return { next, past: present };
  };
  const runs = [];
  for (let run = 0; run < 1 + repeats; run++) {
    const ids = promptIds(promptTokens, run);
    let t = performance.now();
    let r = await step(ids, Array.from({ length: 2 * meta.layers }, empty), promptTokens);
    const prefillS = (performance.now() - t) / 1000;
    t = performance.now();
    for (let g = 1; g <= genTokens; g++) r = await step([r.next], r.past, promptTokens + g);
    const decodeS = (performance.now() - t) / 1000;
    if (run > 0) runs.push({ prefill: promptTokens / prefillS, decode: genTokens / decodeS });
  }
  await session.release();
  return { loadMs, device: 'onnxruntime-web ${ortVersion}, wasm, ' + threads + ' threads', runs };
};`;

await runBrowserComparison({
  tag: 'vs-onnxruntime',
  theirs: 'onnxruntime',
  served: { '/ort/': `${ortDist}/` },
  script: ORT_SCRIPT,
  defaultFormats: 'bf16,q8_0,q4_0',
  prepare: async (format, dir) => {
    const bits = { bf16: 32, q8_0: 8, q4_0: 4 }[format];
    if (!bits) throw new Error(`vs-onnxruntime: formats bf16, q8_0 and q4_0 are compared, not ${format}`);
    // The ids the page feeds onnxruntime are the digits' tokens (Qwen2's pre-tokenizer splits digits one
    // by one, so each is its vocabulary entry; ours checks that its prompt is P tokens).
    const vocab = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).model.vocab;
    const digits = Array.from('0123456789', (d) => vocab[d]);
    if (digits.join(',') !== '15,16,17,18,19,20,21,22,23,24') throw new Error(`vs-onnxruntime: the vocabulary has ${digits} for the digits, not ids 15..24`);
    const external = bits === 32 ? `model-${format}.onnx.data` : undefined;
    const { bytes, externalData, ...meta } = await qwen2Onnx(dir, { maxPositions: 1024, bits, externalFile: external });
    writeFileSync(join(dir, `model-${format}.onnx`), bytes);
    if (external) {
      const fd = openSync(join(dir, external), 'w');
      for (const part of externalData) writeSync(fd, part);
      closeSync(fd);
    }
    writeFileSync(join(dir, `onnx-${format}.json`), JSON.stringify({ ...meta, external }));
    return () => {
      rmSync(join(dir, `model-${format}.onnx`));
      if (external) rmSync(join(dir, external));
    };
  },
  note: 'onnxruntime: the ONNX models onnx/qwen2-onnx.mjs writes (bf16: f32 MatMul; q8_0: per-channel int8 MatMulInteger; q4_0: MatMulNBits, accuracy_level 4), greedy loop in the page',
});
