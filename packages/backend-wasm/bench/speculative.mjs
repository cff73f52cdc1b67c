// Speculative decoding on this backend: decode tokens/s of Qwen2-0.5B (random weights, the real
// tokenizer) plain, with speculation whose number of guesses adapts (the default), and with a fixed 4
// guesses per step, alternating the three in each round. Cases:
//   loop     greedy; random weights' greedy output falls into a loop of one token, which is what text
//            repeating its input looks like to prompt lookup: every guess right
//   sampled  T 0.7, top-k 20, top-p 0.8 with prompt lookup: the output does not repeat, guesses are
//            mostly wrong, so this is what speculation costs where it cannot help
//   twin     greedy with a draft model that is the same checkpoint: every guess right, but the draft costs
//            as much as the model, so no number of guesses pays (the adaptive schedule should see it)
// Prints the median tokens/s, the ratio to plain decoding, and guesses accepted / proposed.
//
//   node bench/speculative.mjs [--format=q4_0] [--rounds=3] [--tokens=96] [--threads=2] [--dir=/tmp]
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
const format = args.get('format') ?? 'q4_0';
const rounds = Number(args.get('rounds') ?? 3);
const tokens = Number(args.get('tokens') ?? 96);
const threads = Number(args.get('threads') ?? 2);
const PROMPT = 'Repeat after me: the quick brown fox jumps over the lazy dog. The quick brown fox';

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-speculative-'));
const backend = await wasmBackend({ threads });
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  const model = await Qwen2.load(dir, { backend, dtype: format, maxContext: 1024 });
  const twin = await Qwen2.load(dir, { backend, dtype: format, maxContext: 1024 });
  const CASES = {
    loop: { sampling: { temperature: 0 }, draft: 'prompt-lookup' },
    sampled: { sampling: { temperature: 0.7, topK: 20, topP: 0.8 }, draft: 'prompt-lookup' },
    twin: { sampling: { temperature: 0 }, draft: twin },
  };
  const MODES = { plain: undefined, adaptive: {}, 'fixed 4': { adapt: false, maxTokens: 4 } };
  console.log(`Qwen2-0.5B shapes, random weights, ${format}, ${backend.info.device}; ${tokens} new tokens, ${rounds} rounds`);
  const speeds = new Map();
  const guesses = new Map();
  for (let r = 0; r < rounds; r++) {
    for (const [cName, c] of Object.entries(CASES)) {
      const modes = Object.entries(MODES);
      for (const [mName, mode] of r % 2 ? modes.reverse() : modes) {
        const speculative = mode && { draft: c.draft, ...mode };
        const result = await model.generate(PROMPT, { ...c.sampling, seed: r + 1, maxNewTokens: tokens, ignoreEos: true, ...(speculative ? { speculative } : {}) });
        const key = `${cName} ${mName}`;
        speeds.set(key, [...(speeds.get(key) ?? []), result.decodeTokensPerSecond]);
        if (result.speculative) guesses.set(key, [...(guesses.get(key) ?? []), result.speculative]);
      }
    }
  }
  console.log('case      mode        decode tok/s (median, range)   vs plain   guesses accepted / proposed (checks), per round');
  for (const cName of Object.keys(CASES)) {
    const plain = median(speeds.get(`${cName} plain`));
    for (const mName of Object.keys(MODES)) {
      const key = `${cName} ${mName}`;
      const s = speeds.get(key);
      const g = (guesses.get(key) ?? []).map((x) => `${x.accepted}/${x.proposed} (${x.checks})`).join(', ');
      console.log(`${cName.padEnd(9)} ${mName.padEnd(10)} ${median(s).toFixed(1).padStart(7)} (${Math.min(...s).toFixed(1)}-${Math.max(...s).toFixed(1)})`.padEnd(50)
        + `${(median(s) / plain).toFixed(2).padStart(6)}     ${g}`);
    }
  }
  await twin.dispose();
  await model.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
