// The cost of constrained generation (responseFormat) on this backend: decode tokens/s of Qwen2-0.5B
// (random weights, the real tokenizer) without a constraint, with json_object and with a JSON schema,
// greedy and sampled, alternating the three in each round. A constrained step reads the logits to the
// host, masks them with the grammar and draws there, where a free step draws in the backend.
//
//   node bench/constrained.mjs [--format=q4_0] [--rounds=3] [--tokens=64] [--threads=2] [--dir=/tmp]
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
const tokens = Number(args.get('tokens') ?? 64);
const threads = Number(args.get('threads') ?? 2);

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' } },
    address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string' } }, required: ['city', 'zip'] },
  },
  required: ['name', 'age', 'tags', 'address'],
};
const MODES = {
  free: undefined,
  json_object: { type: 'json_object' },
  schema: { type: 'json_schema', schema: SCHEMA },
};
const SAMPLINGS = { greedy: { temperature: 0 }, sampled: { temperature: 0.7, topK: 20, topP: 0.8 } };

const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-constrained-'));
const backend = await wasmBackend({ threads });
try {
  writeRandomCheckpoint(dir, 'Qwen2-0.5B');
  const model = await Qwen2.load(dir, { backend, dtype: format, maxContext: 1024 });
  console.log(`Qwen2-0.5B shapes, random weights, ${format}, ${backend.info.name} ${threads} threads; ${tokens} new tokens after a 16-token prompt, ${rounds} rounds`);
  const prompt = 'Write a JSON record of a person with a name and an address:';
  const speeds = new Map();
  const lengths = new Map();
  for (let r = 0; r < rounds; r++) {
    for (const [sName, sampling] of Object.entries(SAMPLINGS)) {
      for (const [mName, responseFormat] of Object.entries(MODES)) {
        // Unconstrained runs go the full length; a document may end before it (then fewer steps are timed).
        const result = await model.generate(prompt, { ...sampling, seed: r + 7, maxNewTokens: tokens, ignoreEos: !responseFormat, ...(responseFormat ? { responseFormat } : {}) });
        const key = `${sName} ${mName}`;
        // A document that ended within a few tokens times too few steps to count.
        if (result.ids.length >= 8) speeds.set(key, [...(speeds.get(key) ?? []), result.decodeTokensPerSecond]);
        lengths.set(key, [...(lengths.get(key) ?? []), result.ids.length]);
      }
    }
  }
  console.log('sampling  format        decode tok/s (median, range)   vs free   tokens generated');
  for (const sName of Object.keys(SAMPLINGS)) {
    const free = median(speeds.get(`${sName} free`));
    for (const mName of Object.keys(MODES)) {
      const s = speeds.get(`${sName} ${mName}`);
      if (!s) {
        console.log(`${sName.padEnd(9)} ${mName.padEnd(13)}   (every document ended within 8 tokens)`.padEnd(58) + lengths.get(`${sName} ${mName}`).join(', '));
        continue;
      }
      console.log(`${sName.padEnd(9)} ${mName.padEnd(13)} ${median(s).toFixed(1).padStart(6)} (${Math.min(...s).toFixed(1)}-${Math.max(...s).toFixed(1)})`.padEnd(48)
        + `${(median(s) / free).toFixed(2).padStart(6)}    ${lengths.get(`${sName} ${mName}`).join(', ')}`);
    }
  }
  await model.dispose();
} finally {
  await backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
