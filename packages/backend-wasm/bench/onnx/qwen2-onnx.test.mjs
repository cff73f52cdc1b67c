// The ONNX writer is checked by onnxruntime itself: a fixture checkpoint written as an f32 ONNX model
// must reproduce the fixture's golden logits and greedy continuations (float64 reference) when
// onnxruntime-web runs it, the 4-bit model the continuations of core's reference backend holding the
// same q4_0 weights, and the int8 model stay near the f32 one. If a weight's orientation, the RoPE
// caches, the GroupQueryAttention inputs or the cache handling were wrong, the comparison against
// onnxruntime would run another model than ours.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Qwen2, ReferenceBackend } from '@qwen2-ts/core';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { qwen2Onnx } from './qwen2-onnx.mjs';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const model = join(fixtures, 'models/full-vocab-bf16');
const golden = JSON.parse(readFileSync(join(model, 'golden.json'), 'utf8'));
const tokenizerJson = readFileSync(join(fixtures, 'tokenizer/tokenizer.json'), 'utf8');
ort.env.wasm.numThreads = 1;

/** onnxruntime's last logits of each prompt and its greedy continuation (`steps` ids), cache carried between steps. */
async function run(bits, sequences, externalFile) {
  const { bytes, externalData, layers, kvHeads, headDim } = await qwen2Onnx(model, { maxPositions: 128, bits, externalFile });
  const data = Buffer.concat(externalData);
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', ...(externalFile ? { externalData: [{ path: externalFile, data }] } : {}) });
  const out = [];
  try {
    for (const s of sequences) {
      let past = Array.from({ length: 2 * layers }, () => new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]));
      let ids = s.input_ids, total = 0, first;
      const tokens = [];
      while (tokens.length < s.greedy_new_tokens.length) {
        total += ids.length;
        const feeds = {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
          seqlens_k: new ort.Tensor('int32', Int32Array.from([total - 1]), [1]),
          total_sequence_length: new ort.Tensor('int32', Int32Array.from([total]), []),
        };
        for (let i = 0; i < layers; i++) Object.assign(feeds, { [`past_key.${i}`]: past[2 * i], [`past_value.${i}`]: past[2 * i + 1] });
        const r = await session.run(feeds);
        const logits = r.logits.data;
        first ??= Float32Array.from(logits);
        let next = 0;
        for (let j = 1; j < logits.length; j++) if (logits[j] > logits[next]) next = j;
        tokens.push(next);
        past = Array.from({ length: 2 * layers }, (_, j) => r[`${j % 2 ? 'present_value' : 'present_key'}.${j >> 1}`]);
        ids = [next];
      }
      out.push({ logits: first, tokens });
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Largest difference from the golden top-20 logits (the goldens keep those of the full vocabulary). */
const topDiff = (logits, s) => s.last_top20.ids.reduce((m, id, i) => Math.max(m, Math.abs(logits[id] - s.last_top20.values[i])), 0);

describe('qwen2Onnx', () => {
  it('onnxruntime reproduces the golden logits and greedy tokens of full-vocab-bf16 written as f32 (large weights in external data)', async () => {
    const got = await run(32, golden.sequences, 'weights.data');
    for (const [i, s] of golden.sequences.entries()) {
      expect(topDiff(got[i].logits, s), `sequence ${i}`).toBeLessThan(1e-4);
      expect(got[i].tokens, `sequence ${i}`).toEqual(s.greedy_new_tokens);
    }
  }, 120_000);

  it('onnxruntime continues like core\'s reference backend on the same q4_0 weights (MatMulNBits)', async () => {
    const got = await run(4, golden.sequences);
    const ours = await Qwen2.load(model, { backend: new ReferenceBackend(), dtype: 'q4_0', tokenizer: { tokenizerJson } });
    try {
      for (const [i, s] of golden.sequences.entries()) {
        const want = await ours.generate(s.input_ids, { maxNewTokens: s.greedy_new_tokens.length, temperature: 0, ignoreEos: true });
        expect(got[i].tokens, `sequence ${i}`).toEqual(want.ids);
      }
    } finally {
      await ours.dispose();
    }
  }, 120_000);

  it('the int8 model (MatMulInteger, per-channel scales) stays near the golden logits', async () => {
    const got = await run(8, golden.sequences.slice(0, 2));
    for (const [i, s] of golden.sequences.slice(0, 2).entries()) {
      const scale = Math.max(...s.last_top20.values.map(Math.abs));
      expect(topDiff(got[i].logits, s) / scale, `sequence ${i}`).toBeLessThan(0.05);
    }
  }, 120_000);
});
