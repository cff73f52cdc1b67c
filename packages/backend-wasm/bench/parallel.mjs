// Continuous batching (Qwen2.load's `parallel`) against one generation at a time: N users each asking
// for GEN tokens after their own PROMPT-token prompt, served by a model that decodes them together (one
// pass per step for all of them) and by a model with one sequence that serves them in turn.
//
// Qwen2-0.5B (random weights, q4_0 by default) on one WASM backend, both models loaded on it. For each
// N, rounds alternate the two; each round times the whole job (prompts included) and prints the
// aggregate tokens/s (N x GEN / wall time), the median over rounds and the ratio (above 1: batching faster).
// Greedy, so both must produce the same tokens, which is checked.
//
//   node bench/parallel.mjs [--users=1,2,4,8] [--format=q4_0] [--gen=32] [--prompt=32] [--rounds=3] [--threads=2] [--dir=/tmp]
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
const users = (args.get('users') ?? '1,2,4,8').split(',').map(Number);
const format = args.get('format') ?? 'q4_0';
const GEN = Number(args.get('gen') ?? 32);
const PROMPT = Number(args.get('prompt') ?? 32);
const rounds = Number(args.get('rounds') ?? 3);
const threads = Number(args.get('threads') ?? 2);
const widest = Math.max(...users);

/** User u's prompt in round r: distinct, so no cached prefix is reused across users or rounds. */
const prompt = (u, r) => Array.from({ length: PROMPT }, (_, i) => 1000 + ((u * 7919 + r * 104729 + i * 31) % 140000));
const options = { temperature: 0, maxNewTokens: GEN, ignoreEos: true };

/** Serves n users, all at once on `batched` or one after another on `serial`; returns ms and the tokens. */
async function serve(model, n, r, together) {
  const t0 = performance.now();
  let results;
  if (together) results = await Promise.all(Array.from({ length: n }, (_, u) => model.generate(prompt(u, r), options)));
  else {
    results = [];
    for (let u = 0; u < n; u++) results.push(await model.generate(prompt(u, r), options));
  }
  return { ms: performance.now() - t0, ids: results.map((x) => x.ids) };
}

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-parallel-'));
const backend = await wasmBackend({ threads });
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  const maxContext = PROMPT + GEN + 8;
  const batched = await Qwen2.load(dir, { backend, dtype: format, maxContext, parallel: widest });
  const serial = await Qwen2.load(dir, { backend, dtype: format, maxContext });
  console.log(`Qwen2-0.5B shapes, ${format} weights, random; ${backend.info.device}; each user: ${PROMPT}-token prompt, ${GEN} tokens (greedy)`);
  // Warm both (kernels compiled, scratch grown to the widest batch).
  await serve(batched, widest, rounds, true);
  await serve(serial, 1, rounds, false);
  console.log('\nusers   one at a time, tok/s   batched, tok/s   batched/one at a time');
  for (const n of users) {
    const rate = { serial: [], batched: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? ['batched', 'serial'] : ['serial', 'batched'];
      const ids = {};
      for (const which of order) {
        const out = await serve(which === 'batched' ? batched : serial, n, r, which === 'batched');
        rate[which].push((n * GEN) / (out.ms / 1000));
        ids[which] = out.ids;
      }
      if (JSON.stringify(ids.batched) !== JSON.stringify(ids.serial)) console.log(`  round ${r}: the batched tokens differ from one at a time (near-tied logits?)`);
    }
    const [a, b] = [median(rate.serial), median(rate.batched)];
    console.log(`${String(n).padStart(5)}   ${a.toFixed(1).padStart(20)}   ${b.toFixed(1).padStart(14)}   ${(b / a).toFixed(2).padStart(21)}`);
  }
  await batched.dispose();
  await serial.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
