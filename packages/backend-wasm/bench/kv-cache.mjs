// The KV cache stored as f16 against f32 (Qwen2.load's kvCacheDtype): memory, decode speed at long
// contexts (each generated token reads the whole cache once per layer) and prefill speed there (the
// attention of every prompt token reads the cache before it, so widening halves costs most there).
//
// Qwen2-0.5B (random weights, q4_0 by default) with one model per cache dtype on the same backend. For
// each context length the prompt grows to it (the tokens since the previous length are prefilled: that
// is the prefill figure), then one-token passes at that length are timed, alternating the two dtypes
// in each round. Prints medians and the ratio f32 / f16 (above 1: f16 faster).
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
const REPEATS = 4;
const DTYPES = ['f32', 'f16'];
const longest = Math.max(...contexts);
const PROMPT = Array.from({ length: longest }, (_, i) => 100 + ((i * 7919) % 150000));

/** Median ms of REPEATS one-token passes after the first `n` prompt tokens (their cache reused each time). */
async function decodeMs(model, n, round) {
  const times = [];
  for (let i = 0; i < REPEATS; i++) {
    const ids = [...PROMPT.slice(0, n), 500 + 37 * round + i];
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
    models[kvCacheDtype] = await Qwen2.load(dir, { backend, dtype: format, maxContext: longest + 8, kvCacheDtype });
    mib[kvCacheDtype] = (backend.memory().kvCache - before) / 2 ** 20;
  }
  console.log(`Qwen2-0.5B shapes, ${format} weights, random; ${backend.info.device}; KV cache of ${longest + 8} tokens: ` +
    DTYPES.map((d) => `${d} ${mib[d].toFixed(0)} MiB`).join(', '));
  console.log('\ncontext   decode ms/token f32   f16   f32/f16   |   prefill of the tokens before it, tok/s f32   f16   f16/f32');
  let done = 0;
  for (const n of contexts) {
    const prefill = {};
    for (const d of DTYPES) {
      const t0 = performance.now();
      await models[d].logits(PROMPT.slice(0, n));
      prefill[d] = (n - done) / ((performance.now() - t0) / 1000);
    }
    done = n;
    const ms = { f32: [], f16: [] };
    for (let r = 0; r < rounds; r++) {
      for (const d of r % 2 ? [...DTYPES].reverse() : DTYPES) ms[d].push(await decodeMs(models[d], n, r));
    }
    const [a, b] = [median(ms.f32), median(ms.f16)];
    console.log(`${String(n).padStart(7)}   ${a.toFixed(1).padStart(19)} ${b.toFixed(1).padStart(5)} ${(a / b).toFixed(2).padStart(9)}   |   ${prefill.f32.toFixed(1).padStart(45)} ${prefill.f16.toFixed(1).padStart(5)} ${(prefill.f16 / prefill.f32).toFixed(2).padStart(9)}`);
  }
  for (const model of Object.values(models)) await model.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
