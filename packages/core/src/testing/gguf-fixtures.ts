// Test data: GGUF files (llama.cpp's format), written from a fixture checkpoint (every matrix converted
// by core's own conversion, so q8_0 / q4_0 blocks are ggml's bit for bit) or as a random model whose
// matrices are random blocks of any ggml block type (Q4_K, Q6_K, IQ4_NL...: random bytes are valid
// blocks once their f16 scales are set to sane values).
import { closeSync, openSync, writeSync } from 'node:fs';
import {
  encodeGgufHeader, GGUF_TOKEN_TYPE, ggmlType, ggmlTypeNamed, ggufVocabularyMetadata, ggufTensorName, ggufTokenizerMetadata, openModel, qwen2CheckpointLayout, qwen2GgufMetadata,
  type GgmlType, type GgufMetadataEntry, type Qwen2Config,
} from '@qwen2-ts/loader';
import type { HostWeight, WeightFormat } from '../backend/types.js';
import { f32ToBf16, f32ToF16 } from '../numeric/half.js';
import { nativeFormat, toHostWeight } from '../weights/convert.js';
import { TestRandom } from './random.js';

/** ggml type ids of core's weight formats. */
const FORMAT_TYPE: Record<WeightFormat, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30, q4_k: 12 };
/** llama.cpp's `general.file_type` of a file whose matrices are all of one format. */
const FILE_TYPE: Record<WeightFormat, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32, q4_k: 15 };

/** A tensor's bytes in ggml's layout: a q8_0 / q4_0 block's f16 scale goes in front of its quants. */
export function ggmlBytes(host: HostWeight): Uint8Array {
  if (host.format === 'q4_k') return host.blocks;
  if (host.format === 'q8_0' || host.format === 'q4_0') {
    const quantBytes = host.format === 'q8_0' ? 32 : 16;
    const blocks = host.scales.length;
    const out = new Uint8Array(blocks * (2 + quantBytes));
    const quants = new Uint8Array(host.quants.buffer, host.quants.byteOffset, host.quants.byteLength);
    for (let b = 0; b < blocks; b++) {
      const o = b * (2 + quantBytes);
      out[o] = host.scales[b]! & 0xff;
      out[o + 1] = host.scales[b]! >> 8;
      out.set(quants.subarray(b * quantBytes, (b + 1) * quantBytes), o + 2);
    }
    return out;
  }
  return new Uint8Array(host.data.buffer, host.data.byteOffset, host.data.byteLength);
}

/** One tensor to stream into a GGUF file. */
interface PlannedTensor { name: string; dims: number[]; type: number; byteLength: number; data: () => Promise<Uint8Array> }

function writeFile(outPath: string, metadata: GgufMetadataEntry[], tensors: PlannedTensor[]): Promise<{ bytes: number; tensors: number }> {
  return (async () => {
    const { header, dataBytes } = encodeGgufHeader(metadata, tensors);
    const fd = openSync(outPath, 'w');
    try {
      let written = writeSync(fd, header);
      const zeros = new Uint8Array(32);
      for (const t of tensors) {
        const bytes = await t.data();
        if (bytes.byteLength !== t.byteLength) throw new Error(`gguf: ${t.name} has ${bytes.byteLength} bytes, expected ${t.byteLength}`);
        written += writeSync(fd, bytes);
        written += writeSync(fd, zeros, 0, (32 - (t.byteLength % 32)) % 32);
      }
      if (written !== header.byteLength + dataBytes) throw new Error(`gguf: wrote ${written} bytes, expected ${header.byteLength + dataBytes}`);
      return { bytes: written, tensors: tensors.length };
    } finally {
      closeSync(fd);
    }
  })();
}

/** Options of {@link writeGgufFixture}. */
export interface GgufFixtureOptions {
  /** Format of every matrix whose rows are whole blocks (others keep the checkpoint's float format); norms and biases are f32. */
  format: WeightFormat;
  /** tokenizer.json to store as `tokenizer.ggml.*` (default: the folder's own; none when it has none). */
  tokenizerJson?: string;
  /** tokenizer_config.json, for the eos token and the chat template. */
  tokenizerConfigJson?: string;
  name?: string;
}

/**
 * Writes the Hugging Face Qwen2 checkpoint in `modelDir` as one GGUF file the way llama.cpp's converter
 * lays it out (its tensor names, ggml dimension order, `qwen2.*` and `tokenizer.ggml.*` metadata),
 * every matrix converted to `format` by core's own conversion, tensors streamed one at a time.
 */
export async function writeGgufFixture(modelDir: string, outPath: string, options: GgufFixtureOptions): Promise<{ bytes: number; tensors: number }> {
  const { format } = options;
  if (!Object.hasOwn(FORMAT_TYPE, format)) throw new Error(`writeGgufFixture: unknown format '${String(format)}' (f32, f16, bf16, q8_0 or q4_0)`);
  const model = await openModel(modelDir);
  try {
    const c = model.config;
    const tokenizerJson = options.tokenizerJson ?? model.tokenizerFiles.tokenizerJson;
    const metadata = [
      ...qwen2GgufMetadata(c, { name: options.name, fileType: FILE_TYPE[format] }),
      ...(tokenizerJson ? ggufTokenizerMetadata(tokenizerJson, c.vocabSize, options.tokenizerConfigJson ?? model.tokenizerFiles.tokenizerConfigJson) : []),
    ];
    const tensors: PlannedTensor[] = [...model.checkpoint.tensors.entries()].map(([hfName, info]) => {
      const matrix = info.shape.length === 2;
      // As core does: a matrix whose rows are not whole 32-value blocks keeps its checkpoint format.
      const blocksFit = info.shape.at(-1)! % 32 === 0;
      const fmt: WeightFormat = !matrix ? 'f32' : blocksFit || !format.startsWith('q') ? format : nativeFormat(info.dtype, hfName);
      const type = ggmlType(FORMAT_TYPE[fmt])!;
      const values = info.shape.reduce((a, b) => a * b, 1);
      return {
        name: ggufTensorName(hfName), dims: [...info.shape].reverse(), type: type.id, byteLength: (values / type.blockSize) * type.typeSize,
        data: async () => ggmlBytes(toHostWeight(await model.checkpoint.read(hfName), info.dtype, info.shape, fmt, hfName)),
      };
    });
    return await writeFile(outPath, metadata, tensors);
  } finally {
    await model.close();
  }
}

/** Where a block type keeps its f16 scale (`d`) and minimum scale (`dmin` / `m`), and the largest |q * sub-scale| of a block. */
const SCALE_FIELDS: Record<string, { d: number; min?: number; span: number }> = {
  Q4_0: { d: 0, span: 8 }, Q4_1: { d: 0, min: 2, span: 15 }, Q5_0: { d: 0, span: 16 }, Q5_1: { d: 0, min: 2, span: 31 },
  Q8_0: { d: 0, span: 127 }, Q2_K: { d: 80, min: 82, span: 45 }, Q3_K: { d: 108, span: 128 }, Q4_K: { d: 0, min: 2, span: 945 },
  Q5_K: { d: 0, min: 2, span: 1953 }, Q6_K: { d: 208, span: 4064 }, IQ4_NL: { d: 0, span: 127 }, IQ4_XS: { d: 0, span: 4064 },
};

/**
 * `count` random blocks of a ggml block type: random bytes, with each block's f16 scale set so its
 * values reach about ±`amplitude` (and its minimum scale, where it has one, a fraction of that).
 */
export function randomGgmlBlocks(type: GgmlType, values: number, random: TestRandom, amplitude = 0.1): Uint8Array {
  const fields = SCALE_FIELDS[type.name];
  if (!fields) throw new Error(`randomGgmlBlocks: no scale layout known for ${type.name}`);
  const blocks = values / type.blockSize;
  const out = new Uint8Array(blocks * type.typeSize);
  for (let i = 0; i < out.length; i++) out[i] = random.int(256);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const at = b * type.typeSize;
    view.setUint16(at + fields.d, f32ToF16((amplitude / fields.span) * random.uniform(0.5, 1.5) * (random.int(2) ? 1 : -1)), true);
    if (fields.min !== undefined) view.setUint16(at + fields.min, f32ToF16((amplitude / fields.span) * random.uniform(0, 0.5)), true);
  }
  return out;
}

/** GPT-2's byte-to-character mapping (the alphabet of byte-level BPE vocabularies). */
function byteLevelAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
}

/** Options of {@link writeRandomGguf}. */
export interface RandomGgufOptions {
  config: Pick<Qwen2Config, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads' | 'headDim' | 'tieWordEmbeddings' | 'maxPositionEmbeddings' | 'ropeTheta' | 'rmsNormEps'>;
  /** ggml type name of every matrix whose rows are whole blocks of it ('Q4_K', 'F32', ...); the others are F32. */
  matrixType: string;
  /** Type of the embedding (and tied head); default `matrixType`. */
  embeddingType?: string;
  /**
   * Type of the matrices whose rows are not whole blocks of `matrixType` (default 'F32'); llama.cpp
   * stores Qwen2-0.5B's 896-wide rows as Q5_0 in its Q4_K files, Q8_0 in its Q6_K ones.
   */
  fallbackType?: string;
  seed?: number;
  /**
   * Store a byte-level vocabulary of `vocabSize` tokens (the 256 byte tokens, `<|endoftext|>`, padding),
   * no merges: enough for llama.cpp to load the file; token ids are fed directly.
   */
  byteVocabulary?: boolean;
}

/** A random Qwen2 model written as GGUF with matrices of any ggml block type (see {@link randomGgmlBlocks}). */
export async function writeRandomGguf(outPath: string, options: RandomGgufOptions): Promise<{ bytes: number; tensors: number }> {
  const { config } = options;
  const random = new TestRandom(options.seed ?? 7);
  const metadata: GgufMetadataEntry[] = qwen2GgufMetadata(config, { name: `random ${options.matrixType}` });
  if (options.byteVocabulary) {
    const tokens = byteLevelAlphabet();
    const types: number[] = tokens.map(() => GGUF_TOKEN_TYPE.normal);
    tokens.push('<|endoftext|>');
    types.push(GGUF_TOKEN_TYPE.control);
    while (tokens.length < config.vocabSize) { tokens.push(`[PAD${tokens.length}]`); types.push(GGUF_TOKEN_TYPE.unused); }
    metadata.push(...ggufVocabularyMetadata({ tokens, types, merges: [], bosId: 256, eosId: 256 }));
  }
  const typeNamed = (name: string): GgmlType => {
    const type = ggmlTypeNamed(name);
    if (!type) throw new Error(`writeRandomGguf: unknown ggml type '${name}'`);
    return type;
  };
  const matrixType = typeNamed(options.matrixType);
  const embeddingType = typeNamed(options.embeddingType ?? options.matrixType);
  const fallback = typeNamed(options.fallbackType ?? 'F32');
  const tensors: PlannedTensor[] = qwen2CheckpointLayout(config).map(({ name, shape }) => {
    const values = shape.reduce((a, b) => a * b, 1);
    const wanted = name.endsWith('embed_tokens.weight') || name === 'lm_head.weight' ? embeddingType : matrixType;
    const type = shape.length !== 2 ? ggmlType(0)! : shape[1]! % wanted.blockSize === 0 ? wanted : fallback;
    // Made when written (the file is written in order, so the random stream is the same every time):
    // a 7B model's blocks are never all in memory.
    const make = (): Uint8Array => {
      let bytes: Uint8Array;
      if (type.blockSize > 1) bytes = randomGgmlBlocks(type, values, random);
      else {
        const norm = name.endsWith('norm.weight');
        const data = new Float32Array(values);
        for (let i = 0; i < values; i++) data[i] = norm ? 1 + 0.1 * random.normal() : (shape.length === 1 ? 0.02 : 0.05) * random.normal();
        if (type.name === 'F32') bytes = new Uint8Array(data.buffer);
        else if (type.name === 'F16' || type.name === 'BF16') {
          const round = type.name === 'F16' ? f32ToF16 : f32ToBf16;
          bytes = new Uint8Array(Uint16Array.from(data, round).buffer);
        } else throw new Error(`writeRandomGguf: cannot write ${type.name} values`);
      }
      return bytes;
    };
    return { name: ggufTensorName(name), dims: [...shape].reverse(), type: type.id, byteLength: (values / type.blockSize) * type.typeSize, data: async () => make() };
  });
  return writeFile(outPath, metadata, tensors);
}
