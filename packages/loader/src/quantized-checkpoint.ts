import { checkTensorRange, type Checkpoint, type CheckpointTensor } from './checkpoint.js';
import { SafetensorsError } from './errors.js';
import type { QuantizationConfig } from './quantization-config.js';

/** What a tensor of a {@link dequantizingCheckpoint} was dequantized from. */
export interface QuantizedOrigin {
  /** AWQ or GPTQ (a `quantization_config`), or a GGUF file's block type. */
  method: QuantizationConfig['method'] | 'gguf';
  /** Bits per weight: 2..8 for AWQ / GPTQ; for GGUF the block type's nominal bits (Q4_K 4, Q6_K 6, ...). */
  bits: number;
  /** Input columns per scale (the whole row when the checkpoint has one group per output row); a GGUF block's values. */
  groupSize: number;
  /** For GGUF: ggml's name of the block type ('Q4_0', 'Q4_K', 'Q6_K', ...). */
  format?: string;
  /**
   * Whether {@link Checkpoint.readQuantized} can give this tensor as integers, zero points and scales
   * (AWQ, GPTQ, GGUF Q4_0 and Q8_0); false for block types with minimums or sub-block scales (GGUF's
   * K-quants, Q4_1, Q5_x, IQ4_x), which are read as their float values.
   */
  integers: boolean;
}

/**
 * AutoAWQ's GEMM layout packs eight output columns into an int32 in this order: the 4 bits at shift
 * 4 * k hold output column `8 * c + AWQ_PACK_ORDER[k]` (AutoAWQ's `AWQ_ORDER`; its reverse order
 * `[0, 4, 1, 5, 2, 6, 3, 7]` unpacks them).
 */
export const AWQ_PACK_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

/** The packed tensors of one quantized linear layer, checked against each other when the checkpoint opens. */
interface PackedLinear {
  qweight: CheckpointTensor;
  qzeros: CheckpointTensor;
  scales: CheckpointTensor;
  gIdx?: CheckpointTensor;
  /** Output rows and input columns of the weight they make ([rows, cols], as `nn.Linear.weight`). */
  rows: number;
  cols: number;
  groups: number;
  /** Input columns per group (all of them for `group_size: -1`); without `g_idx`, column i is in group floor(i / groupSize). */
  groupSize: number;
}

/** The packed tensors' values, read once per layer: qweight as read, the rest unpacked. */
interface PackedValues {
  qweight: Int32Array;
  /** Zero points to subtract, `[g * rows + o]` (GPTQ's offset added). */
  zeros: Int16Array;
  scales: Float32Array;
  /** Group of each input column. */
  group: Int32Array;
}

/**
 * A quantized linear layer's integers, unpacked: weight `[o, i]` is `scales[g * rows + o] * (q[o * cols + i]
 * - zeros[g * rows + o])` with `g = group[i]`. What {@link Checkpoint.readQuantized} returns, so a
 * consumer can convert the layer to another quantized format without rounding the values twice.
 */
export interface UnpackedLinear {
  rows: number;
  cols: number;
  bits: number;
  /** `q[o * cols + i]`, in 0 .. 2^bits - 1. */
  q: Uint8Array;
  /** Group of each input column. */
  group: Int32Array;
  groups: number;
  /** `zeros[g * rows + o]`: what is subtracted (AutoGPTQ's original format can make it 2^bits). */
  zeros: Int16Array;
  /** `scales[g * rows + o]`, widened exactly from the checkpoint's f16 / bf16 / f32. */
  scales: Float32Array;
}

/** Packed layers whose values are kept for further slices (read-ahead can have a few layers in flight). */
const KEPT_LAYERS = 3;

/**
 * Presents a pre-quantized checkpoint as a float one: each quantized linear layer's packed tensors
 * (`qweight`, `qzeros`, `scales`, `g_idx`) become one F32 tensor `P.weight` of shape [out, in] holding
 * exactly `scale * (q - zero)` (the value AutoAWQ's and AutoGPTQ's own dequantization computes, before
 * their rounding to f16), with {@link CheckpointTensor.quantized} saying what it came from. Every other
 * tensor (embeddings, norms, biases, layers left unquantized) passes through unchanged.
 *
 * Reads of a dequantized tensor read its packed tensors whole (a quarter of its f16 size at 4 bits) and
 * keep them for the next slices, so a caller may read it a range of rows at a time.
 * @throws {@link SafetensorsError} naming the tensor when a part is missing or its dtype or shape does
 *   not fit the others and the quantization config
 */
export function dequantizingCheckpoint(inner: Checkpoint, quantization: QuantizationConfig): Checkpoint {
  const layers = new Map<string, PackedLinear>();
  const hidden = new Set<string>();
  for (const name of inner.tensors.keys()) {
    if (!name.endsWith('.qweight')) continue;
    const prefix = name.slice(0, -'.qweight'.length);
    const layer = packedLinear(inner, prefix, quantization);
    const weightName = `${prefix}.weight`;
    if (inner.tensors.has(weightName)) throw new SafetensorsError(inner.tensors.get(weightName)!.file, `tensor '${weightName}' sits beside '${name}': a layer is either quantized or not`);
    layers.set(weightName, layer);
    for (const part of [layer.qweight, layer.qzeros, layer.scales, layer.gIdx]) if (part) hidden.add(part.name);
  }
  const tensors = new Map<string, CheckpointTensor>();
  for (const [name, t] of inner.tensors) if (!hidden.has(name)) tensors.set(name, t);
  for (const [name, l] of layers) {
    tensors.set(name, {
      name, dtype: 'F32', shape: [l.rows, l.cols], file: l.qweight.file, byteLength: l.rows * l.cols * 4,
      quantized: { method: quantization.method, bits: quantization.bits, groupSize: l.groupSize, integers: true },
    });
  }

  const kept = new Map<string, Promise<PackedValues>>();
  const values = (name: string, layer: PackedLinear, signal?: AbortSignal): Promise<PackedValues> => {
    let p = kept.get(name);
    if (p) {
      kept.delete(name);
    } else {
      p = readPacked(inner, layer, quantization, signal);
      // A failed read (an abort, a truncated file) must not stay cached for the next caller.
      p.catch(() => kept.get(name) === p && kept.delete(name));
    }
    kept.set(name, p);
    if (kept.size > KEPT_LAYERS) kept.delete(kept.keys().next().value!);
    return p;
  };

  return {
    tensors,
    async read(name, options = {}) {
      const layer = layers.get(name);
      if (!layer) return inner.read(name, options);
      const v = await values(name, layer, options.signal);
      kept.delete(name);
      return new Uint8Array(dequantizeRows(layer, v, quantization, 0, layer.rows).buffer);
    },
    async readRange(name, byteOffset, byteLength, options = {}) {
      const layer = layers.get(name);
      if (!layer) return inner.readRange(name, byteOffset, byteLength, options);
      checkTensorRange(name, byteOffset, byteLength, layer.rows * layer.cols * 4);
      const rowBytes = layer.cols * 4;
      const r0 = Math.floor(byteOffset / rowBytes);
      const r1 = Math.max(r0, Math.ceil((byteOffset + byteLength) / rowBytes));
      const v = await values(name, layer, options.signal);
      const rows = new Uint8Array(dequantizeRows(layer, v, quantization, r0, r1).buffer);
      const from = byteOffset - r0 * rowBytes;
      return from === 0 && byteLength === rows.byteLength ? rows : rows.slice(from, from + byteLength);
    },
    async readQuantized(name, options = {}) {
      const layer = layers.get(name);
      if (!layer) throw new SafetensorsError(inner.tensors.get(name)?.file ?? name, `tensor '${name}' is not a dequantized AWQ or GPTQ weight`);
      const v = await values(name, layer, options.signal);
      kept.delete(name);
      return { rows: layer.rows, cols: layer.cols, bits: quantization.bits, q: unpackRows(layer, v, quantization, 0, layer.rows), group: v.group, groups: layer.groups, zeros: v.zeros, scales: v.scales };
    },
    close: () => inner.close(),
  };
}

/** The parts of layer `prefix`, checked against each other (shapes as AutoAWQ / AutoGPTQ write them). */
function packedLinear(inner: Checkpoint, prefix: string, q: QuantizationConfig): PackedLinear {
  const part = (suffix: string, dtypes: readonly string[], optional = false): CheckpointTensor | undefined => {
    const t = inner.tensors.get(`${prefix}.${suffix}`);
    if (!t) {
      if (optional) return undefined;
      throw new SafetensorsError(inner.tensors.get(`${prefix}.qweight`)!.file, `tensor '${prefix}.${suffix}' is missing: a ${q.method.toUpperCase()} layer needs qweight, qzeros and scales`);
    }
    if (!dtypes.includes(t.dtype)) throw new SafetensorsError(t.file, `tensor '${t.name}' is ${t.dtype}; ${q.method.toUpperCase()} stores it as ${dtypes.join(' or ')}`);
    if (t.shape.length !== (suffix === 'g_idx' ? 1 : 2)) throw new SafetensorsError(t.file, `tensor '${t.name}' has shape [${t.shape.join(', ')}]; expected ${suffix === 'g_idx' ? 1 : 2} dimensions`);
    return t;
  };
  const qweight = part('qweight', ['I32'])!;
  const qzeros = part('qzeros', ['I32'])!;
  const scales = part('scales', ['F16', 'BF16', 'F32'])!;
  const gIdx = q.method === 'gptq' ? part('g_idx', ['I32', 'I64'], true) : undefined;
  const pack = 32 / q.bits;
  const [a, b] = qweight.shape as [number, number];
  // GPTQ packs `pack` input rows per int32 ([in / pack, out]); AWQ packs output columns ([in, out / pack]).
  const rows = q.method === 'gptq' ? b : b * pack;
  const cols = q.method === 'gptq' ? a * pack : a;
  const expect = (t: CheckpointTensor, shape: number[], why: string) => {
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new SafetensorsError(t.file, `tensor '${t.name}' has shape [${t.shape.join(', ')}]; expected [${shape.join(', ')}] (${why})`);
    }
  };
  const size = q.groupSize ?? cols;
  const layout = `${q.method.toUpperCase()} ${q.bits}-bit, a [${rows}, ${cols}] weight, ${q.groupSize ? `groups of ${size}` : 'one group per row'}`;
  if (rows % pack !== 0) throw new SafetensorsError(qweight.file, `tensor '${qweight.name}': ${rows} output rows do not pack ${pack} to an int32 zero word (${layout})`);
  // AutoGPTQ makes ceil(in / group) groups; AutoAWQ needs whole groups.
  const groups = q.method === 'gptq' ? Math.ceil(cols / size) : cols / size;
  if (!Number.isInteger(groups)) throw new SafetensorsError(qweight.file, `tensor '${qweight.name}': ${cols} input columns are not whole groups (${layout})`);
  expect(scales, [groups, rows], layout);
  expect(qzeros, [groups, rows / pack], layout);
  if (gIdx) expect(gIdx, [cols], layout);
  return { qweight, qzeros, scales, ...(gIdx ? { gIdx } : {}), rows, cols, groups, groupSize: size };
}

/** Reads a layer's packed tensors and decodes scales and group indices. */
async function readPacked(inner: Checkpoint, layer: PackedLinear, q: QuantizationConfig, signal?: AbortSignal): Promise<PackedValues> {
  const opts = signal ? { signal } : {};
  const [qw, qz, sc, gi] = await Promise.all([
    inner.read(layer.qweight.name, opts), inner.read(layer.qzeros.name, opts), inner.read(layer.scales.name, opts),
    layer.gIdx ? inner.read(layer.gIdx.name, opts) : undefined,
  ]);
  const group = new Int32Array(layer.cols);
  if (gi) {
    const wide = layer.gIdx!.dtype === 'I64';
    const view = new DataView(gi.buffer, gi.byteOffset, gi.byteLength);
    for (let i = 0; i < layer.cols; i++) {
      const g = wide ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true);
      if (!(g >= 0 && g < layer.groups)) throw new SafetensorsError(layer.gIdx!.file, `tensor '${layer.gIdx!.name}' puts input column ${i} in group ${g}, outside the ${layer.groups} groups of '${layer.scales.name}'`);
      group[i] = g;
    }
  } else {
    for (let i = 0; i < layer.cols; i++) group[i] = Math.floor(i / layer.groupSize);
  }
  return { qweight: int32s(qw), zeros: unpackZeros(layer, int32s(qz), q), scales: floats(sc, layer.scales.dtype), group };
}

/**
 * Zero points `[g * rows + o]`: GPTQ packs eight (at 4 bits) output columns per word from the low bits,
 * AWQ in {@link AWQ_PACK_ORDER}. GPTQ's `zeroOffset` is added after masking to the bit width, as
 * AutoGPTQ's dequantization does (`zeros + 1`).
 */
function unpackZeros(layer: PackedLinear, qzeros: Int32Array, q: QuantizationConfig): Int16Array {
  const { rows, groups } = layer;
  const bits = q.bits, pack = 32 / bits, mask = (1 << bits) - 1, words = rows / pack;
  const zeros = new Int16Array(groups * rows);
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < words; c++) {
      const w = qzeros[g * words + c]!;
      for (let k = 0; k < pack; k++) {
        const o = c * pack + (q.method === 'awq' ? AWQ_PACK_ORDER[k]! : k);
        zeros[g * rows + o] = ((w >>> (bits * k)) & mask) + q.zeroOffset;
      }
    }
  }
  return zeros;
}

/**
 * The integers of weight rows r0 .. r1 - 1 (`[o - r0][i]`). GPTQ packs `pack` input columns per word
 * from the low bits ([cols / pack, rows]); AWQ packs output rows in {@link AWQ_PACK_ORDER} ([cols, rows / 8]).
 */
function unpackRows(layer: PackedLinear, v: PackedValues, q: QuantizationConfig, r0: number, r1: number): Uint8Array {
  const { rows, cols } = layer;
  const { qweight } = v;
  const bits = q.bits, pack = 32 / bits, mask = (1 << bits) - 1;
  const out = new Uint8Array((r1 - r0) * cols);
  // Stores go four bytes at a time where the rows allow (little-endian words, as typed arrays are on
  // every engine this runs on): GPTQ's layers of 0.5B unpack in 77 ms this way, 95 ms with byte stores.
  const words = cols % 4 === 0 ? new Uint32Array(out.buffer) : undefined;
  if (q.method === 'gptq') {
    // Each word is read once and gives `pack` consecutive values of one output row.
    for (let p = 0; p < cols / pack; p++) {
      const from = p * rows;
      for (let o = r0, at = p * pack; o < r1; o++, at += cols) {
        const w = qweight[from + o]!;
        if (bits === 4 && words) {
          // Nibbles 0..3 and 4..7 of w spread into the bytes of two words.
          const lo = w & 0xffff, hi = w >>> 16;
          words[at >>> 2] = (lo & 0xf) | ((lo & 0xf0) << 4) | ((lo & 0xf00) << 8) | ((lo & 0xf000) << 12);
          words[(at >>> 2) + 1] = (hi & 0xf) | ((hi & 0xf0) << 4) | ((hi & 0xf00) << 8) | ((hi & 0xf000) << 12);
        } else {
          for (let j = 0; j < pack; j++) out[at + j] = (w >>> (bits * j)) & mask;
        }
      }
    }
    return out;
  }
  // AWQ: word c of input column i holds rows 8c + AWQ_PACK_ORDER[k] at nibble k. Input columns go in
  // tiles, so the tile's words (one per column and cache line of 16 words) stay in cache while every
  // group of eight rows takes its word from them (7B's 18944 columns overflow L2 otherwise).
  const perColumn = rows / pack, c0 = (r0 / pack) | 0, c1 = Math.ceil(r1 / pack);
  const at = new Int32Array(pack);
  for (let i0 = 0; i0 < cols; i0 += COLUMN_TILE) {
    const i1 = Math.min(cols, i0 + COLUMN_TILE);
    for (let c = c0; c < c1; c++) {
      let inside = true;
      for (let k = 0; k < pack; k++) {
        const o = c * pack + AWQ_PACK_ORDER[k]!;
        at[k] = (o - r0) * cols;
        inside &&= o >= r0 && o < r1;
      }
      if (inside && words) {
        // Four input columns at a time: nibble k of their four words makes one word of row k's bytes.
        const a0 = at[0]! >>> 2, a1 = at[1]! >>> 2, a2 = at[2]! >>> 2, a3 = at[3]! >>> 2, a4 = at[4]! >>> 2, a5 = at[5]! >>> 2, a6 = at[6]! >>> 2, a7 = at[7]! >>> 2;
        for (let i = i0, word = i0 * perColumn + c; i < i1; i += 4, word += 4 * perColumn) {
          const w0 = qweight[word]!, w1 = qweight[word + perColumn]!, w2 = qweight[word + 2 * perColumn]!, w3 = qweight[word + 3 * perColumn]!;
          const x = i >>> 2;
          // Bytes of the four words' nibble k, for k = 0..7: (w >>> 4k) & 15 from each word.
          const e0 = w0 & 0x0f0f0f0f, e1 = w1 & 0x0f0f0f0f, e2 = w2 & 0x0f0f0f0f, e3 = w3 & 0x0f0f0f0f;
          const f0 = (w0 >>> 4) & 0x0f0f0f0f, f1 = (w1 >>> 4) & 0x0f0f0f0f, f2 = (w2 >>> 4) & 0x0f0f0f0f, f3 = (w3 >>> 4) & 0x0f0f0f0f;
          words[a0 + x] = (e0 & 15) | ((e1 & 15) << 8) | ((e2 & 15) << 16) | ((e3 & 15) << 24);
          words[a1 + x] = (f0 & 15) | ((f1 & 15) << 8) | ((f2 & 15) << 16) | ((f3 & 15) << 24);
          words[a2 + x] = ((e0 >>> 8) & 15) | (((e1 >>> 8) & 15) << 8) | (((e2 >>> 8) & 15) << 16) | (((e3 >>> 8) & 15) << 24);
          words[a3 + x] = ((f0 >>> 8) & 15) | (((f1 >>> 8) & 15) << 8) | (((f2 >>> 8) & 15) << 16) | (((f3 >>> 8) & 15) << 24);
          words[a4 + x] = ((e0 >>> 16) & 15) | (((e1 >>> 16) & 15) << 8) | (((e2 >>> 16) & 15) << 16) | (((e3 >>> 16) & 15) << 24);
          words[a5 + x] = ((f0 >>> 16) & 15) | (((f1 >>> 16) & 15) << 8) | (((f2 >>> 16) & 15) << 16) | (((f3 >>> 16) & 15) << 24);
          words[a6 + x] = (e0 >>> 24) | ((e1 >>> 24) << 8) | ((e2 >>> 24) << 16) | ((e3 >>> 24) << 24);
          words[a7 + x] = (f0 >>> 24) | ((f1 >>> 24) << 8) | ((f2 >>> 24) << 16) | ((f3 >>> 24) << 24);
        }
        continue;
      }
      for (let k = 0; k < pack; k++) {
        const o = c * pack + AWQ_PACK_ORDER[k]!;
        if (o < r0 || o >= r1) continue;
        for (let i = i0; i < i1; i++) out[at[k]! + i] = (qweight[i * perColumn + c]! >>> (4 * k)) & mask;
      }
    }
  }
  return out;
}

/** Input columns per tile of the AWQ unpacking (a multiple of 4): 512 columns' words are 32 KB of lines. */
const COLUMN_TILE = 512;

/** Rows r0 .. r1 - 1 of the weight ([out, in], row-major, f32): `scale * (q - zero)` of each value's group. */
function dequantizeRows(layer: PackedLinear, v: PackedValues, q: QuantizationConfig, r0: number, r1: number): Float32Array {
  const { rows, cols } = layer;
  const { zeros, scales, group } = v;
  const ints = unpackRows(layer, v, q, r0, r1);
  const out = new Float32Array(ints.length);
  for (let o = r0; o < r1; o++) {
    const at = (o - r0) * cols;
    for (let i = 0; i < cols; i++) {
      const k = group[i]! * rows + o;
      out[at + i] = scales[k]! * (ints[at + i]! - zeros[k]!);
    }
  }
  return out;
}

/** Little-endian int32s of a fresh buffer (the checkpoint's reads start at byte 0). */
function int32s(bytes: Uint8Array): Int32Array {
  return bytes.byteOffset % 4 === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Int32Array(bytes.slice().buffer);
}

/** A scales tensor as f32 values (f16 and bf16 widen exactly). */
function floats(bytes: Uint8Array, dtype: string): Float32Array {
  if (dtype === 'F32') return new Float32Array(bytes.slice().buffer);
  const n = bytes.byteLength / 2;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const bitsOut = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bitsOut[i] = view.getUint16(i * 2, true) << 16;
    return out;
  }
  const table = halfTable();
  for (let i = 0; i < n; i++) out[i] = table[view.getUint16(i * 2, true)]!;
  return out;
}

let halves: Float32Array | undefined;

/** Every IEEE half as an f32, by bit pattern (256 KB, built on first use: a 7B model has 50M scales). */
function halfTable(): Float32Array {
  if (halves) return halves;
  halves = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    halves[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1024 + mant) * 2 ** (exp - 25);
  }
  return halves;
}
