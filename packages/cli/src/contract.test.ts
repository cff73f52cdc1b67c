/**
 * The contract commands (`logits`, `generate --json`, `bench --json`) on the fixture checkpoints,
 * against goldens from an independent float64 implementation of Hugging Face's Qwen2.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli, MODELS, modelWithTokenizer } from './test/helpers.js';

interface Sequence { input_ids: number[]; last_logits?: number[]; greedy_new_tokens: number[]; last_argmax: number }
interface Golden { sequences: Sequence[]; all_positions: { input_ids: number[]; logits?: number[][] } }

const golden = (model: string) => JSON.parse(readFileSync(join(MODELS, model, 'golden.json'), 'utf8')) as Golden;

/** Reads the full float32 logits of the full-vocabulary fixture (they are too big for golden.json). */
function fullVocabLogits(): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(join(MODELS, 'full-vocab-bf16', 'golden_logits.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const raw = bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    out.set(name, { shape: t.shape, data: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) });
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function runJson(args: string[]): unknown {
  const r = cli(args);
  expect(r.stderr, args.join(' ')).not.toMatch(/^qwen2: (?!using the|note)/m);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const TINY = ['tiny-f32', 'tiny-bf16-untied', 'tiny-f16-sharded'];
// tiny-bf16-untied: 3 layers, 2 kv heads of 16 dims, keys and values in f32; a context of 4096 tokens
// (core's default cap on its max_position_embeddings of 32768).
const KV_BYTES_PER_TOKEN_F32 = 3 * 2 * 2 * 16 * 4;
const TINY_BF16_CONTEXT = 4096;

describe('qwen2 logits (built CLI, reference backend)', () => {
  for (const model of TINY) {
    it(`${model}: last-position logits of every golden sequence within 1e-3`, () => {
      for (const seq of golden(model).sequences) {
        const out = runJson(['logits', '--model', join(MODELS, model), '--backend', 'js', '--ids', seq.input_ids.join(',')]) as { ids: number[]; logits: number[] };
        expect(out.ids).toEqual(seq.input_ids);
        expect(maxAbsDiff(out.logits, seq.last_logits!)).toBeLessThan(1e-3);
      }
    });
    it(`${model}: --all-positions gives one row per position within 1e-3`, () => {
      const ap = golden(model).all_positions;
      const out = runJson(['logits', '--model', join(MODELS, model), '--backend', 'js', '--ids', ap.input_ids.join(','), '--all-positions']) as { logits: number[][] };
      expect(out.logits).toHaveLength(ap.input_ids.length);
      out.logits.forEach((row, t) => expect(maxAbsDiff(row, ap.logits![t]!), `position ${t}`).toBeLessThan(1e-3));
    });
  }

  it('full-vocab-bf16: 151,936 logits per position within 1e-3 (last and all positions)', () => {
    const g = golden('full-vocab-bf16');
    const full = fullVocabLogits();
    const seq = g.sequences[1]!;
    const last = runJson(['logits', '--model', join(MODELS, 'full-vocab-bf16'), '--backend', 'js', '--ids', seq.input_ids.join(',')]) as { logits: number[] };
    expect(last.logits).toHaveLength(151936);
    expect(maxAbsDiff(last.logits, full.get('seq1.last_logits')!.data)).toBeLessThan(1e-3);
    const ap = runJson(['logits', '--model', join(MODELS, 'full-vocab-bf16'), '--backend', 'js', '--ids', g.all_positions.input_ids.join(','), '--all-positions']) as { logits: number[][] };
    const rows = full.get('all_positions.logits')!;
    expect(ap.logits).toHaveLength(rows.shape[0]!);
    ap.logits.forEach((row, t) => expect(maxAbsDiff(row, rows.data.subarray(t * 151936, (t + 1) * 151936))).toBeLessThan(1e-3));
  });

  it('the default backend (the fastest available here) matches the goldens too', () => {
    const seq = golden('tiny-f32').sequences[2]!;
    const r = cli(['logits', '--model', join(MODELS, 'tiny-f32'), '--ids', seq.input_ids.join(',')]);
    expect(r.status, r.stderr).toBe(0);
    expect(maxAbsDiff((JSON.parse(r.stdout) as { logits: number[] }).logits, seq.last_logits!)).toBeLessThan(1e-3);
    const full = golden('full-vocab-bf16').sequences[2]!;
    const g = cli(['generate', '--model', join(MODELS, 'full-vocab-bf16'), '--ids', full.input_ids.join(','), '--temperature', '0', '--ignore-eos', '--max-new-tokens', '16', '--json']);
    expect(g.status, g.stderr).toBe(0);
    expect((JSON.parse(g.stdout) as { ids: number[] }).ids).toEqual(full.greedy_new_tokens);
  });

  // The WebGPU path through Dawn, on the CPU Vulkan driver the test setup unpacks (when it did).
  const lavapipe = fileURLToPath(new URL('../../backend-webgpu/.vendor/lavapipe/lvp_icd.json', import.meta.url));
  it.runIf(existsSync(lavapipe))('--backend webgpu (lavapipe) matches the goldens and greedy tokens', () => {
    const seq = golden('tiny-bf16-untied').sequences[2]!;
    const env = { VK_ICD_FILENAMES: lavapipe };
    const r = cli(['logits', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'webgpu', '--ids', seq.input_ids.join(',')], { env });
    expect(r.status, r.stderr).toBe(0);
    expect(maxAbsDiff((JSON.parse(r.stdout) as { logits: number[] }).logits, seq.last_logits!)).toBeLessThan(1e-3);
    const g = cli(['generate', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'webgpu', '--ids', seq.input_ids.join(','), '--temperature', '0', '--ignore-eos', '--max-new-tokens', '16', '--json'], { env });
    expect(g.status, g.stderr).toBe(0);
    expect((JSON.parse(g.stdout) as { ids: number[] }).ids).toEqual(seq.greedy_new_tokens);
  });

  it('rejects a token id outside the vocabulary in one line', () => {
    const r = cli(['logits', '--model', join(MODELS, 'tiny-f32'), '--backend', 'js', '--ids', '1,512']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^qwen2: token id 512 is outside the model's vocabulary \(size 512\)/)]);
  });
});

describe('qwen2 generate --json (built CLI, reference backend)', () => {
  for (const model of [...TINY, 'full-vocab-bf16']) {
    it(`${model}: greedy with --ignore-eos reproduces the golden 16 tokens`, () => {
      for (const seq of golden(model).sequences.slice(0, 3)) {
        const out = runJson([
          'generate', '--model', join(MODELS, model), '--backend', 'js', '--ids', seq.input_ids.join(','),
          '--temperature', '0', '--ignore-eos', '--max-new-tokens', '16', '--json',
        ]) as Record<string, unknown>;
        expect(Object.keys(out)).toEqual(['ids', 'text', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_ms']);
        expect(out.ids).toEqual(seq.greedy_new_tokens);
        expect(typeof out.text).toBe('string');
        for (const k of ['prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_ms']) expect(out[k]).toBeGreaterThan(0);
      }
    });
  }
});

describe('qwen2 generate --json --logprobs (built CLI, reference backend)', () => {
  it('adds each new token\'s log-probability and top tokens; the greedy token is the most likely; other fields unchanged', () => {
    const seq = golden('tiny-f32').sequences[0]!;
    const args = ['generate', '--model', join(MODELS, 'tiny-f32'), '--backend', 'js', '--ids', seq.input_ids.join(','), '--temperature', '0', '--ignore-eos', '--max-new-tokens', '4', '--json'];
    const plain = runJson(args) as Record<string, unknown>;
    const withLp = runJson([...args, '--logprobs', '3']) as { ids: number[]; logprobs: { id: number; logprob: number; top: { id: number; logprob: number }[] }[] };
    expect(Object.keys(plain)).toEqual(['ids', 'text', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_ms']);
    expect(withLp.ids).toEqual(plain.ids);
    expect(withLp.logprobs.map((l) => l.id)).toEqual(withLp.ids);
    for (const l of withLp.logprobs) {
      expect(l.top).toHaveLength(3);
      expect(l.top[0]).toEqual({ id: l.id, logprob: l.logprob });
      expect(l.logprob).toBeLessThanOrEqual(0);
    }
    const r = cli([...args.filter((a) => a !== '--json'), '--logprobs', '2']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--logprobs needs --json/);
  });
});

describe('qwen2 generate streaming (built CLI, reference backend)', () => {
  it('a model without tokenizer files streams the new token ids (the golden greedy ones)', () => {
    const seq = golden('tiny-f16-sharded').sequences[1]!;
    const r = cli(['generate', '--model', join(MODELS, 'tiny-f16-sharded'), '--backend', 'js', '--ids', seq.input_ids.join(','), '--temperature', '0', '--ignore-eos', '--max-new-tokens', '16']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split(' ').map(Number)).toEqual(seq.greedy_new_tokens);
  });

  it('streamed text equals the --json text, with the real tokenizer', () => {
    const model = modelWithTokenizer();
    try {
      const args = ['generate', '--model', model.dir, '--backend', 'js', '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '12'];
      const streamed = cli(args);
      const json = cli([...args, '--json']);
      expect(streamed.status, streamed.stderr).toBe(0);
      const parsed = JSON.parse(json.stdout) as { ids: number[]; text: string };
      expect(parsed.ids.length).toBeGreaterThan(0);
      expect(streamed.stdout).toBe(parsed.text.endsWith('\n') ? parsed.text : `${parsed.text}\n`);
    } finally {
      model.cleanup();
    }
  });
});

describe('qwen2 bench --json (built CLI)', () => {
  it('prints every field with sensible values', () => {
    const out = runJson(['bench', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'js', '--prompt-tokens', '16', '--gen-tokens', '8', '--repeats', '3', '--json']) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['backend', 'dtype', 'threads', 'load_ms', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_ms', 'peak_rss_bytes', 'weights_bytes', 'kv_cache', 'kv_cache_bytes', 'parallel', 'aggregate_decode_tokens_per_s']);
    expect(out.backend).toBe('js');
    expect(typeof out.dtype).toBe('string');
    expect(out.threads).toBeGreaterThanOrEqual(1);
    for (const k of ['load_ms', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_ms']) expect(out[k], k).toBeGreaterThan(0);
    expect(out.peak_rss_bytes).toBeGreaterThan(10_000_000);
    // tiny-bf16-untied: 1024 x 128 embedding + lm_head and 3 layers; at least its bf16 bytes are stored.
    expect(out.weights_bytes).toBeGreaterThan(700_000);
    expect(out.kv_cache).toBe('f32');
    expect(out.kv_cache_bytes).toBe(KV_BYTES_PER_TOKEN_F32 * TINY_BF16_CONTEXT);
    expect(out.parallel).toBe(1);
    expect(out.aggregate_decode_tokens_per_s).toBeGreaterThan(0);
  });

  it('--parallel N decodes N generations in one batch: N caches, every sequence\'s tokens counted', () => {
    const out = runJson(['bench', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'wasm', '--threads', '1', '--parallel', '3', '--prompt-tokens', '8', '--gen-tokens', '6', '--repeats', '1', '--json']) as Record<string, unknown>;
    expect(out).toMatchObject({ parallel: 3, kv_cache_bytes: 3 * KV_BYTES_PER_TOKEN_F32 * TINY_BF16_CONTEXT });
    for (const k of ['prefill_tokens_per_s', 'decode_tokens_per_s', 'aggregate_decode_tokens_per_s']) expect(out[k], k).toBeGreaterThan(0);
    const bad = cli(['bench', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'js', '--parallel', '0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--parallel/);
  });

  it('--kv-cache f16 halves the KV cache and keeps the greedy tokens of the goldens', () => {
    const args = ['--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'wasm', '--threads', '1'];
    const half = runJson(['bench', ...args, '--kv-cache', 'f16', '--prompt-tokens', '8', '--gen-tokens', '4', '--repeats', '1', '--json']) as Record<string, unknown>;
    expect(half).toMatchObject({ kv_cache: 'f16', kv_cache_bytes: (KV_BYTES_PER_TOKEN_F32 / 2) * TINY_BF16_CONTEXT });
    const seq = golden('tiny-bf16-untied').sequences[0]!;
    const gen = runJson(['generate', ...args, '--kv-cache', 'f16', '--ids', seq.input_ids.join(','), '--temperature', '0', '--max-new-tokens', String(seq.greedy_new_tokens.length), '--ignore-eos', '--json']) as { ids: number[] };
    expect(gen.ids).toEqual(seq.greedy_new_tokens);
    const bad = cli(['generate', ...args, '--kv-cache', 'bf16', '--prompt', 'x']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--kv-cache/);
  });

  it('reports the backend, thread count and weight format it ran with', () => {
    const out = runJson(['bench', '--model', join(MODELS, 'tiny-f32'), '--backend', 'wasm', '--threads', '1', '--dtype', 'q8_0', '--prompt-tokens', '8', '--gen-tokens', '4', '--repeats', '1', '--json']) as Record<string, unknown>;
    expect(out).toMatchObject({ backend: 'wasm', threads: 1, dtype: 'q8_0' });
    const auto = runJson(['bench', '--model', join(MODELS, 'tiny-bf16-untied'), '--backend', 'js', '--prompt-tokens', '8', '--gen-tokens', '4', '--repeats', '1', '--json']) as Record<string, unknown>;
    expect(auto.dtype).toBe('bf16');
  });
});
