/** `qwen2 bench`: load time, prefill and decode speed, peak memory (a contract command). */
import type { GenerationResult, GenerationStream } from '@qwen2-ts/core';
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
  /** Bytes of the KV caches (preallocated for the whole context, one per sequence). */
  kv_cache_bytes: number;
  /** Sequences generated at once (`--parallel`): each run decodes that many in one batch. */
  parallel: number;
  /**
   * Tokens per second of all the sequences together while every one of them decodes (from the last
   * sequence's first token to the end of the run); with `parallel` 1, the one sequence's decode speed.
   */
  aggregate_decode_tokens_per_s: number;
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'prefill / decode speed and memory as JSON',
  usage: 'qwen2 bench --model DIR --prompt-tokens P --gen-tokens G [--repeats N] [--parallel N] [--json]',
  description:
    'Loads the model, then runs a P-token prefill and G greedy decode steps (EOS ignored, no repetition\n' +
    'penalty) --repeats times after --warmup runs, and prints the medians: {"backend","dtype","threads",\n' +
    '"load_ms","prefill_tokens_per_s","decode_tokens_per_s","time_to_first_token_ms","peak_rss_bytes","weights_bytes",\n' +
    '"kv_cache","kv_cache_bytes","parallel","aggregate_decode_tokens_per_s"}. With --parallel N each run is N\n' +
    'generations of different prompts at once, decoded in one batch: the per-generation fields are medians\n' +
    'over all of them, and aggregate_decode_tokens_per_s counts every sequence\'s tokens while all decode.',
  flags: {
    ...MODEL_FLAGS,
    'prompt-tokens': { type: 'string', value: 'P', help: 'prompt length in tokens (default 128)' },
    'gen-tokens': { type: 'string', value: 'G', help: 'decode steps (default 32)' },
    repeats: { type: 'string', value: 'N', help: 'measured runs; medians are reported (default 3)' },
    warmup: { type: 'string', value: 'N', help: 'unmeasured runs first (default 1)' },
    parallel: { type: 'string', value: 'N', help: 'generations at once, decoded in one batch (default 1)' },
    json: { type: 'boolean', help: 'print one JSON object' },
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const promptTokens = args.int('prompt-tokens', 128, 1);
    const genTokens = args.int('gen-tokens', 32, 0);
    const repeats = args.int('repeats', 3, 1, 1000);
    const warmup = args.int('warmup', 1, 0, 100);
    const parallel = args.int('parallel', 1, 1, 256);
    const json = args.flag('json');
    if (parallel > 1) flags.parallel = parallel;

    const loaded = await loadModel(flags, status);
    try {
      const { model } = loaded;
      // G decode steps follow the token the prefill yields: G + 1 new tokens. Plain greedy decoding: no
      // repetition penalty from the model's generation_config (Instruct models set one), so that base and
      // Instruct checkpoints time the same work, and backends that keep the greedy token on the device
      // (core's device tokens) run the way greedy generation runs on them.
      const options = { maxNewTokens: genTokens + 1, temperature: 0, repetitionPenalty: 1, ignoreEos: true };
      const runs: GenerationResult[] = [];
      const aggregate: number[] = [];
      for (let i = 0; i < warmup + repeats; i++) {
        status.draw([{ label: i < warmup ? 'warmup' : 'bench runs', done: i < warmup ? i : i - warmup, total: i < warmup ? warmup : repeats }], true);
        // New prompts each run: core reuses the KV cache of a shared prefix, which would skip the prefill.
        const { results, tokensPerSecond } = await timedGenerations(Array.from({ length: parallel }, (_, u) => {
          return model.generate(benchPromptIds(promptTokens, model.config.vocabSize, i * parallel + u), options);
        }));
        if (i >= warmup) {
          runs.push(...results);
          aggregate.push(tokensPerSecond);
        }
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
        parallel,
        aggregate_decode_tokens_per_s: round4(genTokens === 0 ? 0 : median(aggregate)),
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
          `KV cache       ${formatBytes(report.kv_cache_bytes)} (${report.kv_cache}, ${model.maxContext} tokens${parallel > 1 ? ` x ${parallel} sequences` : ''})\n` +
          (parallel > 1 ? `all sequences  ${report.aggregate_decode_tokens_per_s.toFixed(1)} tokens/s (${parallel} decoding at once)\n` : '') +
          `(medians of ${repeats} runs after ${warmup} warmup)\n`,
        );
      }
    } finally {
      await loaded.dispose();
    }
    return 0;
  },
};

/**
 * Runs generations to the end, all at once, and times their steady state: the tokens every one of them
 * emits after the last one's first token, over the time from then to the end (0 when no token follows).
 */
async function timedGenerations(streams: GenerationStream[]): Promise<{ results: GenerationResult[]; tokensPerSecond: number }> {
  const firsts: number[] = [];
  const times: number[] = [];
  await Promise.all(streams.map(async (stream) => {
    let first = true;
    for await (const chunk of stream) {
      if (chunk.tokenId < 0) continue;
      const now = performance.now();
      if (first) firsts.push(now);
      else times.push(now);
      first = false;
    }
  }));
  const results = await Promise.all(streams.map((s) => s.result));
  if (firsts.length < streams.length) return { results, tokensPerSecond: 0 };
  const from = Math.max(...firsts);
  const after = times.filter((t) => t > from);
  const end = Math.max(from, ...after);
  return { results, tokensPerSecond: end > from ? (after.length / (end - from)) * 1000 : 0 };
}
