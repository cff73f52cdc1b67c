import { Q4_K_BLOCK_BYTES, QK_K, QUANT_BLOCK, type HostWeight } from '../backend/types.js';
import { bf16Lookup, f16Lookup } from '../numeric/half.js';
import { dequantizeQ4_0Row } from './q4_0.js';
import { dequantizeQ4_KRow } from './q4_k.js';
import { dequantizeQ8_0Row } from './q8_0.js';

/** Expands row `row` of a host weight of any format into `out` (length `weight.cols`), as f32. */
export function dequantizeRow(weight: HostWeight, row: number, out: Float32Array): void {
  const { cols } = weight;
  switch (weight.format) {
    case 'f32':
      out.set(weight.data.subarray(row * cols, (row + 1) * cols));
      return;
    case 'f16':
    case 'bf16': {
      const table = weight.format === 'f16' ? f16Lookup() : bf16Lookup();
      const data = weight.data;
      const base = row * cols;
      for (let i = 0; i < cols; i++) out[i] = table[data[base + i]!]!;
      return;
    }
    case 'q8_0':
      dequantizeQ8_0Row(weight.scales, weight.quants, cols, row, out);
      return;
    case 'q4_0':
      dequantizeQ4_0Row(weight.scales, weight.quants, cols, row, out);
      return;
    case 'q4_k':
      dequantizeQ4_KRow(weight.blocks, cols, row, out);
      return;
  }
}

/** Expands a whole host weight to a row-major f32 matrix. */
export function dequantize(weight: HostWeight): Float32Array {
  const out = new Float32Array(weight.rows * weight.cols);
  for (let r = 0; r < weight.rows; r++) dequantizeRow(weight, r, out.subarray(r * weight.cols, (r + 1) * weight.cols));
  return out;
}

/** Bytes of a host weight's payload (data, scales plus quants, or q4_k's blocks). */
export function hostWeightBytes(weight: HostWeight): number {
  if (weight.format === 'q4_k') return weight.blocks.byteLength;
  return weight.format === 'q8_0' || weight.format === 'q4_0'
    ? weight.scales.byteLength + weight.quants.byteLength
    : weight.data.byteLength;
}

/**
 * Checks that a host weight's arrays match its shape and format.
 * @throws RangeError naming the weight and the mismatch
 */
export function validateHostWeight(weight: HostWeight, name: string): void {
  const { rows, cols } = weight;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new RangeError(`weight '${name}': invalid shape [${rows}, ${cols}]`);
  }
  const n = rows * cols;
  switch (weight.format) {
    case 'f32':
      if (!(weight.data instanceof Float32Array) || weight.data.length !== n) throw new RangeError(`weight '${name}': f32 data must be a Float32Array of ${n} values, got ${weight.data?.length}`);
      return;
    case 'f16':
    case 'bf16':
      if (!(weight.data instanceof Uint16Array) || weight.data.length !== n) throw new RangeError(`weight '${name}': ${weight.format} data must be a Uint16Array of ${n} values, got ${weight.data?.length}`);
      return;
    case 'q8_0':
    case 'q4_0': {
      if (cols % QUANT_BLOCK !== 0) throw new RangeError(`weight '${name}': ${weight.format} needs cols to be a multiple of ${QUANT_BLOCK}, got ${cols}`);
      const blocks = n / QUANT_BLOCK;
      const quantBytes = weight.format === 'q8_0' ? n : n / 2;
      if (!(weight.scales instanceof Uint16Array) || weight.scales.length !== blocks) throw new RangeError(`weight '${name}': ${weight.format} needs ${blocks} scales, got ${weight.scales?.length}`);
      const want = weight.format === 'q8_0' ? Int8Array : Uint8Array;
      if (!(weight.quants instanceof want) || weight.quants.length !== quantBytes) throw new RangeError(`weight '${name}': ${weight.format} needs ${quantBytes} quant bytes (${want.name}), got ${weight.quants?.length}`);
      return;
    }
    case 'q4_k': {
      if (cols % QK_K !== 0) throw new RangeError(`weight '${name}': q4_k needs cols to be a multiple of ${QK_K}, got ${cols}`);
      const bytes = (n / QK_K) * Q4_K_BLOCK_BYTES;
      if (!(weight.blocks instanceof Uint8Array) || weight.blocks.length !== bytes) throw new RangeError(`weight '${name}': q4_k needs ${bytes} block bytes (Uint8Array), got ${weight.blocks?.length}`);
      return;
    }
    default:
      throw new RangeError(`weight '${name}': unknown format '${(weight as { format: string }).format}'`);
  }
}

/**
 * `sum_k row_n(weight)[k] * x[xBase + k]` in float64, widening each value on the fly: what
 * {@link dequantizeRow} followed by a dot product gives, in one pass (the single-token case, where
 * widening a row to reuse it across tokens buys nothing).
 */
export function rowDot(weight: HostWeight, n: number, x: Float32Array, xBase: number): number {
  const { cols } = weight;
  let acc = 0;
  switch (weight.format) {
    case 'f32': {
      const data = weight.data;
      const base = n * cols;
      for (let k = 0; k < cols; k++) acc += data[base + k]! * x[xBase + k]!;
      return acc;
    }
    case 'f16':
    case 'bf16': {
      const table = weight.format === 'f16' ? f16Lookup() : bf16Lookup();
      const data = weight.data;
      const base = n * cols;
      for (let k = 0; k < cols; k++) acc += table[data[base + k]!]! * x[xBase + k]!;
      return acc;
    }
    case 'q8_0': {
      const table = f16Lookup();
      const { scales, quants } = weight;
      const blocksPerRow = cols / QUANT_BLOCK;
      for (let b = 0; b < blocksPerRow; b++) {
        const block = n * blocksPerRow + b;
        const qBase = block * QUANT_BLOCK;
        const xb = xBase + b * QUANT_BLOCK;
        let s = 0;
        for (let j = 0; j < QUANT_BLOCK; j++) s += quants[qBase + j]! * x[xb + j]!;
        acc += table[scales[block]!]! * s;
      }
      return acc;
    }
    case 'q4_0': {
      const table = f16Lookup();
      const { scales, quants } = weight;
      const blocksPerRow = cols / QUANT_BLOCK;
      const half = QUANT_BLOCK / 2;
      for (let b = 0; b < blocksPerRow; b++) {
        const block = n * blocksPerRow + b;
        const qBase = block * half;
        const xb = xBase + b * QUANT_BLOCK;
        let s = 0;
        for (let j = 0; j < half; j++) {
          const byte = quants[qBase + j]!;
          s += ((byte & 0x0f) - 8) * x[xb + j]! + ((byte >>> 4) - 8) * x[xb + j + half]!;
        }
        acc += table[scales[block]!]! * s;
      }
      return acc;
    }
    case 'q4_k': {
      // Widened row by row: the f32 values are what dequantizeRow gives, the sum is float64.
      const row = rowScratch(cols);
      dequantizeQ4_KRow(weight.blocks, cols, n, row);
      for (let k = 0; k < cols; k++) acc += row[k]! * x[xBase + k]!;
      return acc;
    }
  }
}

let scratch = new Float32Array(0);

/** A reusable f32 row of at least `n` values (rowDot runs once per output, so it does not allocate each time). */
function rowScratch(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}
