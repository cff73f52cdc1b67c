// Writes a Hugging Face Qwen2 checkpoint as a GGUF file (the format llama.cpp reads), so that the
// llama.cpp comparison runs on exactly the weights we run: every matrix goes through core's own
// conversion (`toHostWeight`: the same code `Qwen2.load` uses), and q8_0 / q4_0 blocks are ggml's
// block types bit for bit (core quantizes with ggml's rounding; only the interleaving differs: ggml
// keeps each block's f16 scale in front of its quants, we keep scales apart).
//
// Written from the GGUF spec (ggml/docs/gguf.md) and llama.cpp's tensor names for the qwen2
// architecture (NEOX rope: Q/K are not permuted, unlike llama). Norms and biases are f32, as in
// llama.cpp's own conversions; a matrix whose rows are not whole 32-value blocks keeps its checkpoint
// format under q8_0/q4_0, as in core (llama.cpp takes files of mixed types). Tensors are streamed one at a time: memory stays near the largest tensor.
import { closeSync, openSync, writeSync } from 'node:fs';
import { nativeFormat, toHostWeight } from '@qwen2-ts/core';
import { openModel } from '@qwen2-ts/loader';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;

/** ggml tensor types, bytes per block and values per block. */
const GGML_TYPES = {
  f32: { id: 0, blockBytes: 4, blockValues: 1 },
  f16: { id: 1, blockBytes: 2, blockValues: 1 },
  q4_0: { id: 2, blockBytes: 18, blockValues: 32 },
  q8_0: { id: 8, blockBytes: 34, blockValues: 32 },
  bf16: { id: 30, blockBytes: 2, blockValues: 1 },
};
/** llama_ftype of a file whose matrices are all of one format (general.file_type). */
const FILE_TYPES = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 };
/** GGUF metadata value types. */
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 };
/** llama.cpp token types. */
const TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5;

/** Grows a byte buffer for the header, metadata and tensor table. */
class ByteSink {
  constructor() { this.buf = new Uint8Array(1 << 20); this.view = new DataView(this.buf.buffer); this.length = 0; }
  reserve(n) {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next; this.view = new DataView(next.buffer);
  }
  u32(v) { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v) { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  u64(v) { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  f32(v) { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  bool(v) { this.reserve(1); this.buf[this.length++] = v ? 1 : 0; }
  string(s) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  padTo(alignment) { const n = (alignment - (this.length % alignment)) % alignment; this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  bytes() { return this.buf.subarray(0, this.length); }
}

/** One metadata entry: key, then type-tagged value (arrays of u32/i32/string). */
function writeKV(sink, key, type, value, elementType) {
  sink.string(key);
  sink.u32(type);
  if (type === T.array) {
    sink.u32(elementType);
    sink.u64(value.length);
    const put = elementType === T.string ? (v) => sink.string(v) : elementType === T.i32 ? (v) => sink.i32(v) : (v) => sink.u32(v);
    for (const v of value) put(v);
    return;
  }
  ({ [T.u32]: () => sink.u32(value), [T.i32]: () => sink.i32(value), [T.f32]: () => sink.f32(value), [T.bool]: () => sink.bool(value), [T.string]: () => sink.string(value) })[type]();
}

/** llama.cpp's name for a Hugging Face Qwen2 tensor name. */
export function ggufTensorName(hfName) {
  const fixed = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
  if (fixed[hfName]) return fixed[hfName];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const parts = {
    'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
  };
  if (!m || !parts[m[2]]) throw new Error(`gguf: no llama.cpp name for tensor '${hfName}'`);
  return `blk.${m[1]}.${parts[m[2]]}`;
}

/**
 * The tokenizer metadata llama.cpp's BPE vocabulary needs, from Hugging Face's tokenizer.json, padded to
 * the model's vocab size with unused `[PADn]` tokens the way llama.cpp's converter pads it.
 */
function tokenizerEntries(tokenizerJson, vocabSize) {
  const t = JSON.parse(tokenizerJson);
  if (t.model?.type !== 'BPE') throw new Error(`gguf: expected a BPE tokenizer.json, got model type ${t.model?.type}`);
  const tokens = new Array(vocabSize);
  const types = new Array(vocabSize).fill(TOKEN_UNUSED);
  for (const [token, id] of Object.entries(t.model.vocab)) if (id < vocabSize) { tokens[id] = token; types[id] = TOKEN_NORMAL; }
  for (const a of t.added_tokens ?? []) if (a.id < vocabSize) { tokens[a.id] = a.content; types[a.id] = a.special ? TOKEN_CONTROL : TOKEN_USER_DEFINED; }
  for (let i = 0; i < vocabSize; i++) tokens[i] ??= `[PAD${i}]`;
  const merges = t.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const id = (content) => (t.added_tokens ?? []).find((a) => a.content === content)?.id;
  return { tokens, types, merges, endOfText: id('<|endoftext|>') };
}

/** A tensor's bytes in ggml's layout: for q8_0/q4_0 each block's f16 scale goes in front of its quants. */
function ggmlBytes(host) {
  if (host.format === 'q8_0' || host.format === 'q4_0') {
    const quantBytes = host.format === 'q8_0' ? 32 : 16;
    const blocks = host.scales.length;
    const out = new Uint8Array(blocks * (2 + quantBytes));
    const quants = new Uint8Array(host.quants.buffer, host.quants.byteOffset, host.quants.byteLength);
    for (let b = 0; b < blocks; b++) {
      const o = b * (2 + quantBytes);
      out[o] = host.scales[b] & 0xff;
      out[o + 1] = host.scales[b] >> 8;
      out.set(quants.subarray(b * quantBytes, (b + 1) * quantBytes), o + 2);
    }
    return out;
  }
  return new Uint8Array(host.data.buffer, host.data.byteOffset, host.data.byteLength);
}

/**
 * Writes `modelDir` (a Hugging Face Qwen2 folder) as GGUF at `outPath` with every matrix in `format`.
 * @param {string} modelDir
 * @param {string} outPath
 * @param {{ format: 'f32'|'f16'|'bf16'|'q8_0'|'q4_0', tokenizerJson?: string, name?: string }} options
 *   tokenizerJson defaults to the folder's own tokenizer.json
 * @returns {Promise<{ bytes: number, tensors: number }>}
 */
export async function writeGguf(modelDir, outPath, { format, tokenizerJson, name = 'qwen2-ts random weights' }) {
  if (!GGML_TYPES[format]) throw new Error(`gguf: unknown format '${format}' (f32, f16, bf16, q8_0 or q4_0)`);
  const model = await openModel(modelDir);
  const fd = openSync(outPath, 'w');
  try {
    const c = model.config;
    const vocabText = tokenizerJson ?? model.tokenizerFiles.tokenizerJson;
    if (!vocabText) throw new Error(`gguf: ${modelDir} has no tokenizer.json; pass tokenizerJson`);
    const vocab = tokenizerEntries(vocabText, c.vocabSize);

    // Every tensor's ggml type and byte size, known before any is read.
    const tensors = [...model.checkpoint.tensors.entries()].map(([hfName, info]) => {
      const matrix = info.shape.length === 2;
      // As core does: a matrix whose rows are not whole 32-value blocks keeps its checkpoint format.
      const quantizable = info.shape.at(-1) % 32 === 0;
      const fmt = !matrix ? 'f32' : quantizable || !format.startsWith('q') ? format : nativeFormat(info.dtype, hfName);
      const type = GGML_TYPES[fmt];
      const values = info.shape.reduce((a, b) => a * b, 1);
      return { hfName, info, fmt, type, name: ggufTensorName(hfName), bytes: (values / type.blockValues) * type.blockBytes };
    });

    const sink = new ByteSink();
    const kvs = [
      ['general.architecture', T.string, 'qwen2'],
      ['general.name', T.string, name],
      ['general.file_type', T.u32, FILE_TYPES[format]],
      ['general.quantization_version', T.u32, 2],
      ['general.alignment', T.u32, ALIGNMENT],
      ['qwen2.context_length', T.u32, c.maxPositionEmbeddings],
      ['qwen2.embedding_length', T.u32, c.hiddenSize],
      ['qwen2.feed_forward_length', T.u32, c.intermediateSize],
      ['qwen2.block_count', T.u32, c.numHiddenLayers],
      ['qwen2.attention.head_count', T.u32, c.numAttentionHeads],
      ['qwen2.attention.head_count_kv', T.u32, c.numKeyValueHeads],
      ['qwen2.rope.freq_base', T.f32, c.ropeTheta],
      ['qwen2.attention.layer_norm_rms_epsilon', T.f32, c.rmsNormEps],
      ['tokenizer.ggml.model', T.string, 'gpt2'],
      ['tokenizer.ggml.pre', T.string, 'qwen2'],
      ['tokenizer.ggml.tokens', T.array, vocab.tokens, T.string],
      ['tokenizer.ggml.token_type', T.array, vocab.types, T.i32],
      ['tokenizer.ggml.merges', T.array, vocab.merges, T.string],
      ['tokenizer.ggml.add_bos_token', T.bool, false],
    ];
    if (vocab.endOfText !== undefined) {
      kvs.push(['tokenizer.ggml.bos_token_id', T.u32, vocab.endOfText], ['tokenizer.ggml.eos_token_id', T.u32, vocab.endOfText], ['tokenizer.ggml.padding_token_id', T.u32, vocab.endOfText]);
    }
    sink.u32(GGUF_MAGIC);
    sink.u32(GGUF_VERSION);
    sink.u64(tensors.length);
    sink.u64(kvs.length);
    for (const [key, type, value, elementType] of kvs) writeKV(sink, key, type, value, elementType);
    let offset = 0;
    for (const t of tensors) {
      sink.string(t.name);
      sink.u32(t.info.shape.length);
      for (const d of [...t.info.shape].reverse()) sink.u64(d); // ggml lists the fastest-varying dimension first
      sink.u32(t.type.id);
      sink.u64(offset);
      t.offset = offset;
      offset += Math.ceil(t.bytes / ALIGNMENT) * ALIGNMENT;
    }
    sink.padTo(ALIGNMENT);
    writeSync(fd, sink.bytes());
    let written = sink.length;

    const zeros = new Uint8Array(ALIGNMENT);
    for (const t of tensors) {
      const host = toHostWeight(await model.checkpoint.read(t.hfName), t.info.dtype, t.info.shape, t.fmt, t.hfName);
      const bytes = ggmlBytes(host);
      if (bytes.byteLength !== t.bytes) throw new Error(`gguf: ${t.hfName} converted to ${bytes.byteLength} bytes, expected ${t.bytes}`);
      written += writeSync(fd, bytes);
      written += writeSync(fd, zeros, 0, (ALIGNMENT - (t.bytes % ALIGNMENT)) % ALIGNMENT);
    }
    return { bytes: written, tensors: tensors.length };
  } finally {
    closeSync(fd);
    await model.close();
  }
}
