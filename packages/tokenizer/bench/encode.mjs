// Encode throughput of @qwen2-ts/tokenizer (built dist) side by side with Hugging Face's native Rust
// tokenizer (npm tokenizers@0.23.2) and its pure-JS port (@huggingface/tokenizers@0.2.0), on the same
// deterministic ~1 MB multilingual text, in one run; plus tokenizer.json load times and an ids check.
// Usage: pnpm --filter @qwen2-ts/tokenizer bench   (after build)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Qwen2Tokenizer } from '../dist/index.js';
import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import { multilingualText } from './multilingual-text.mjs';

const require = createRequire(import.meta.url);
const { Tokenizer: HfRustTokenizer } = require('tokenizers');

const fixtures = fileURLToPath(new URL('../../../fixtures/', import.meta.url));
const tokenizerPath = `${fixtures}tokenizer/tokenizer.json`;
const configPath = `${fixtures}configs/Qwen2-7B-Instruct/tokenizer_config.json`;
const REPS = Number(process.env.BENCH_REPS ?? 5);

const text = multilingualText(1_000_000);
const megabytes = new TextEncoder().encode(text).length / 1e6;
const tokenizerJson = readFileSync(tokenizerPath, 'utf8');
const configJson = readFileSync(configPath, 'utf8');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

/** Times `load` and `encode` REPS times on fresh instances (cold word caches), then once more warm. */
async function measure(name, load, encode) {
  const loads = [];
  const cold = [];
  let ids;
  let instance;
  for (let r = 0; r < REPS; r++) {
    let t = now();
    instance = await load();
    loads.push(now() - t);
    t = now();
    ids = await encode(instance);
    cold.push(now() - t);
  }
  const t = now();
  await encode(instance);
  const warm = now() - t;
  return { name, loadMs: median(loads), coldMs: median(cold), warmMs: warm, ids };
}

// Paragraphs keep their trailing "\n\n", so encoding them one by one gives the same ids as the whole text.
const paragraphs = text.split(/(?<=\n\n)/);

const modes = [
  {
    mode: `whole text in one call`,
    ours: (tok) => tok.encode(text),
    rust: async (tok) => (await tok.encode(text)).getIds(),
    js: (tok) => tok.encode(text).ids,
  },
  {
    mode: `${paragraphs.length} paragraphs, one call each`,
    ours: (tok) => paragraphs.flatMap((p) => tok.encode(p)),
    rust: async (tok) => {
      const ids = [];
      for (const p of paragraphs) ids.push(...(await tok.encode(p)).getIds());
      return ids;
    },
    js: (tok) => paragraphs.flatMap((p) => tok.encode(p).ids),
  },
];

for (const m of modes) {
  const results = [];
  results.push(await measure('@qwen2-ts/tokenizer', () => Qwen2Tokenizer.fromFiles({ tokenizerJson, tokenizerConfigJson: configJson }), m.ours));
  results.push(await measure('tokenizers@0.23.2 (native Rust)', () => HfRustTokenizer.fromString(tokenizerJson), m.rust));
  results.push(await measure('@huggingface/tokenizers@0.2.0 (pure JS)', () => new HfJsTokenizer(JSON.parse(tokenizerJson), JSON.parse(configJson)), m.js));
  report(m.mode, results);
}
if (process.env.BENCH_BATCH !== '0') {
  // The Rust binding can also spread a batch over its thread pool (all cores): shown for reference.
  const tok = HfRustTokenizer.fromString(tokenizerJson);
  await tok.encodeBatch(paragraphs);
  const t = now();
  await tok.encodeBatch(paragraphs);
  const ms = now() - t;
  console.log(`tokenizers@0.23.2 encodeBatch(paragraphs), multi-threaded, warm: ${(megabytes / (ms / 1000)).toFixed(2)} MB/s`);
}

function report(mode, results) {
  const ours = results[0];
  const reference = results[1].ids;
  console.log(`\n== ${mode}: ${megabytes.toFixed(3)} MB UTF-8, ${reference.length} tokens; median of ${REPS} fresh instances`);
  console.log('implementation                             load ms   MB/s (cold cache)   MB/s (warm)   ours vs this (cold)   ids == Rust');
  for (const r of results) {
    const same = r.ids.length === reference.length && r.ids.every((id, i) => id === reference[i]);
    console.log(
      `${r.name.padEnd(42)} ${r.loadMs.toFixed(0).padStart(7)}   ${(megabytes / (r.coldMs / 1000)).toFixed(2).padStart(17)}   ${(megabytes / (r.warmMs / 1000)).toFixed(2).padStart(11)}   ${(r.coldMs / ours.coldMs).toFixed(2).padStart(18)}x   ${same ? 'yes' : 'NO'}`,
    );
  }
}
console.log('\nload = tokenizer.json text (already read) -> ready tokenizer (ours and the JS port include JSON.parse).');
