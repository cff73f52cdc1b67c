// Qwen2-7B end to end from a checkpoint file: writes a random-weight bf16 safetensors checkpoint at
// Qwen2-7B's real shapes (~15 GB, into a temp dir, removed afterwards), loads it through
// `Qwen2.load` (loader -> core's slice-wise quantization -> this backend's memories) at q4_0 or q8_0,
// decodes a few tokens and prints peak RSS against the bytes the backend keeps.
//
//   node bench/checkpoint-7b.mjs --format=q4_0 [--dir=/path/with/16GB/free] [--tokens=4] [--read-ahead=BYTES]
//
// The checkpoint comes from random-checkpoint.mjs (random bf16 at Qwen2-7B's shapes, real config).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const format = args.get('format') ?? 'q4_0';
const tokens = Number(args.get('tokens') ?? 4);
const readAheadBytes = args.has('read-ahead') ? Number(args.get('read-ahead')) : undefined; // Qwen2.load's default when absent
const gib = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-7b-'));
try {
  // ---- write the checkpoint ----
  const t0 = performance.now();
  const { bytes } = writeRandomCheckpoint(dir, 'Qwen2-7B');
  console.log(`wrote ${gib(bytes)} checkpoint in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- load and decode ----
  const rssBefore = process.memoryUsage().rss;
  const backend = await wasmBackend({ threads: 2 });
  const t1 = performance.now();
  const model = await Qwen2.load(dir, { backend, dtype: format, maxContext: 256, readAheadBytes });
  const loadS = (performance.now() - t1) / 1000;
  const mem = backend.memory();
  const t2 = performance.now();
  const result = await model.generate([9707, 11, 1879], { maxNewTokens: tokens, temperature: 0, ignoreEos: true });
  const genS = (performance.now() - t2) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  const kept = mem.weights + mem.kvCache + mem.activations;
  console.log(JSON.stringify({
    format, threads: backend.info.threads, read_ahead_bytes: readAheadBytes ?? 'default', load_s: +loadS.toFixed(1), new_tokens: result.ids.length,
    decode_tokens_per_s: +result.decodeTokensPerSecond.toFixed(2), generate_s: +genS.toFixed(1),
    weights_bytes: mem.weights, kv_bytes: mem.kvCache, activation_bytes: mem.activations,
    rss_before_load_bytes: rssBefore, peak_rss_bytes: peak, peak_rss_over_backend_bytes: +(peak / kept).toFixed(3),
  }));
  await model.dispose();
  await backend.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
