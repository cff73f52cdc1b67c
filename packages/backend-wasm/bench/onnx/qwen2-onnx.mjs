// Writes a Qwen2 checkpoint (safetensors folder) as an ONNX model for onnxruntime, the engine under
// transformers.js, in the form onnxruntime-genai's model builder gives LLMs for its CPU / WebAssembly
// execution provider: GroupQueryAttention with RoPE inside (cos/sin caches) and the KV cache as graph
// inputs and outputs, SimplifiedLayerNormalization (RMSNorm), the f32 embedding gathered; matrices as
// 4-bit MatMulNBits (block 32, int8 compute: accuracy_level 4) or, with `bits: 8`, as onnxruntime's
// dynamic quantization writes them (per-channel int8, DynamicQuantizeLinear + MatMulInteger). The 4-bit
// values are core's q4_0 blocks of the same checkpoint, repacked (same codes, zero point 8, f16 scales
// widened to f32), so both engines multiply by exactly the same weights (a matrix whose rows are not
// whole blocks stays f32, as core keeps it); `bits: 32` writes f32 MatMuls. Logits come for the last
// position only, as in ours. Tested by onnxruntime itself (qwen2-onnx.test.mjs).
import { openModel } from '@qwen2-ts/loader';
import { tensorNames, toHostWeight, decodeToF32 } from '@qwen2-ts/core';
import { DT, OnnxGraph } from './onnx-proto.mjs';

/** f16 bit patterns (a HostWeight's scales) as f32, by core's decoding. */
const f16ToF32 = (bits) => decodeToF32(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 'F16');

/** core's q4_0 HostWeight -> MatMulNBits' B [N, blocks, 16] (value k of a block in byte k/2, low nibble first) and f32 scales. */
function matMulNBits(host) {
  const { rows, cols, quants, scales } = host;
  const blocks = rows * (cols / 32);
  const packed = new Uint8Array(blocks * 16);
  for (let b = 0; b < blocks; b++) {
    const src = b * 16;
    for (let k = 0; k < 32; k += 2) {
      // q4_0 keeps value j in byte j's low nibble and value j + 16 in its high nibble.
      const lo = k < 16 ? quants[src + k] & 15 : quants[src + k - 16] >> 4;
      const hi = k + 1 < 16 ? quants[src + k + 1] & 15 : quants[src + k + 1 - 16] >> 4;
      packed[src + (k >> 1)] = lo | (hi << 4);
    }
  }
  return { packed, scales: f16ToF32(scales) };
}

/** core's q4_0 HostWeight -> its f32 values ((code - 8) x scale). */
function dequantizeQ4({ rows, cols, quants, scales }) {
  const out = new Float32Array(rows * cols);
  const widened = f16ToF32(scales);
  for (let b = 0; b < out.length / 32; b++) {
    const s = widened[b];
    for (let j = 0; j < 16; j++) {
      const byte = quants[b * 16 + j];
      out[b * 32 + j] = ((byte & 15) - 8) * s;
      out[b * 32 + j + 16] = ((byte >> 4) - 8) * s;
    }
  }
  return out;
}

/** Row-major [N, K] f32 -> [K, N] int8 with one scale per output channel (max |w| / 127). */
function int8Columns(w, N, K) {
  const wq = new Int8Array(K * N);
  const scales = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
    const s = max / 127 || 1;
    scales[n] = s;
    for (let k = 0; k < K; k++) wq[k * N + n] = Math.round(w[n * K + k] / s);
  }
  return { wq, scales };
}

/**
 * Reads the checkpoint in `dir` and returns the ONNX model's bytes and the shapes its caller needs.
 * @param options.bits - 4 (MatMulNBits), 8 (MatMulInteger) or 32 (f32 MatMul)
 * @param options.externalFile - initializers of 1 MiB and more go to this file (write `externalData`'s parts into it)
 * @returns {{ bytes: Uint8Array, externalData: Uint8Array[], layers: number, kvHeads: number, headDim: number, vocab: number }}
 */
export async function qwen2Onnx(dir, { maxPositions = 4096, accuracyLevel = 4, bits = 4, externalFile } = {}) {
  const opened = await openModel(dir);
  const c = opened.config;
  const read = async (name) => {
    const t = opened.checkpoint.tensors.get(name);
    return { bytes: await opened.checkpoint.read(name), dtype: t.dtype, shape: t.shape };
  };
  const vector = async (name) => {
    const t = await read(name);
    return decodeToF32(t.bytes, t.dtype);
  };
  const g = new OnnxGraph(externalFile);
  const H = c.hiddenSize, D = c.headDim, V = c.vocabSize;
  const eps = { float: c.rmsNormEps };
  const linear = async (x, name, out, bias) => {
    const t = await read(name);
    const [N, K] = t.shape;
    let y;
    if (bits === 32 || (bits === 4 && K % 32 !== 0)) {
      // f32 (and, as core does for q4_0, matrices whose rows are not whole 32-value blocks): MatMul by W^T.
      const w = decodeToF32(t.bytes, t.dtype), wt = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k];
      g.init(`${name}.f32t`, DT.FLOAT, [K, N], wt);
      y = g.node('MatMul', [x, `${name}.f32t`], [bias ? `${out}.nobias` : out]);
    } else if (bits === 4) {
      const { packed, scales } = matMulNBits(toHostWeight(t.bytes, t.dtype, t.shape, 'q4_0', name));
      g.init(`${name}.q4`, DT.UINT8, [N, K / 32, 16], packed);
      g.init(`${name}.scales`, DT.FLOAT, [N * (K / 32)], scales);
      y = g.node('MatMulNBits', [x, `${name}.q4`, `${name}.scales`], [bias ? `${out}.nobias` : out], { K, N, bits: 4, block_size: 32, accuracy_level: accuracyLevel }, 'com.microsoft');
    } else {
      // int8 as onnxruntime's dynamic quantization writes it (transformers.js' default "q8" models):
      // weights [K, N] per output channel, activations quantized per call (ORT fuses the pattern).
      const { wq, scales } = int8Columns(decodeToF32(t.bytes, t.dtype), N, K);
      g.init(`${name}.i8`, DT.INT8, [K, N], wq);
      g.init(`${name}.scales`, DT.FLOAT, [N], scales);
      const [xq, xs, xz] = g.node('DynamicQuantizeLinear', [x], [`${out}.xq`, `${out}.xs`, `${out}.xz`]);
      const acc = g.node('MatMulInteger', [xq, `${name}.i8`, xz], [`${out}.i32`]);
      const f = g.node('Cast', [acc], [`${out}.f32`], { to: DT.FLOAT });
      const scale = g.node('Mul', [xs, `${name}.scales`], [`${out}.scale`]);
      y = g.node('Mul', [f, scale], [bias ? `${out}.nobias` : out]);
    }
    if (!bias) return y;
    g.init(bias, DT.FLOAT, [N], await vector(bias));
    return g.node('Add', [y, bias], [out]);
  };
  const norm = async (x, name, out) => {
    g.init(name, DT.FLOAT, [H], await vector(name));
    return g.node('SimplifiedLayerNormalization', [x, name], [out], { axis: -1, epsilon: eps });
  };

  g.input('input_ids', DT.INT64, [1, 'sequence']);
  g.input('seqlens_k', DT.INT32, [1]);
  g.input('total_sequence_length', DT.INT32, []);
  const embed = await read(tensorNames.embed);
  // With 4 bits ours looks the embedding up in its q4_0 blocks (the tied head's): gather the same values.
  const embedF32 = bits === 4 && H % 32 === 0
    ? dequantizeQ4(toHostWeight(embed.bytes, embed.dtype, embed.shape, 'q4_0', tensorNames.embed))
    : decodeToF32(embed.bytes, embed.dtype);
  g.init('embed.f32', DT.FLOAT, [V, H], embedF32);
  let x = g.node('Gather', ['embed.f32', 'input_ids'], ['x.0'], { axis: 0 });

  // RoPE caches: position p, frequency i: theta^(-2i/D).
  const cos = new Float32Array(maxPositions * (D / 2)), sin = new Float32Array(maxPositions * (D / 2));
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < D / 2; i++) {
      const angle = p * c.ropeTheta ** (-2 * i / D);
      cos[p * (D / 2) + i] = Math.cos(angle);
      sin[p * (D / 2) + i] = Math.sin(angle);
    }
  }
  g.init('cos_cache', DT.FLOAT, [maxPositions, D / 2], cos);
  g.init('sin_cache', DT.FLOAT, [maxPositions, D / 2], sin);

  for (let i = 0; i < c.numHiddenLayers; i++) {
    const n = tensorNames.layer(i);
    g.input(`past_key.${i}`, DT.FLOAT, [1, c.numKeyValueHeads, 'past', D]);
    g.input(`past_value.${i}`, DT.FLOAT, [1, c.numKeyValueHeads, 'past', D]);
    const h = await norm(x, n.inputNorm, `l${i}.h`);
    const q = await linear(h, n.q, `l${i}.q`, n.qBias);
    const k = await linear(h, n.k, `l${i}.k`, n.kBias);
    const v = await linear(h, n.v, `l${i}.v`, n.vBias);
    const [a] = g.node('GroupQueryAttention', [q, k, v, `past_key.${i}`, `past_value.${i}`, 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
      [`l${i}.attn`, `present_key.${i}`, `present_value.${i}`],
      { num_heads: c.numAttentionHeads, kv_num_heads: c.numKeyValueHeads, do_rotary: 1, rotary_interleaved: 0, scale: { float: 1 / Math.sqrt(D) } }, 'com.microsoft');
    g.output(`present_key.${i}`, DT.FLOAT, [1, c.numKeyValueHeads, 'total', D]);
    g.output(`present_value.${i}`, DT.FLOAT, [1, c.numKeyValueHeads, 'total', D]);
    const o = await linear(a, n.o, `l${i}.o`);
    x = g.node('Add', [x, o], [`l${i}.x1`]);
    const h2 = await norm(x, n.postNorm, `l${i}.h2`);
    const gate = await linear(h2, n.gate, `l${i}.gate`);
    const up = await linear(h2, n.up, `l${i}.up`);
    const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate], [`l${i}.sig`])], [`l${i}.silu`]);
    const down = await linear(g.node('Mul', [silu, up], [`l${i}.act`]), n.down, `l${i}.down`);
    x = g.node('Add', [x, down], [`l${i}.x2`]);
  }
  g.init('last.starts', DT.INT64, [1], BigInt64Array.from([-1n]));
  g.init('last.ends', DT.INT64, [1], BigInt64Array.from([2n ** 62n]));
  g.init('last.axes', DT.INT64, [1], BigInt64Array.from([1n]));
  const last = g.node('Slice', [x, 'last.starts', 'last.ends', 'last.axes'], ['x.last']);
  const final = await norm(last, tensorNames.norm, 'x.norm');
  if (bits === 32) {
    // The head as Gemm(x, W^T) on the [V, H] matrix itself: a tied head shares the embedding's copy.
    const head = c.tieWordEmbeddings ? 'embed.f32' : g.init('lm_head.f32', DT.FLOAT, [V, H], await vector(tensorNames.lmHead));
    g.init('rows.shape', DT.INT64, [2], BigInt64Array.from([1n, BigInt(H)]));
    g.init('logits.shape', DT.INT64, [3], BigInt64Array.from([1n, 1n, BigInt(V)]));
    const flat = g.node('Reshape', [final, 'rows.shape'], ['x.rows']);
    g.node('Reshape', [g.node('Gemm', [flat, head], ['logits.rows'], { transB: 1 }), 'logits.shape'], ['logits']);
  } else {
    await linear(final, c.tieWordEmbeddings ? tensorNames.embed : tensorNames.lmHead, 'logits');
  }
  g.output('logits', DT.FLOAT, [1, 1, V]);
  await opened.close();
  return { bytes: g.encode('qwen2'), externalData: g.externalData(), layers: c.numHiddenLayers, kvHeads: c.numKeyValueHeads, headDim: D, vocab: V };
}
