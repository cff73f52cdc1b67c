// GGUF files (llama.cpp's format) load into the same model as the checkpoints they were converted from:
// f32 files give the very logits, q8_0 / q4_0 files the very blocks (so the logits of the checkpoint
// stored in that format), and every other block type the logits of its dequantized values.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dequantizeGgml, encodeGguf, ggmlTypeNamed, ggufTensorName, memoryFile, qwen2GgufMetadata, readGgufHeader, openModel, type Qwen2Config } from '@qwen2-ts/loader';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { writeGgufFixture, writeRandomGguf } from '../testing/gguf-fixtures.js';
import { maxAbsDiff } from '../testing/random.js';
import { Qwen2 } from './qwen2.js';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const tokenizerJson = readFileSync(join(fixtures, 'tokenizer/tokenizer.json'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'qwen2-gguf-core-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Last-position logits of a prompt. */
async function logits(model: Qwen2, ids: number[]): Promise<Float32Array> {
  return (await model.logits(ids)).at(-1)!.slice();
}


describe('Qwen2.load of a GGUF file', () => {
  it('gives the logits of the checkpoint it was converted from, f32 exactly, q8_0 / q4_0 block for block', async () => {
    const prompt = [1, 5, 9, 77, 3, 200, 41];
    for (const name of ['tiny-f32', 'tiny-bf16-untied', 'tiny-f16-sharded']) {
      const source = join(fixtures, 'models', name);
      for (const format of ['f32', 'q8_0', 'q4_0'] as const) {
        const path = join(dir, `${name}-${format}.gguf`);
        await writeGgufFixture(source, path, { format });
        const gguf = await Qwen2.load(path, { dtype: 'auto', tokenizer: { tokenizerJson } });
        const checkpoint = await Qwen2.load(source, { dtype: format, tokenizer: { tokenizerJson } });
        try {
          expect(gguf.weightFormat, `${name} ${format}`).toBe(format);
          expect(maxAbsDiff(await logits(gguf, prompt), await logits(checkpoint, prompt)), `${name} ${format}`).toBe(0);
        } finally {
          await gguf.dispose();
          await checkpoint.dispose();
        }
      }
    }
  }, 120_000);

  it('keeps Q4_0 blocks\' values when storing them as q8_0 (from their integers)', async () => {
    const path = join(dir, 'tiny-f16-sharded-q4_0.gguf');
    await writeGgufFixture(join(fixtures, 'models/tiny-f16-sharded'), path, { format: 'q4_0' });
    const prompt = [4, 8, 15, 16, 23, 42];
    const asQ8 = await Qwen2.load(path, { dtype: 'q8_0', tokenizer: { tokenizerJson } });
    const asF32 = await Qwen2.load(path, { dtype: 'f32', tokenizer: { tokenizerJson } });
    try {
      // q8_0 holds every Q4_0 value (d * (q - 8)) exactly: only the order of the sums can differ.
      expect(maxAbsDiff(await logits(asQ8, prompt), await logits(asF32, prompt))).toBeLessThan(1e-5);
    } finally {
      await asQ8.dispose();
      await asF32.dispose();
    }
  });

  it('reproduces the golden greedy tokens with the tokenizer and chat template stored in the file', async () => {
    const source = join(fixtures, 'models/full-vocab-bf16');
    const golden = JSON.parse(readFileSync(join(source, 'golden.json'), 'utf8')) as { sequences: { input_ids: number[]; greedy_new_tokens: number[] }[] };
    const path = join(dir, 'full-vocab.gguf');
    const tokenizerConfigJson = readFileSync(join(fixtures, 'configs/Qwen2-0.5B-Instruct/tokenizer_config.json'), 'utf8');
    await writeGgufFixture(source, path, { format: 'f32', tokenizerJson, tokenizerConfigJson });
    const model = await Qwen2.load(path, { dtype: 'f32' });
    try {
      for (const s of golden.sequences) {
        const out = await model.generate(s.input_ids, { maxNewTokens: s.greedy_new_tokens.length, temperature: 0, ignoreEos: true });
        expect(out.ids).toEqual(s.greedy_new_tokens);
      }
      // The file's tokenizer is Qwen2's: every golden string of Hugging Face's tokenizer encodes the same.
      const lines = readFileSync(join(fixtures, 'tokenizer/qwen2_tokenizer_golden.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { text: string; ids: number[] });
      for (const { text, ids } of lines) expect(model.tokenizer.encode(text), text).toEqual(ids);
      const chats = readFileSync(join(fixtures, 'tokenizer/qwen2_chat_template.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { messages: { role: string; content: string }[]; add_generation_prompt?: boolean; text: string });
      for (const c of chats) {
        expect(model.tokenizer.applyChatTemplate(c.messages as never, { addGenerationPrompt: c.add_generation_prompt ?? false }), JSON.stringify(c.messages)).toBe(c.text);
      }
    } finally {
      await model.dispose();
    }
  }, 120_000);

  const config: Qwen2Config = {
    modelType: 'qwen2', vocabSize: 512, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
    headDim: 64, maxPositionEmbeddings: 4096, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, maxWindowLayers: 28, eosTokenIds: [],
  };

  it('reads every other block type as its dequantized values, and stores it as q4_k (Q4_K), q4_0 up to 4 bits, q8_0 above', async () => {
    const prompt = [3, 100, 7, 250, 511, 0];
    for (const matrixType of ['Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS']) {
      const path = join(dir, `random-${matrixType}.gguf`);
      await writeRandomGguf(path, { config, matrixType, seed: 3 });
      // The same model with every block tensor dequantized by the loader and written as F32.
      const bytes = readFileSync(path);
      const header = await readGgufHeader(memoryFile(path, bytes));
      const tensors = header.tensors.map((t) => {
        const values = t.dims.reduce((a, b) => a * b, 1);
        const out = new Float32Array(values);
        dequantizeGgml(t.type, bytes.subarray(t.offset, t.offset + t.byteLength), values, out);
        return { name: t.name, dims: t.dims, type: 0, byteLength: values * 4, data: new Uint8Array(out.buffer) };
      });
      const f32Path = join(dir, `random-${matrixType}-f32.gguf`);
      writeFileSync(f32Path, encodeGguf(qwen2GgufMetadata(config), tensors));
      const quantized = await Qwen2.load(path, { dtype: 'f32', tokenizer: { tokenizerJson } });
      const floats = await Qwen2.load(f32Path, { dtype: 'f32', tokenizer: { tokenizerJson } });
      const auto = await Qwen2.load(path, { dtype: 'auto', tokenizer: { tokenizerJson } });
      try {
        const want = await logits(floats, prompt);
        expect(maxAbsDiff(await logits(quantized, prompt), want), matrixType).toBe(0);
        const bits = ggmlTypeNamed(matrixType)!.bits;
        expect(auto.weightFormat, matrixType).toBe(matrixType === 'Q4_K' ? 'q4_k' : bits <= 4 ? 'q4_0' : 'q8_0');
        // Q4_K blocks are kept: the reference backend widens them to the very values the loader gives.
        if (matrixType === 'Q4_K') expect(maxAbsDiff(await logits(auto, prompt), want), 'Q4_K kept as q4_k').toBe(0);
      } finally {
        await quantized.dispose();
        await floats.dispose();
        await auto.dispose();
      }
    }
  }, 240_000);

  it('keeps a Q4_K_M file\'s Q4_K blocks as q4_k, the rest by bits, and falls back to q4_0 on a backend without q4_k', async () => {
    const path = join(dir, 'q4_k_m.gguf');
    // llama.cpp's Q4_K_M layout: Q4_K matrices, Q6_K embedding (and head).
    await writeRandomGguf(path, { config: { ...config, tieWordEmbeddings: false }, matrixType: 'Q4_K', embeddingType: 'Q6_K', seed: 5 });
    const formats = async (backend: ReferenceBackend, dtype: 'auto' | 'q4_k') => {
      const model = await Qwen2.load(path, { dtype, tokenizer: { tokenizerJson }, backend });
      const w = (model as unknown as { model: { weights: { embed: { format: string }; lmHead: { format: string }; layers: { q: { format: string }; down: { format: string } }[] } } }).model.weights;
      const got = { embed: w.embed.format, lmHead: w.lmHead.format, q: w.layers[0]!.q.format, down: w.layers[1]!.down.format };
      await model.dispose();
      return got;
    };
    const want = { embed: 'q8_0', lmHead: 'q8_0', q: 'q4_k', down: 'q4_k' };
    expect(await formats(new ReferenceBackend(), 'auto')).toEqual(want);
    expect(await formats(new ReferenceBackend(), 'q4_k')).toEqual(want);
    // A backend that cannot store q4_k (webgpu, cuda) gets the blocks quantized again as q4_0.
    const limited = new ReferenceBackend();
    Object.assign(limited, { info: { ...limited.info, formats: limited.info.formats.filter((f) => f !== 'q4_k') } });
    expect(await formats(limited, 'auto')).toEqual({ ...want, q: 'q4_0', down: 'q4_0' });
    await expect(Qwen2.load(path, { dtype: 'q4_k', tokenizer: { tokenizerJson }, backend: limited })).rejects.toThrow(/cannot store q4_k/);
    // A float checkpoint has no Q4_K blocks to keep.
    await expect(Qwen2.load(join(fixtures, 'models/tiny-f32'), { dtype: 'q4_k', tokenizer: { tokenizerJson } })).rejects.toThrow(/q4_k weights are GGUF Q4_K tensors kept as they are, and this checkpoint has none/);
  }, 120_000);

  it('keeps the tensor names llama.cpp uses', async () => {
    const path = join(dir, 'names.gguf');
    await writeRandomGguf(path, { config: { ...config, tieWordEmbeddings: false }, matrixType: 'Q8_0' });
    const opened = await openModel(path);
    try {
      expect(opened.checkpoint.tensors.has('lm_head.weight')).toBe(true);
      expect(opened.config.tieWordEmbeddings).toBe(false);
      expect(ggufTensorName('lm_head.weight')).toBe('output.weight');
    } finally {
      await opened.close();
    }
    const model = await Qwen2.load(path, { tokenizer: { tokenizerJson }, backend: new ReferenceBackend() });
    expect(model.weightFormat).toBe('q8_0');
    await model.dispose();
  });
});
