// Qwen2-7B end to end from a checkpoint file: writes a random-weight bf16 safetensors checkpoint at
// Qwen2-7B's real shapes (~15 GB, into a temp dir, removed afterwards), loads it through
// `Qwen2.load` (loader -> core's slice-wise quantization -> this backend's memories) at q4_0 or q8_0,
// decodes a few tokens and prints peak RSS against the bytes the backend keeps.
//
//   node bench/checkpoint-7b.mjs --format=q4_0 [--dir=/path/with/16GB/free] [--tokens=4]
//
// Values come from a 64 MiB pool of random bf16 (|x| < 0.05) written at random offsets: writing
// 15 GB of fresh random numbers would measure the generator, not the loader.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Qwen2 } from '@qwen2-ts/core';
import { parseQwen2Config, qwen2CheckpointLayout, safetensorsHeaderFor } from '@qwen2-ts/loader';
import { wasmBackend } from '../dist/index.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const format = args.get('format') ?? 'q4_0';
const tokens = Number(args.get('tokens') ?? 4);
const fixtures = new URL('../../../fixtures/', import.meta.url);
const configText = readFileSync(new URL('configs/Qwen2-7B/config.json', fixtures), 'utf8');
const config = parseQwen2Config(JSON.parse(configText));
const gib = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-7b-'));
try {
  // ---- write the checkpoint ----
  const t0 = performance.now();
  const layout = qwen2CheckpointLayout(config);
  const { header, dataBytes } = safetensorsHeaderFor(Object.fromEntries(layout.map((t) => [t.name, { dtype: 'BF16', shape: t.shape }])));
  const pool = new Uint16Array(32 << 20);
  let seed = 12345;
  for (let i = 0; i < pool.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const x = ((seed >>> 8) / 2 ** 24 - 0.5) * 0.1;
    pool[i] = new Uint32Array(new Float32Array([x]).buffer)[0] >>> 16;
  }
  const poolBytes = new Uint8Array(pool.buffer);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  writeSync(fd, header);
  for (let done = 0; done < dataBytes;) {
    const start = ((Math.random() * (poolBytes.length / 2 - 1)) | 0) * 2;
    const n = Math.min(dataBytes - done, poolBytes.length - start);
    done += writeSync(fd, poolBytes, start, n);
  }
  closeSync(fd);
  writeFileSync(join(dir, 'config.json'), configText);
  writeFileSync(join(dir, 'generation_config.json'), readFileSync(new URL('configs/Qwen2-7B/generation_config.json', fixtures)));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(new URL('tokenizer/tokenizer.json', fixtures)));
  console.log(`wrote ${gib(header.byteLength + dataBytes)} checkpoint in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- load and decode ----
  const rssBefore = process.memoryUsage().rss;
  const backend = await wasmBackend({ threads: 2 });
  const t1 = performance.now();
  const model = await Qwen2.load(dir, { backend, dtype: format, maxContext: 256 });
  const loadS = (performance.now() - t1) / 1000;
  const mem = backend.memory();
  const t2 = performance.now();
  const result = await model.generate([9707, 11, 1879], { maxNewTokens: tokens, temperature: 0, ignoreEos: true });
  const genS = (performance.now() - t2) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  const kept = mem.weights + mem.kvCache + mem.activations;
  console.log(JSON.stringify({
    format, threads: backend.info.threads, load_s: +loadS.toFixed(1), new_tokens: result.ids.length,
    decode_tokens_per_s: +result.decodeTokensPerSecond.toFixed(2), generate_s: +genS.toFixed(1),
    weights_bytes: mem.weights, kv_bytes: mem.kvCache, activation_bytes: mem.activations,
    rss_before_load_bytes: rssBefore, peak_rss_bytes: peak, peak_rss_over_backend_bytes: +(peak / kept).toFixed(3),
  }));
  await model.dispose();
  await backend.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
