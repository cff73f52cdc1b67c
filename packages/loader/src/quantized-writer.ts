import { AWQ_PACK_ORDER } from './quantized-checkpoint.js';
import type { TensorToWrite } from './safetensors-writer.js';

/**
 * One linear layer's quantized values, unpacked: weight `[o, i]` is `scale * (q - zero)` of the group of
 * input column i. For tests and benchmarks that write AWQ or GPTQ checkpoints.
 */
export interface QuantizedLinear {
  /** Output rows and input columns of the weight (`nn.Linear.weight`'s shape). */
  rows: number;
  cols: number;
  bits: 2 | 4 | 8;
  /** `q[o * cols + i]`, each in 0 .. 2^bits - 1. */
  q: Uint8Array;
  /** Group of each input column; default consecutive groups of `ceil(cols / groups)` columns. */
  group?: Int32Array;
  groups: number;
  /** `zeros[g * rows + o]`, each in 0 .. 2^bits - 1 (as the dequantization uses it). */
  zeros: Uint8Array;
  /** `scales[g * rows + o]` as f16 bit patterns. */
  scales: Uint16Array;
}

/**
 * Packs a layer as AutoGPTQ writes it: `qweight` int32 [cols * bits / 32, rows] (input rows packed
 * from the low bits up), `qzeros` int32 [groups, rows * bits / 32], `scales` f16 [groups, rows] and
 * `g_idx` int32 [cols]. `zeroOffset` 1 stores each zero minus one (the original GPTQ format), 0 as is
 * (`gptq_v2`).
 * @returns the tensors, named by suffix (`qweight`, `qzeros`, `scales`, `g_idx`)
 */
export function packGptqLinear(l: QuantizedLinear, zeroOffset: 0 | 1 = 1): Record<string, TensorToWrite> {
  const pack = 32 / l.bits, mask = (1 << l.bits) - 1;
  const qweight = new Int32Array((l.cols / pack) * l.rows);
  for (let i = 0; i < l.cols; i++) {
    for (let o = 0; o < l.rows; o++) qweight[((i / pack) | 0) * l.rows + o]! |= l.q[o * l.cols + i]! << (l.bits * (i % pack));
  }
  const qzeros = new Int32Array(l.groups * (l.rows / pack));
  for (let g = 0; g < l.groups; g++) {
    for (let o = 0; o < l.rows; o++) qzeros[g * (l.rows / pack) + ((o / pack) | 0)]! |= ((l.zeros[g * l.rows + o]! - zeroOffset) & mask) << (l.bits * (o % pack));
  }
  return {
    qweight: int32Tensor(qweight, [l.cols / pack, l.rows]),
    qzeros: int32Tensor(qzeros, [l.groups, l.rows / pack]),
    scales: { dtype: 'F16', shape: [l.groups, l.rows], data: new Uint8Array(l.scales.slice().buffer) },
    g_idx: int32Tensor(groupOf(l), [l.cols]),
  };
}

/**
 * Packs a 4-bit layer as AutoAWQ's GEMM layout writes it: `qweight` int32 [cols, rows / 8] and `qzeros`
 * int32 [groups, rows / 8], eight output columns per word in {@link AWQ_PACK_ORDER}, `scales` f16
 * [groups, rows]. AWQ has no `g_idx`: groups are consecutive input columns.
 * @returns the tensors, named by suffix (`qweight`, `qzeros`, `scales`)
 */
export function packAwqLinear(l: QuantizedLinear): Record<string, TensorToWrite> {
  if (l.bits !== 4) throw new Error(`AWQ packs 4-bit values, got ${l.bits} bits`);
  const words = l.rows / 8;
  const packWord = (value: (o: number) => number, c: number) => {
    let w = 0;
    for (let k = 0; k < 8; k++) w |= value(c * 8 + AWQ_PACK_ORDER[k]!) << (4 * k);
    return w;
  };
  const qweight = new Int32Array(l.cols * words);
  for (let i = 0; i < l.cols; i++) for (let c = 0; c < words; c++) qweight[i * words + c] = packWord((o) => l.q[o * l.cols + i]!, c);
  const qzeros = new Int32Array(l.groups * words);
  for (let g = 0; g < l.groups; g++) for (let c = 0; c < words; c++) qzeros[g * words + c] = packWord((o) => l.zeros[g * l.rows + o]!, c);
  return {
    qweight: int32Tensor(qweight, [l.cols, words]),
    qzeros: int32Tensor(qzeros, [l.groups, words]),
    scales: { dtype: 'F16', shape: [l.groups, l.rows], data: new Uint8Array(l.scales.slice().buffer) },
  };
}

function groupOf(l: QuantizedLinear): Int32Array {
  if (l.group) return l.group;
  const size = Math.ceil(l.cols / l.groups);
  return Int32Array.from({ length: l.cols }, (_, i) => Math.floor(i / size));
}

function int32Tensor(values: Int32Array, shape: number[]): TensorToWrite {
  return { dtype: 'I32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}
