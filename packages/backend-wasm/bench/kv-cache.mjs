// The KV cache stored as f16 against f32 (Qwen2.load's kvCacheDtype): memory, and at each context
// length the time of a one-token pass (decode: it reads the whole cache once per layer) and of a
// CHUNK-token pass (prefill there: each of its tokens attends over the whole history).
//
// Qwen2-0.5B (random weights, q4_0 by default) with one model per cache dtype on the same backend. At
// each context length both caches are filled to it, then rounds of both passes alternate the two
// dtypes (reusing the cached prompt each time). Prints medians and the ratios (above 1: f16 faster).
//
//   node bench/kv-cache.mjs [--contexts=1024,4096,8192] [--format=q4_0] [--rounds=3] [--threads=2] [--dir=/tmp]
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { median } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const contexts = (args.get('contexts') ?? '1024,4096,8192').split(',').map(Number);
const format = args.get('format') ?? 'q4_0';
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);
const REPEATS = 3;
/** Tokens of the prefill pass timed at each context length. */
const CHUNK = 64;
const DTYPES = ['f32', 'f16'];
const longest = Math.max(...contexts);
const PROMPT = Array.from({ length: longest }, (_, i) => 100 + ((i * 7919) % 150000));
const maxContext = longest + CHUNK + 8;

/** Median ms of REPEATS passes of `T` new tokens after the first `n` prompt tokens (their cache reused each time). */
async function passMs(model, n, T, round) {
  const times = [];
  for (let i = 0; i < REPEATS; i++) {
    const ids = [...PROMPT.slice(0, n), ...Array.from({ length: T }, (_, j) => 500 + 37 * round + 11 * i + j)];
    const t0 = performance.now();
    await model.logits(ids);
    times.push(performance.now() - t0);
  }
  return median(times);
}

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-kv-cache-'));
const backend = await wasmBackend({ threads });
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  const models = {};
  const mib = {};
  for (const kvCacheDtype of DTYPES) {
    const before = backend.memory().kvCache;
    models[kvCacheDtype] = await Qwen2.load(dir, { backend, dtype: format, maxContext, kvCacheDtype });
    mib[kvCacheDtype] = (backend.memory().kvCache - before) / 2 ** 20;
  }
  console.log(`Qwen2-0.5B shapes, ${format} weights, random; ${backend.info.device}; KV cache of ${maxContext} tokens: ` +
    DTYPES.map((d) => `${d} ${mib[d].toFixed(0)} MiB`).join(', '));
  console.log(`\ncontext   decode ms/token  f32    f16   f32/f16   |   prefill of ${CHUNK} more tokens, tok/s  f32    f16   f16/f32`);
  for (const n of contexts) {
    for (const d of DTYPES) await models[d].logits(PROMPT.slice(0, n));
    const decode = { f32: [], f16: [] };
    const chunk = { f32: [], f16: [] };
    for (let r = 0; r < rounds; r++) {
      for (const d of r % 2 ? [...DTYPES].reverse() : DTYPES) {
        decode[d].push(await passMs(models[d], n, 1, r));
        chunk[d].push(await passMs(models[d], n, CHUNK, r));
      }
    }
    const [a, b] = [median(decode.f32), median(decode.f16)];
    const [pa, pb] = [CHUNK / (median(chunk.f32) / 1000), CHUNK / (median(chunk.f16) / 1000)];
    console.log(`${String(n).padStart(7)}   ${a.toFixed(1).padStart(20)} ${b.toFixed(1).padStart(6)} ${(a / b).toFixed(2).padStart(9)}   |   ${pa.toFixed(1).padStart(38)} ${pb.toFixed(1).padStart(6)} ${(pb / pa).toFixed(2).padStart(9)}`);
  }
  for (const model of Object.values(models)) await model.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
