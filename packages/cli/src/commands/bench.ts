/** `qwen2 bench`: load time, prefill and decode speed, peak memory (a contract command). */
import type { GenerationResult } from '@qwen2-ts/core';
import { loadModel, MODEL_FLAGS, modelFlags } from '../load-model.js';
import { formatBytes, median, round4 } from '../util/format.js';
import { writeOut } from '../util/output.js';
import type { Command } from './command.js';

/** Token ids for a synthetic prompt: deterministic, spread over the ordinary (non-special) vocabulary. */
export function benchPromptIds(count: number, vocabSize: number, run = 0): number[] {
  const range = Math.max(1, Math.min(vocabSize, 151643));
  let x = (0x2545f491 + run * 0x9e3779b9) >>> 0 || 1;
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    // xorshift32: reproducible across runs and machines.
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    ids.push(x % range);
  }
  return ids;
}

/** The bench report; field names are part of the CLI's contract. */
export interface BenchReport {
  backend: string;
  dtype: string;
  threads: number;
  load_ms: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  time_to_first_token_ms: number;
  peak_rss_bytes: number;
  weights_bytes: number;
  /** How the KV cache stores keys and values (`--kv-cache`). */
  kv_cache: string;
  /** Bytes of the KV cache (preallocated for the whole context). */
  kv_cache_bytes: number;
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'prefill / decode speed and memory as JSON',
  usage: 'qwen2 bench --model DIR --prompt-tokens P --gen-tokens G [--repeats N] [--json]',
  description:
    'Loads the model, then runs a P-token prefill and G greedy decode steps (EOS ignored, no repetition\n' +
    'penalty) --repeats times after --warmup runs, and prints the medians: {"backend","dtype","threads",\n' +
    '"load_ms","prefill_tokens_per_s","decode_tokens_per_s","time_to_first_token_ms","peak_rss_bytes","weights_bytes"}.',
  flags: {
    ...MODEL_FLAGS,
    'prompt-tokens': { type: 'string', value: 'P', help: 'prompt length in tokens (default 128)' },
    'gen-tokens': { type: 'string', value: 'G', help: 'decode steps (default 32)' },
    repeats: { type: 'string', value: 'N', help: 'measured runs; medians are reported (default 3)' },
    warmup: { type: 'string', value: 'N', help: 'unmeasured runs first (default 1)' },
    json: { type: 'boolean', help: 'print one JSON object' },
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const promptTokens = args.int('prompt-tokens', 128, 1);
    const genTokens = args.int('gen-tokens', 32, 0);
    const repeats = args.int('repeats', 3, 1, 1000);
    const warmup = args.int('warmup', 1, 0, 100);
    const json = args.flag('json');

    const loaded = await loadModel(flags, status);
    try {
      const { model } = loaded;
      // G decode steps follow the token the prefill yields: G + 1 new tokens. Plain greedy decoding: no
      // repetition penalty from the model's generation_config (Instruct models set one), so that base and
      // Instruct checkpoints time the same work, and backends that keep the greedy token on the device
      // (core's device tokens) run the way greedy generation runs on them.
      const options = { maxNewTokens: genTokens + 1, temperature: 0, repetitionPenalty: 1, ignoreEos: true };
      const runs: GenerationResult[] = [];
      for (let i = 0; i < warmup + repeats; i++) {
        status.draw([{ label: i < warmup ? 'warmup' : 'bench runs', done: i < warmup ? i : i - warmup, total: i < warmup ? warmup : repeats }], true);
        // A new prompt each run: core reuses the KV cache of a shared prefix, which would skip the prefill.
        const ids = benchPromptIds(promptTokens, model.config.vocabSize, i);
        const stream = model.generate(ids, options);
        for await (const chunk of stream) void chunk;
        const result = await stream.result;
        if (i >= warmup) runs.push(result);
      }
      status.done();
      const info = model.backend.info;
      const report: BenchReport = {
        backend: info.name,
        dtype: loaded.dtype,
        threads: info.threads ?? flags.threads ?? 1,
        load_ms: round4(loaded.loadMs),
        prefill_tokens_per_s: round4(median(runs.map((r) => r.prefillTokensPerSecond))),
        decode_tokens_per_s: round4(genTokens === 0 ? 0 : median(runs.map((r) => r.decodeTokensPerSecond))),
        time_to_first_token_ms: round4(median(runs.map((r) => r.timeToFirstTokenMs))),
        peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
        weights_bytes: model.weightsBytes,
        kv_cache: model.kvCacheDtype,
        kv_cache_bytes: model.kvCacheBytes,
      };
      if (json) {
        await writeOut(`${JSON.stringify(report)}\n`);
      } else {
        await writeOut(
          `backend        ${report.backend} (${info.device})\n` +
          `dtype          ${report.dtype}\nthreads        ${report.threads}\n` +
          `load           ${report.load_ms.toFixed(0)} ms\n` +
          `prefill        ${report.prefill_tokens_per_s.toFixed(1)} tokens/s (${promptTokens} tokens)\n` +
          `decode         ${report.decode_tokens_per_s.toFixed(1)} tokens/s (${genTokens} steps)\n` +
          `first token    ${report.time_to_first_token_ms.toFixed(1)} ms\n` +
          `peak RSS       ${formatBytes(report.peak_rss_bytes)}\nweights        ${formatBytes(report.weights_bytes)}\n` +
          `KV cache       ${formatBytes(report.kv_cache_bytes)} (${report.kv_cache}, ${model.maxContext} tokens)\n` +
          `(medians of ${repeats} runs after ${warmup} warmup)\n`,
        );
      }
    } finally {
      await loaded.dispose();
    }
    return 0;
  },
};
