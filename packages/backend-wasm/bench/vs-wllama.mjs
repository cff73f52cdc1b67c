#!/usr/bin/env node
// Our WASM backend against wllama (npm @wllama/wllama: llama.cpp's CPU backend compiled to WebAssembly
// SIMD, the other engine that runs Qwen2 checkpoints on the CPU of a browser) in the same headless
// Chromium, on the same weights, in one run (browser-comparison.mjs does the serving and the rounds):
//   1. writes a random-weight bf16 checkpoint at Qwen2-0.5B's real shapes (random-checkpoint.mjs) and,
//      per format, its GGUF (llama-cpp/gguf-writer.mjs: q8_0/q4_0 blocks bit-identical to ours);
//   2. per format and round, a fresh browser context runs ours (`Qwen2.load` from the URL folder, then
//      generate as `qwen2 bench` does: a P-token prompt of new ids each run, G greedy decode steps, EOS
//      ignored), then another fresh context runs wllama (its GGUF as a Blob, `createCompletion` with the
//      same ids, `max_tokens` G + 1, greedy, EOS ignored, no prompt cache) and reads llama-server's own
//      timings (prompt and predicted tokens per second);
//   3. prints medians over rounds and the per-round ratios (ours / wllama, above 1: we are faster).
//
//   node bench/vs-wllama.mjs [--formats=bf16,q8_0,q4_0] [--threads=2] [--prompt-tokens=64] [--gen-tokens=32]
//                            [--rounds=3] [--repeats=2] [--json]
//
// Needs `build` of core, loader, tokenizer and this package (the root `pnpm build`), /usr/bin/chromium
// (the test command installs it), and the devDependencies playwright-core and @wllama/wllama.
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runBrowserComparison } from './browser-comparison.mjs';
import { writeGguf } from './llama-cpp/gguf-writer.mjs';

const wllamaRoot = join(dirname(createRequire(import.meta.url).resolve('@wllama/wllama/package.json')), 'esm');

// wllama's completion takes text only: the same digits as ours (one token each in both tokenizers).
const WLLAMA_SCRIPT = `
import { Wllama } from '/wllama/index.js';
window.wllama = async ({ format, threads, promptTokens, genTokens, repeats }) => {
  const w = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  const t0 = performance.now();
  const blob = await (await fetch('/model/model-' + format + '.gguf')).blob();
  await w.loadModel([blob], { n_threads: threads, n_ctx: promptTokens + genTokens + 16, n_batch: 512, n_gpu_layers: 0, n_parallel: 1 });
  const loadMs = performance.now() - t0;
  const runs = [];
  for (let run = 0; run < 1 + repeats; run++) {
    const r = await w.createCompletion({ prompt: promptText(promptTokens, run), max_tokens: genTokens + 1, temperature: 0, ignore_eos: true, cache_prompt: false });
    const t = r.timings;
    if (!t || t.prompt_n !== promptTokens || t.predicted_n !== genTokens + 1) throw new Error('wllama: timings ' + JSON.stringify(t));
    // llama-server's predicted timing covers every sampled token after the prompt's; ours covers the G
    // steps after the first token, which the prompt's pass yields: the same G + 1 tokens, one counted with
    // the prompt on each side (llama-server samples the first in its predicted time, so it is a little
    // pessimistic for wllama's decode, by a token's sampling in G + 1).
    if (run > 0) runs.push({ prefill: t.prompt_per_second, decode: t.predicted_per_second });
  }
  const device = 'wllama ' + (w.isMultithread() ? threads + ' threads' : '1 thread (no multi-thread build)');
  await w.exit();
  return { loadMs, device, runs };
};`;

await runBrowserComparison({
  tag: 'vs-wllama',
  theirs: 'wllama',
  served: { '/wllama/': `${wllamaRoot}/` },
  script: WLLAMA_SCRIPT,
  prepare: async (format, dir) => {
    const gguf = join(dir, `model-${format}.gguf`);
    await writeGguf(dir, gguf, { format });
    return () => rmSync(gguf);
  },
});
