// Loads every fixture checkpoint and checks tensor values against the golden data written by the
// independent Python generator, decoding bf16/f16/f32 bit patterns by hand (not with our own code).
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openModel } from './model.js';

const MODELS = fileURLToPath(new URL('../../../fixtures/models/', import.meta.url));
const cases = readdirSync(MODELS);

function decodeElement(bytes: Uint8Array, dtype: string, index: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') return view.getFloat32(index * 4, true);
  const bits = view.getUint16(index * 2, true);
  if (dtype === 'BF16') {
    // bf16 is the top half of an IEEE float32.
    const f = new DataView(new ArrayBuffer(4));
    f.setUint32(0, bits << 16, false);
    return f.getFloat32(0, false);
  }
  if (dtype === 'F16') {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  throw new Error(`no decoder for ${dtype}`);
}

describe.each(cases)('fixture %s', (name) => {
  const dir = `${MODELS}${name}`;
  const golden = JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8'));

  it('opens with the config the generator recorded', async () => {
    const model = await openModel(dir);
    try {
      expect(model.source).toBe(dir);
      const m = golden.model;
      expect(model.config).toMatchObject({
        modelType: 'qwen2', vocabSize: m.vocab_size, hiddenSize: m.hidden_size, numHiddenLayers: m.num_hidden_layers,
        numAttentionHeads: m.num_attention_heads, numKeyValueHeads: m.num_key_value_heads, headDim: m.head_dim,
        intermediateSize: m.intermediate_size, tieWordEmbeddings: m.tie_word_embeddings, ropeTheta: m.rope_theta,
        rmsNormEps: m.rms_norm_eps, eosTokenIds: [151643], bosTokenId: 151643,
      });
      expect(model.config.slidingWindow).toBeUndefined(); // use_sliding_window is false
      // Every tensor a Qwen2 forward needs, with the right shape and the generator's dtype.
      const { hidden_size: h, intermediate_size: inter, vocab_size: v, head_dim: hd } = m;
      const q = m.num_attention_heads * hd;
      const kv = m.num_key_value_heads * hd;
      const expected: Record<string, number[]> = { 'model.embed_tokens.weight': [v, h], 'model.norm.weight': [h] };
      if (!m.tie_word_embeddings) expected['lm_head.weight'] = [v, h];
      for (let l = 0; l < m.num_hidden_layers; l++) {
        const p = `model.layers.${l}.`;
        Object.assign(expected, {
          [`${p}input_layernorm.weight`]: [h], [`${p}post_attention_layernorm.weight`]: [h],
          [`${p}self_attn.q_proj.weight`]: [q, h], [`${p}self_attn.q_proj.bias`]: [q],
          [`${p}self_attn.k_proj.weight`]: [kv, h], [`${p}self_attn.k_proj.bias`]: [kv],
          [`${p}self_attn.v_proj.weight`]: [kv, h], [`${p}self_attn.v_proj.bias`]: [kv],
          [`${p}self_attn.o_proj.weight`]: [h, q],
          [`${p}mlp.gate_proj.weight`]: [inter, h], [`${p}mlp.up_proj.weight`]: [inter, h], [`${p}mlp.down_proj.weight`]: [h, inter],
        });
      }
      expect(new Set(model.checkpoint.tensors.keys())).toEqual(new Set(Object.keys(expected)));
      for (const [tensor, shape] of Object.entries(expected)) {
        const t = model.checkpoint.tensors.get(tensor)!;
        expect(t.shape, tensor).toEqual(shape);
        expect(t.dtype).toBe(golden.dtype);
        expect(golden.files).toContain(t.file);
      }
    } finally {
      await model.close();
    }
  });

  it('reads the embedding row that the golden debug trace starts from', async () => {
    const model = await openModel(dir);
    try {
      const { seq_index: seq, position, embed } = golden.debug;
      const token: number = golden.sequences[seq].input_ids[position];
      const t = model.checkpoint.tensors.get('model.embed_tokens.weight')!;
      const bytes = await model.checkpoint.read(t.name);
      expect(bytes.byteLength).toBe(t.byteLength);
      const h = t.shape[1];
      const row = (embed as number[]).map((_, i) => decodeElement(bytes, t.dtype, token * h + i));
      for (let i = 0; i < embed.length; i++) expect(row[i]).toBeCloseTo(embed[i], 6);
      // A different row must not match: proves the comparison can fail.
      const other = decodeElement(bytes, t.dtype, ((token + 1) % t.shape[0]) * h);
      expect(Math.abs(other - embed[0])).toBeGreaterThan(1e-6);
    } finally {
      await model.close();
    }
  });

  it('reads every tensor with exactly its byte length and finite values', async () => {
    const model = await openModel(dir);
    try {
      let total = 0;
      for (const t of model.checkpoint.tensors.values()) {
        const bytes = await model.checkpoint.read(t.name);
        expect(bytes.byteLength).toBe(t.byteLength);
        expect(bytes.byteOffset).toBe(0);
        const n = t.byteLength / (t.dtype === 'F32' ? 4 : 2);
        for (const i of [0, n >> 1, n - 1]) expect(Number.isFinite(decodeElement(bytes, t.dtype, i))).toBe(true);
        total += t.byteLength;
      }
      if (name === 'tiny-f16-sharded') {
        const index = JSON.parse(readFileSync(`${dir}/model.safetensors.index.json`, 'utf8'));
        expect(total).toBe(index.metadata.total_size);
      }
    } finally {
      await model.close();
    }
  });

  it('reads any byte range of a tensor, equal to the same bytes of the whole read', async () => {
    const model = await openModel(dir);
    try {
      const t = [...model.checkpoint.tensors.values()].reduce((a, b) => (b.byteLength > a.byteLength ? b : a));
      const whole = await model.checkpoint.read(t.name);
      for (const [offset, length] of [[0, t.byteLength], [0, 1], [t.byteLength - 7, 7], [123, 4096], [t.byteLength, 0]]) {
        const part = await model.checkpoint.readRange(t.name, offset!, length!);
        expect(part.byteOffset).toBe(0);
        expect(Buffer.from(part).equals(Buffer.from(whole.subarray(offset!, offset! + length!)))).toBe(true);
      }
      await expect(model.checkpoint.readRange(t.name, t.byteLength - 1, 2)).rejects.toThrow(RangeError);
      await expect(model.checkpoint.readRange(t.name, -1, 1)).rejects.toThrow(/lie outside tensor/);
      await expect(model.checkpoint.readRange('nope', 0, 1)).rejects.toThrow(/no tensor named 'nope'/);
    } finally {
      await model.close();
    }
  });
});

describe('golden_logits.safetensors (F32 tensors beside the full-vocab model)', () => {
  it('its last-logits tensor has the golden top-20 ids and values', async () => {
    const { openLocalFile } = await import('./node/local-folder.js');
    const { readSafetensorsHeader } = await import('./safetensors-header.js');
    const dir = `${MODELS}full-vocab-bf16`;
    const golden = JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8'));
    const file = await openLocalFile(`${dir}/golden_logits.safetensors`);
    try {
      const header = await readSafetensorsHeader(file);
      const t = header.tensors.get('seq0.last_logits')!;
      const bytes = await file.read(header.dataOffset + t.begin, t.end - t.begin);
      const logits = Array.from({ length: t.shape[0] }, (_, i) => decodeElement(bytes, 'F32', i));
      const order = logits.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 20);
      const top = golden.sequences[0].last_top20;
      expect(order.map(([, i]) => i)).toEqual(top.ids);
      order.forEach(([v], k) => expect(v).toBeCloseTo(top.values[k], 5));
    } finally {
      await file.close();
    }
  });
});

describe('local folder specs', () => {
  it('accepts a file:// URL and names a missing folder', async () => {
    const { pathToFileURL } = await import('node:url');
    const model = await openModel(pathToFileURL(`${MODELS}tiny-f32`).href);
    expect(model.config.vocabSize).toBe(512);
    await model.close();
    await expect(openModel(`${MODELS}does-not-exist`)).rejects.toThrow(/no such folder: .*does-not-exist/);
  });
});
