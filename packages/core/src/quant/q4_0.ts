import { QUANT_BLOCK } from '../backend/types.js';
import { f16Lookup, f32ToF16 } from '../numeric/half.js';
import { checkShape } from './q8_0.js';

const fround = Math.fround;
const HALF_BLOCK = QUANT_BLOCK / 2;

/**
 * Quantizes a `[rows, cols]` f32 matrix to q4_0 exactly like ggml's `quantize_row_q4_0_ref`: per block
 * of 32, `d = max / -8` where `max` is the signed value of largest magnitude (stored as f16), and
 * `q = min(15, trunc(x * (1/d) + 8.5))` in f32. Byte `j` of a block holds value `j` in its low nibble
 * and value `j + 16` in its high nibble.
 * @throws RangeError when `cols` is not a multiple of 32 or `data` has the wrong length
 */
export function quantizeQ4_0(data: Float32Array, rows: number, cols: number): { format: 'q4_0'; rows: number; cols: number; scales: Uint16Array; quants: Uint8Array } {
  checkShape('q4_0', data, rows, cols);
  const blocks = (rows * cols) / QUANT_BLOCK;
  const scales = new Uint16Array(blocks);
  const quants = new Uint8Array(blocks * HALF_BLOCK);
  quantizeBlocksQ4_0(data, scales, quants, 0);
  return { format: 'q4_0', rows, cols, scales, quants };
}

/** Quantizes `data.length / 32` consecutive blocks into `scales` / `quants` starting at block `firstBlock`. */
export function quantizeBlocksQ4_0(data: Float32Array, scales: Uint16Array, quants: Uint8Array, firstBlock: number): void {
  const blocks = data.length / QUANT_BLOCK;
  for (let b = 0; b < blocks; b++) {
    const base = b * QUANT_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QUANT_BLOCK; j++) {
      const v = data[base + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fround(max / -8);
    const id = d ? fround(1 / d) : 0;
    scales[firstBlock + b] = f32ToF16(d);
    const out = (firstBlock + b) * HALF_BLOCK;
    for (let j = 0; j < HALF_BLOCK; j++) {
      const x0 = fround(data[base + j]! * id);
      const x1 = fround(data[base + HALF_BLOCK + j]! * id);
      // x * (1/d) + 8.5 lies in [0.5, 16.5] or is NaN: `| 0` truncates it as Math.trunc did (NaN to 0,
      // which the old `|` stored too), 1.2-1.4x faster over a model load.
      quants[out + j] = Math.min(15, fround(x0 + 8.5) | 0) | (Math.min(15, fround(x1 + 8.5) | 0) << 4);
    }
  }
}

/** Expands q4_0 row `row` (of `cols` values) into `out` (length `cols`). */
export function dequantizeQ4_0Row(scales: Uint16Array, quants: Uint8Array, cols: number, row: number, out: Float32Array): void {
  const table = f16Lookup();
  const blocksPerRow = cols / QUANT_BLOCK;
  for (let b = 0; b < blocksPerRow; b++) {
    const block = row * blocksPerRow + b;
    const d = table[scales[block]!]!;
    const base = block * HALF_BLOCK;
    const o = b * QUANT_BLOCK;
    for (let j = 0; j < HALF_BLOCK; j++) {
      const byte = quants[base + j]!;
      out[o + j] = d * ((byte & 0x0f) - 8);
      out[o + j + HALF_BLOCK] = d * ((byte >>> 4) - 8);
    }
  }
}
