// The GGUF writer is checked by llama.cpp itself: a fixture checkpoint written as GGUF must reproduce
// the fixture's golden greedy continuations (float64 reference) when llama.cpp runs it, and at q8_0 /
// q4_0 the continuations of core's reference backend holding the same quantized weights (q4_0 departs
// from the goldens after a token or two, so agreement there is agreement on the quantized blocks). If a
// tensor name, a dimension order, the tokenizer metadata or a block layout were wrong, llama.cpp would
// refuse the file or continue differently, and the benchmark against llama.cpp would compare other weights.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Qwen2, ReferenceBackend } from '@qwen2-ts/core';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, describe, expect, it } from 'vitest';
import { ggufTensorName, writeGguf } from './gguf-writer.mjs';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const tokenizerJson = readFileSync(join(fixtures, 'tokenizer/tokenizer.json'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'gguf-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** llama.cpp's greedy continuation of each golden prompt (EOS not special-cased: yielded like any token). */
async function llamaGreedy(ggufPath, sequences) {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: ggufPath });
  const out = [];
  try {
    for (const s of sequences) {
      const context = await model.createContext({ contextSize: 512, threads: 1 });
      const got = [];
      for await (const t of context.getSequence().evaluate(s.input_ids, { temperature: 0, yieldEogToken: true })) {
        got.push(t);
        if (got.length === s.greedy_new_tokens.length) break;
      }
      out.push(got);
      await context.dispose();
    }
  } finally {
    await model.dispose();
    await llama.dispose();
  }
  return out;
}

describe('writeGguf', () => {
  it('maps Hugging Face names to llama.cpp names, and rejects unknown tensors', () => {
    expect(ggufTensorName('model.embed_tokens.weight')).toBe('token_embd.weight');
    expect(ggufTensorName('model.layers.11.self_attn.k_proj.bias')).toBe('blk.11.attn_k.bias');
    expect(ggufTensorName('model.layers.0.mlp.down_proj.weight')).toBe('blk.0.ffn_down.weight');
    expect(() => ggufTensorName('model.layers.0.mlp.fc1.weight')).toThrow(/no llama.cpp name/);
  });

  it('rejects an unknown format before writing', async () => {
    await expect(writeGguf(join(fixtures, 'models/full-vocab-bf16'), join(dir, 'x.gguf'), { format: 'q5_k', tokenizerJson })).rejects.toThrow(/unknown format 'q5_k'/);
  });

  for (const format of ['f32', 'bf16']) {
    it(`llama.cpp reproduces the golden greedy tokens of full-vocab-bf16 written as ${format} GGUF`, async () => {
      const golden = JSON.parse(readFileSync(join(fixtures, 'models/full-vocab-bf16/golden.json'), 'utf8'));
      const path = join(dir, `full-vocab-${format}.gguf`);
      const { tensors } = await writeGguf(join(fixtures, 'models/full-vocab-bf16'), path, { format, tokenizerJson });
      expect(tensors).toBe(1 + 2 * 12 + 1); // embedding, 12 per layer, final norm (tied head)
      const got = await llamaGreedy(path, golden.sequences);
      golden.sequences.forEach((s, i) => expect(got[i], `sequence ${i}`).toEqual(s.greedy_new_tokens));
    }, 120_000);
  }

  for (const format of ['q8_0', 'q4_0']) {
    it(`llama.cpp continues like core's reference backend on the same ${format} weights`, async () => {
      const golden = JSON.parse(readFileSync(join(fixtures, 'models/full-vocab-bf16/golden.json'), 'utf8'));
      const path = join(dir, `full-vocab-${format}.gguf`);
      await writeGguf(join(fixtures, 'models/full-vocab-bf16'), path, { format, tokenizerJson });
      const got = await llamaGreedy(path, golden.sequences);
      const ours = await Qwen2.load(join(fixtures, 'models/full-vocab-bf16'), { backend: new ReferenceBackend(), dtype: format, tokenizer: { tokenizerJson } });
      try {
        for (const [i, s] of golden.sequences.entries()) {
          const want = await ours.generate(s.input_ids, { maxNewTokens: s.greedy_new_tokens.length, temperature: 0, ignoreEos: true });
          expect(got[i], `sequence ${i}`).toEqual(want.ids);
        }
      } finally {
        await ours.dispose();
      }
    }, 120_000);
  }
});
