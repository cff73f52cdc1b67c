import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, GgufError, ModelNotFoundError } from '../errors.js';
import { openHubOverHttp, openModel } from '../model.js';
import { parseQwen2Config } from '../config.js';
import { qwen2CheckpointLayout } from '../qwen2-layout.js';
import { memoryFile } from '../random-access.js';
import { rng } from '../test-support/rng.js';
import { startMockHub } from '../test-support/mock-hub.js';
import { dequantizeGgml, ggmlTypeNamed, type GgmlType } from './ggml-quants.js';
import { readGgufHeader } from './gguf-header.js';
import { qwen2ConfigFromGguf, qwen2GgufMetadata } from './gguf-qwen2-config.js';
import { ggufTokenizerMetadata, tokenizerFilesFromGguf } from './gguf-tokenizer.js';
import { encodeGguf, type GgufMetadataEntry } from './gguf-writer.js';
import { ggufSamplingMetadata } from './gguf-sampling.js';
import { ggufTensorName, hfTensorName } from './qwen2-tensor-names.js';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const tokenizerJson = readFileSync(join(fixtures, 'tokenizer/tokenizer.json'), 'utf8');
const instructConfig = readFileSync(join(fixtures, 'configs/Qwen2-0.5B-Instruct/tokenizer_config.json'), 'utf8');
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const tempDir = () => { const d = mkdtempSync(join(tmpdir(), 'qwen2-gguf-')); dirs.push(d); return d; };

const type = (name: string): GgmlType => ggmlTypeNamed(name)!;
/** Qwen2-0.5B's config at a small shape whose rows are whole K-quant blocks (256 values). */
const CONFIG = { ...parseQwen2Config(JSON.parse(readFileSync(join(fixtures, 'configs/Qwen2-0.5B/config.json'), 'utf8'))), numHiddenLayers: 2, vocabSize: 512, hiddenSize: 256, intermediateSize: 512, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 64 };
/** Bit-for-bit equality of two arrays' bytes (toEqual compares element by element, slowly). */
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** Random blocks of a type, with each block's f16 scale fields set to small finite values. */
function blocks(t: GgmlType, values: number, random: () => number): Uint8Array {
  const out = new Uint8Array((values / t.blockSize) * t.typeSize);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
  if (t.name === 'F32') {
    const f = new Float32Array(out.buffer);
    for (let i = 0; i < f.length; i++) f[i] = random() - 0.5;
  } else if (t.name === 'F16' || t.name === 'BF16') {
    for (let i = 1; i < out.length; i += 2) out[i] = (out[i]! & 0x83) | 0x3c; // exponents near 1: finite
  } else if (t.name === 'Q4_0' || t.name === 'Q8_0' || t.name === 'Q4_K') {
    for (let b = 0; b < out.length; b += t.typeSize) { out[b] = 0x00; out[b + 1] = 0x20; } // d = 2^-7
  }
  return out;
}

/** A qwen2 GGUF model: every matrix in `matrixType` (vectors F32), the tokenizer optional. */
function modelFile(matrixType: string, options: { tokenizer?: boolean; untied?: boolean; extra?: GgufMetadataEntry[] } = {}): Uint8Array {
  const random = rng(5);
  const config = { ...CONFIG, tieWordEmbeddings: !options.untied };
  const metadata = [...qwen2GgufMetadata(config), ...(options.extra ?? [])];
  if (options.tokenizer) metadata.push(...ggufTokenizerMetadata(tokenizerJson, 151936, instructConfig));
  const tensors = qwen2CheckpointLayout(config).map(({ name, shape }) => {
    const t = shape.length === 2 ? type(matrixType) : type('F32');
    const values = shape.reduce((a, b) => a * b, 1);
    const data = blocks(t, values, random);
    return { name: ggufTensorName(name), dims: [...shape].reverse(), type: t.id, byteLength: data.byteLength, data };
  });
  return encodeGguf(metadata, tensors);
}

describe('qwen2 tensor names', () => {
  it('map both ways, and leave tensors Qwen2 lacks unnamed', () => {
    for (const { name } of qwen2CheckpointLayout({ ...CONFIG, tieWordEmbeddings: false })) expect(hfTensorName(ggufTensorName(name))).toBe(name);
    expect(ggufTensorName('model.layers.11.self_attn.k_proj.bias')).toBe('blk.11.attn_k.bias');
    expect(hfTensorName('rope_freqs.weight')).toBeUndefined();
    expect(() => ggufTensorName('model.layers.0.mlp.fc1.weight')).toThrow(/no llama.cpp name/);
  });
});

describe('qwen2ConfigFromGguf', () => {
  const config = async (extra: GgufMetadataEntry[], drop: string[] = [], untied = false) => {
    const bytes = modelFile('F16', { untied });
    const header = await readGgufHeader(memoryFile('m.gguf', bytes));
    for (const key of drop) header.metadata.delete(key);
    for (const e of extra) header.metadata.set(e.key, e.value as never);
    return qwen2ConfigFromGguf(header, 'm.gguf');
  };

  it('gives the config.json values llama.cpp converted from', async () => {
    const c = await config([]);
    expect(c).toMatchObject({ hiddenSize: 256, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 64, intermediateSize: 512, vocabSize: 512, ropeTheta: 1_000_000, rmsNormEps: 1e-6, tieWordEmbeddings: true });
    expect((await config([], [], true)).tieWordEmbeddings).toBe(false);
  });

  it('refuses other architectures, missing keys and rope scaling, naming the GGUF key', async () => {
    await expect(config([{ key: 'general.architecture', type: 'string', value: 'qwen2moe' }])).rejects.toThrow(/'general.architecture' is 'qwen2moe' \(Qwen2-MoE\); only 'qwen2'/);
    await expect(config([], ['qwen2.block_count'])).rejects.toThrow(/'qwen2.block_count' is missing from the GGUF metadata/);
    await expect(config([{ key: 'qwen2.attention.head_count', type: 'string', value: 'x' }])).rejects.toThrow(/'qwen2.attention.head_count' must be an integer/);
    await expect(config([{ key: 'qwen2.rope.scaling.type', type: 'string', value: 'yarn' }])).rejects.toThrow(ConfigError);
    await expect(config([{ key: 'qwen2.rope.scaling.type', type: 'string', value: 'yarn' }])).rejects.toThrow(/'qwen2.rope.scaling.type' is 'yarn'; only plain RoPE/);
  });
});

describe('the tokenizer in a GGUF file', () => {
  it('reads back as Qwen2\'s own vocab.json, merges.txt and added tokens, with the chat template and eos', async () => {
    const header = await readGgufHeader(memoryFile('m.gguf', modelFile('F16', { tokenizer: true })));
    const files = tokenizerFilesFromGguf(header, 'm.gguf');
    expect(JSON.parse(files.vocabJson!)).toEqual(JSON.parse(readFileSync(join(fixtures, 'tokenizer/vocab.json'), 'utf8')));
    const merges = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#version'));
    expect(merges(files.mergesTxt!)).toEqual(merges(readFileSync(join(fixtures, 'tokenizer/merges.txt'), 'utf8')));
    const config = JSON.parse(files.tokenizerConfigJson!);
    const real = JSON.parse(tokenizerJson) as { added_tokens: { id: number; content: string; special: boolean }[] };
    expect(Object.entries(config.added_tokens_decoder).map(([id, t]) => [Number(id), (t as { content: string }).content, (t as { special: boolean }).special]))
      .toEqual(real.added_tokens.map((t) => [t.id, t.content, t.special]));
    expect(config.chat_template).toBe(JSON.parse(instructConfig).chat_template);
    expect(config.eos_token).toBe('<|im_end|>');
    expect(config.pad_token).toBe('<|endoftext|>');
    // The converter's padding tokens ([PAD151646]...) are not part of the vocabulary.
    expect(files.vocabJson).not.toContain('[PAD');
    // Both Qwen end tokens stop a generation, as in llama.cpp.
    expect(qwen2ConfigFromGguf(header, 'm.gguf').eosTokenIds).toEqual([151645, 151643]);
  });

  it('refuses vocabularies the tokenizer package does not implement, naming the key', () => {
    const header = (entries: [string, string][]) => ({ metadata: new Map<string, never>(entries as never) });
    expect(() => tokenizerFilesFromGguf(header([['tokenizer.ggml.model', 'llama']]), 'm.gguf')).toThrow(/'tokenizer.ggml.model' is 'llama'; Qwen2 uses a byte-level BPE/);
    expect(() => tokenizerFilesFromGguf(header([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.pre', 'llama-bpe']]), 'm.gguf')).toThrow(/'tokenizer.ggml.pre' is 'llama-bpe'; only Qwen2's pre-tokenizer/);
    expect(tokenizerFilesFromGguf(header([]), 'm.gguf')).toEqual({});
    // A token listed twice keeps its first id (as a reverse map built in id order would).
    const twice = new Map<string, unknown>([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.pre', 'qwen2'], ['tokenizer.ggml.tokens', ['a', 'b', 'a', '"q"']], ['tokenizer.ggml.merges', []]]);
    expect(JSON.parse(tokenizerFilesFromGguf({ metadata: twice as never }, 'm.gguf').vocabJson!)).toEqual({ a: 0, b: 1, '"q"': 3 });
  });
});

describe('a GGUF model opened with openModel', () => {
  const names = qwen2CheckpointLayout({ ...CONFIG, tieWordEmbeddings: true }).map((t) => t.name);

  it('has every tensor under its Hugging Face name and shape; float tensors read as stored, blocks as ggml dequantizes them', async () => {
    for (const matrixType of ['F16', 'BF16', 'F32', 'Q8_0', 'Q4_0', 'Q4_K']) {
      const dir = tempDir();
      const bytes = modelFile(matrixType);
      writeFileSync(join(dir, 'model.gguf'), bytes);
      const header = await readGgufHeader(memoryFile('m', bytes));
      const model = await openModel(join(dir, 'model.gguf'));
      try {
        expect([...model.checkpoint.tensors.keys()].sort()).toEqual([...names].sort());
        const t = type(matrixType);
        const down = model.checkpoint.tensors.get('model.layers.1.mlp.down_proj.weight')!;
        expect(down.shape).toEqual([256, 512]);
        const raw = header.tensors.find((x) => x.name === 'blk.1.ffn_down.weight')!;
        const stored = bytes.slice(raw.offset, raw.offset + raw.byteLength);
        const got = await model.checkpoint.read(down.name);
        if (t.blockSize === 1) {
          expect(down.dtype).toBe(matrixType);
          expect(down.quantized).toBeUndefined();
          expect(sameBytes(got, stored)).toBe(true);
          continue;
        }
        expect(down.dtype).toBe('F32');
        expect(down.quantized).toEqual({ method: 'gguf', bits: t.bits, groupSize: t.blockSize, format: matrixType, integers: matrixType !== 'Q4_K' });
        const want = new Float32Array(256 * 512);
        dequantizeGgml(t, stored, want.length, want);
        expect(sameBytes(got, want)).toBe(true);
        // Ranges, also off block and value boundaries, equal the whole read.
        for (const [from, length] of [[0, 4096], [4 * 1000, 4 * 333], [4 * 32 * 7 + 2, 4 * 600 + 1], [got.byteLength - 10, 10]] as const) {
          expect(sameBytes(await model.checkpoint.readRange(down.name, from, length), got.subarray(from, from + length)), `${matrixType} bytes ${from}+${length}`).toBe(true);
        }
        if (down.quantized!.integers) {
          const layer = await model.checkpoint.readQuantized!(down.name);
          const values = Float32Array.from({ length: want.length }, (_, k) => {
            const o = Math.floor(k / 512), i = k % 512, g = layer.group[i]!;
            return layer.scales[g * 256 + o]! * (layer.q[k]! - layer.zeros[g * 256 + o]!);
          });
          expect(sameBytes(values, want)).toBe(true);
          expect(layer.bits).toBe(matrixType === 'Q4_0' ? 4 : 8);
        } else {
          await expect(model.checkpoint.readQuantized!(down.name)).rejects.toThrow(/Q4_K, which has no integer form/);
        }
      } finally {
        await model.close();
      }
    }
  });

  it('gives the file\'s recommended sampling (general.sampling.*) as its generation config', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'plain.gguf'), modelFile('Q8_0', { tokenizer: true }));
    writeFileSync(join(dir, 'sampling.gguf'), modelFile('Q8_0', { tokenizer: true, extra: ggufSamplingMetadata({ temperature: 0.7, topP: 0.8, topK: 20, repetitionPenalty: 1.05 }) }));
    const plain = await openModel(join(dir, 'plain.gguf'));
    const sampling = await openModel(join(dir, 'sampling.gguf'));
    try {
      expect(plain.generationConfig).toBeUndefined();
      expect(sampling.generationConfig).toEqual({ eosTokenIds: sampling.config.eosTokenIds, doSample: true, temperature: 0.7, topP: 0.8, topK: 20, repetitionPenalty: 1.05 });
    } finally {
      await plain.close();
      await sampling.close();
    }
  });

  it('opens a folder holding one GGUF model, and asks which one when it holds several', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'qwen2-q8_0.gguf'), modelFile('Q8_0'));
    const model = await openModel(dir);
    expect(model.checkpoint.tensors.get('model.embed_tokens.weight')!.quantized?.format).toBe('Q8_0');
    await model.close();
    writeFileSync(join(dir, 'qwen2-f16.gguf'), modelFile('F16'));
    await expect(openModel(dir)).rejects.toThrow(/no config.json and 2 GGUF models \(qwen2-f16.gguf, qwen2-q8_0.gguf\); name the file to open/);
  });

  it('opens a picked browser folder (File[] or directory handle) holding one GGUF model', async () => {
    const bytes = modelFile('Q4_0');
    const file = new File([bytes as Uint8Array<ArrayBuffer>], 'qwen2-q4_0.gguf');
    Object.defineProperty(file, 'webkitRelativePath', { value: 'picked/qwen2-q4_0.gguf' });
    const readme = new File(['# model'], 'README.md');
    Object.defineProperty(readme, 'webkitRelativePath', { value: 'picked/README.md' });
    const byName = new Map([[file.name, file], [readme.name, readme]]);
    const handle = {
      kind: 'directory', name: 'picked',
      async getFileHandle(name: string) {
        const f = byName.get(name);
        if (!f) throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
        return { kind: 'file', name, getFile: async () => f };
      },
      async getDirectoryHandle() { throw Object.assign(new Error('not found'), { name: 'NotFoundError' }); },
      async *keys() { yield* byName.keys(); },
    } as unknown as FileSystemDirectoryHandle;
    for (const spec of [[readme, file], handle]) {
      const model = await openModel(spec);
      try {
        expect(model.checkpoint.tensors.get('model.layers.0.mlp.up_proj.weight')!.quantized?.format).toBe('Q4_0');
        expect(model.config.hiddenSize).toBe(256);
      } finally {
        await model.close();
      }
    }
  });

  it('opens a split model from any part, and names a missing part', async () => {
    const dir = tempDir();
    // Two parts as gguf-split writes them: metadata in the first, tensors divided, split.* keys in both.
    const config = { ...CONFIG, tieWordEmbeddings: true };
    const random = rng(9);
    const tensors = qwen2CheckpointLayout(config).map(({ name, shape }) => {
      const t = shape.length === 2 ? type('Q8_0') : type('F32');
      const data = blocks(t, shape.reduce((a, b) => a * b, 1), random);
      return { name: ggufTensorName(name), dims: [...shape].reverse(), type: t.id, byteLength: data.byteLength, data };
    });
    const split = (no: number): GgufMetadataEntry[] => [{ key: 'split.no', type: 'u16', value: no }, { key: 'split.count', type: 'u16', value: 2 }, { key: 'split.tensors.count', type: 'i32', value: tensors.length }];
    const half = Math.floor(tensors.length / 2);
    writeFileSync(join(dir, 'm-00001-of-00002.gguf'), encodeGguf([...qwen2GgufMetadata(config), ...split(0)], tensors.slice(0, half)));
    writeFileSync(join(dir, 'm-00002-of-00002.gguf'), encodeGguf(split(1), tensors.slice(half)));
    for (const part of ['m-00001-of-00002.gguf', 'm-00002-of-00002.gguf']) {
      const model = await openModel(join(dir, part));
      try {
        expect(model.checkpoint.tensors.size).toBe(tensors.length);
        const last = tensors.at(-1)!;
        expect(sameBytes(await model.checkpoint.read(hfTensorName(last.name)!), last.data)).toBe(true);
      } finally {
        await model.close();
      }
    }
    rmSync(join(dir, 'm-00002-of-00002.gguf'));
    await expect(openModel(join(dir, 'm-00001-of-00002.gguf'))).rejects.toBeInstanceOf(ModelNotFoundError);
  });

  it('names an unreadable block type and a file that is not GGUF', async () => {
    const dir = tempDir();
    const iq = type('IQ2_XXS');
    const file = encodeGguf(qwen2GgufMetadata(CONFIG), [{ name: 'token_embd.weight', dims: [256, 512], type: iq.id, byteLength: 512 * iq.typeSize, data: new Uint8Array(512 * iq.typeSize) }]);
    writeFileSync(join(dir, 'iq.gguf'), file);
    await expect(openModel(join(dir, 'iq.gguf'))).rejects.toThrow(/'token_embd.weight' has type IQ2_XXS, which this library cannot read/);
    writeFileSync(join(dir, 'bad.gguf'), new TextEncoder().encode('<html>404 not found</html>'.padEnd(64)));
    await expect(openModel(join(dir, 'bad.gguf'))).rejects.toThrow(GgufError);
    await expect(openModel(join(dir, 'bad.gguf'))).rejects.toThrow(/bad.gguf: not a GGUF file/);
    await expect(openModel(join(dir, 'missing.gguf'))).rejects.toBeInstanceOf(ModelNotFoundError);
  });

  it('keeps a URL\'s query string (a token, a signed link) on every request for the file and its folder\'s files', async () => {
    const id = 'Qwen/Qwen2-0.5B-Instruct-GGUF';
    const hub = await startMockHub({ [id]: { files: { 'm.gguf': modelFile('Q8_0', { tokenizer: true }) }, commit: 'e'.repeat(40) } });
    try {
      const url = `${hub.endpoint}/${id}/resolve/main/m.gguf?sig=a%2Fb&expires=9`;
      const model = await openModel(url);
      try {
        expect(model.checkpoint.tensors.get('model.layers.0.self_attn.q_proj.weight')!.quantized?.format).toBe('Q8_0');
      } finally {
        await model.close();
      }
      const file = hub.log.filter((r) => r.path.endsWith('/m.gguf'));
      expect(file.length).toBeGreaterThan(0);
      expect(file.every((r) => r.query === '?sig=a%2Fb&expires=9'), JSON.stringify(file)).toBe(true);
    } finally {
      await hub.close();
    }
  });

  it('downloads only the named GGUF file of a Hub repository (Node), and reads it over Range requests (browsers)', async () => {
    const id = 'Qwen/Qwen2-0.5B-Instruct-GGUF';
    const q8 = modelFile('Q8_0', { tokenizer: true });
    const files = { 'qwen2-0_5b-instruct-q8_0.gguf': q8, 'qwen2-0_5b-instruct-fp16.gguf': modelFile('F16'), 'README.md': new TextEncoder().encode('# GGUF') };
    const hub = await startMockHub({ [id]: { files, commit: 'f'.repeat(40) } });
    const cacheDir = tempDir();
    try {
      const spec = `${id}/qwen2-0_5b-instruct-q8_0.gguf`;
      for (const open of [() => openModel(spec, { endpoint: hub.endpoint, cacheDir }), () => openHubOverHttp(id, { endpoint: hub.endpoint, browserCache: false }, 'qwen2-0_5b-instruct-q8_0.gguf')]) {
        hub.log.length = 0;
        const model = await open();
        try {
          expect(model.source).toBe(`${spec}@main`);
          expect(model.tokenizerFiles.vocabJson).toBeDefined();
          expect(model.checkpoint.tensors.get('model.layers.0.self_attn.q_proj.weight')!.quantized?.format).toBe('Q8_0');
          expect(hub.log.some((r) => r.path.includes('fp16'))).toBe(false);
        } finally {
          await model.close();
        }
      }
      await expect(openModel(`${id}/nope.gguf`, { endpoint: hub.endpoint, cacheDir })).rejects.toThrow(/no file 'nope.gguf' in Qwen\/Qwen2-0.5B-Instruct-GGUF/);
      await expect(openModel(`${id}/../../escape.gguf`, { endpoint: hub.endpoint, cacheDir })).rejects.toThrow(/must not hold empty, '.' or '..' parts/);
      // Offline, from the cache.
      const cached = await openModel(`${id}/qwen2-0_5b-instruct-q8_0.gguf`, { endpoint: hub.endpoint, cacheDir, offline: true });
      expect(cached.checkpoint.tensors.size).toBe(names.length);
      await cached.close();
    } finally {
      await hub.close();
    }
  });
});
