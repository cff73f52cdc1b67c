import { QUANT_BLOCK, type HostWeight } from '../backend/types.js';
import { f16Lookup, f32ToF16 } from '../numeric/half.js';
import { quantizeBlocksQ4_0 } from '../quant/q4_0.js';
import { quantizeBlocksQ8_0 } from '../quant/q8_0.js';

/**
 * A pre-quantized (AWQ / GPTQ) layer's integers, unpacked (`@qwen2-ts/loader`'s `UnpackedLinear`):
 * weight `[o, i]` is `scales[g * rows + o] * (q[o * cols + i] - zeros[g * rows + o])`, `g = group[i]`.
 */
export interface QuantizedLayer {
  readonly rows: number;
  readonly cols: number;
  readonly q: Uint8Array;
  readonly group: Int32Array;
  readonly groups: number;
  readonly zeros: Int16Array;
  readonly scales: Float32Array;
}

/** A q4_0 or q8_0 host weight. */
export type BlockWeight = Extract<HostWeight, { format: 'q4_0' | 'q8_0' }>;

/**
 * Stores a pre-quantized layer as q4_0 or q8_0 ([rows, cols], cols whole blocks of 32) into `out`,
 * exactly wherever the format can hold a block: its 32 columns share one group, the group's scale is
 * an f16, and every `q - zero` lies in q4_0's -8..7 (d = scale) or -7..8 (d = -scale), or in q8_0's
 * -127..127 (d = scale). Such a block then dequantizes to the very values of the layer. Any other block
 * is quantized from its values with ggml's rounding, as a float checkpoint's would be.
 *
 * Symmetric GPTQ (zero 8) in groups of whole blocks is exact in every q4_0 block. AWQ's asymmetric
 * groups put the zero near 7 or 8 when weights spread evenly around 0 (82% of the blocks of normal
 * weights in groups of 64 come out exact). Into q8_0, 4-bit layers are always exact and 8-bit ones but
 * for blocks holding q - zero = -128.
 * @returns how many of the weight's blocks were stored exactly
 */
export function storeQuantizedLayer(layer: QuantizedLayer, out: BlockWeight): number {
  const { rows, cols, q, zeros, scales } = layer;
  if (cols % QUANT_BLOCK !== 0) throw new RangeError(`${out.format} needs whole blocks of ${QUANT_BLOCK} columns, got ${cols}`);
  const perRow = cols / QUANT_BLOCK;
  const blockGroup = blockGroups(layer);
  const halves = f16Lookup();
  const values = new Float32Array(QUANT_BLOCK);
  const q4 = out.format === 'q4_0';
  let exact = 0;
  for (let o = 0; o < rows; o++) {
    for (let b = 0; b < perRow; b++) {
      const block = o * perRow + b;
      const at = o * cols + b * QUANT_BLOCK;
      const g = blockGroup[b]!;
      if (g >= 0) {
        const s = scales[g * rows + o]!, z = zeros[g * rows + o]!;
        const sBits = f32ToF16(s);
        if (halves[sBits] === s) {
          let lo = 255, hi = -255;
          for (let j = 0; j < QUANT_BLOCK; j++) {
            const m = q[at + j]! - z;
            if (m < lo) lo = m;
            if (m > hi) hi = m;
          }
          if (q4 && lo >= -8 && hi <= 8 && (hi <= 7 || lo >= -7)) {
            // d = s stores m + 8; d = -s stores 8 - m (the same value, d * (j - 8)).
            const flip = hi > 7;
            out.scales[block] = flip ? sBits ^ 0x8000 : sBits;
            const base = block * (QUANT_BLOCK / 2);
            for (let j = 0; j < QUANT_BLOCK / 2; j++) {
              const m0 = q[at + j]! - z, m1 = q[at + j + QUANT_BLOCK / 2]! - z;
              out.quants[base + j] = flip ? (8 - m0) | ((8 - m1) << 4) : (m0 + 8) | ((m1 + 8) << 4);
            }
            exact++;
            continue;
          }
          if (!q4 && lo >= -127 && hi <= 127) {
            out.scales[block] = sBits;
            for (let j = 0; j < QUANT_BLOCK; j++) out.quants[block * QUANT_BLOCK + j] = q[at + j]! - z;
            exact++;
            continue;
          }
        }
      }
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const k = layer.group[b * QUANT_BLOCK + j]! * rows + o;
        values[j] = scales[k]! * (q[at + j]! - zeros[k]!);
      }
      if (q4) quantizeBlocksQ4_0(values, out.scales, out.quants as Uint8Array, block);
      else quantizeBlocksQ8_0(values, out.scales, out.quants as Int8Array, block);
    }
  }
  return exact;
}

/** The group of each block of columns, or -1 where a block's columns fall in several (act-order GPTQ). */
function blockGroups(layer: QuantizedLayer): Int32Array {
  const out = new Int32Array(layer.cols / QUANT_BLOCK);
  for (let b = 0; b < out.length; b++) {
    const g = layer.group[b * QUANT_BLOCK]!;
    let same = true;
    for (let j = 1; j < QUANT_BLOCK && same; j++) same = layer.group[b * QUANT_BLOCK + j] === g;
    out[b] = same ? g : -1;
  }
  return out;
}
