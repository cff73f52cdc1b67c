#!/usr/bin/env node
// llama.cpp's CPU backend (npm node-llama-cpp's prebuilt binary) measured the way `qwen2 bench`
// measures us: a P-token prompt (new ids each run), then G decode steps with greedy sampling, EOS
// ignored; medians of --repeats runs after --warmup runs (an even count averages the middle two,
// as `qwen2 bench` does). One process per model file, so peak RSS is
// this model's alone. Prints one JSON object.
//
//   node bench/llama-cpp/llama-bench.mjs --model=/tmp/m.gguf --threads=2 --prompt-tokens=64 --gen-tokens=32
import { performance } from 'node:perf_hooks';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { median } from '../util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const modelPath = args.get('model');
if (!modelPath) throw new Error('usage: llama-bench.mjs --model=FILE.gguf [--threads=2] [--prompt-tokens=64] [--gen-tokens=32] [--repeats=3] [--warmup=1]');
const threads = Number(args.get('threads') ?? 2);
const promptTokens = Number(args.get('prompt-tokens') ?? 64);
const genTokens = Number(args.get('gen-tokens') ?? 32);
const repeats = Number(args.get('repeats') ?? 3);
const warmup = Number(args.get('warmup') ?? 1);

/** Distinct ordinary-vocabulary ids per run (a shared prefix would be served from the KV cache). */
function promptIds(count, run) {
  let x = (0x9e3779b9 ^ (run + 1) * 0x85ebca6b) >>> 0;
  return Array.from({ length: count }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % 151643;
  });
}

// build 'never': the prebuilt binary only (its postinstall, which could download or compile, never ran).
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath, useMmap: true });
const context = await model.createContext({ contextSize: promptTokens + genTokens + 16, batchSize: Math.max(512, promptTokens), threads: { ideal: threads, min: threads } });
const loadMs = performance.now() - t0;
const sequence = context.getSequence();

const runs = [];
for (let run = 0; run < warmup + repeats; run++) {
  await sequence.clearHistory();
  const start = performance.now();
  let first = 0;
  let produced = 0;
  // G decode steps follow the token the prefill yields: G + 1 new tokens, as in `qwen2 bench`.
  for await (const token of sequence.evaluate(promptIds(promptTokens, run), { temperature: 0, yieldEogToken: true })) {
    void token;
    if (produced++ === 0) first = performance.now();
    if (produced === genTokens + 1) break;
  }
  const end = performance.now();
  if (run >= warmup) runs.push({ prefill: promptTokens / ((first - start) / 1000), decode: genTokens / ((end - first) / 1000), ttft: first - start });
}

console.log(JSON.stringify({
  backend: 'llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU)',
  threads,
  cpu: llama.systemInfo.replace(/^CPU :/, '').split('|').map((s) => s.trim()).filter((s) => s.endsWith('= 1')).map((s) => s.split(' ')[0]).join(' '),
  load_ms: Math.round(loadMs),
  prefill_tokens_per_s: median(runs.map((r) => r.prefill)),
  decode_tokens_per_s: genTokens ? median(runs.map((r) => r.decode)) : 0,
  time_to_first_token_ms: median(runs.map((r) => r.ttft)),
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
}));
await context.dispose();
await model.dispose();
await llama.dispose();
