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
  if (layer.cols % QUANT_BLOCK !== 0) throw new RangeError(`${out.format} needs whole blocks of ${QUANT_BLOCK} columns, got ${layer.cols}`);
  // One loop per format, so each runs on one typed-array type (V8 keeps the element accesses monomorphic:
  // a shared loop ran at 0.6x the speed).
  return out.format === 'q4_0' ? storeQ4_0(layer, out.scales, out.quants) : storeQ8_0(layer, out.scales, out.quants);
}

/**
 * Per block, `[o * perRow + b]`: its scale as f16 bits when the block lies in one group whose scale is an
 * f16, else -1 (such blocks are rounded); and its group's zero point.
 */
function blockParams(layer: QuantizedLayer): { scales: Int32Array; zeros: Int16Array } {
  const { rows, cols } = layer;
  const perRow = cols / QUANT_BLOCK;
  const blockGroup = blockGroups(layer);
  const halves = f16Lookup();
  const bits = new Int32Array(layer.groups * rows);
  for (let k = 0; k < bits.length; k++) {
    const h = f32ToF16(layer.scales[k]!);
    bits[k] = halves[h] === layer.scales[k] ? h : -1;
  }
  const scales = new Int32Array(rows * perRow).fill(-1), zeros = new Int16Array(rows * perRow);
  for (let o = 0; o < rows; o++) {
    for (let b = 0; b < perRow; b++) {
      const g = blockGroup[b]!;
      if (g < 0) continue;
      scales[o * perRow + b] = bits[g * rows + o]!;
      zeros[o * perRow + b] = layer.zeros[g * rows + o]!;
    }
  }
  return { scales, zeros };
}

function storeQ4_0(layer: QuantizedLayer, scales: Uint16Array, quants: Uint8Array): number {
  const { rows, cols } = layer;
  const perRow = cols / QUANT_BLOCK;
  const { scales: blockScales, zeros } = blockParams(layer);
  const values = new Float32Array(QUANT_BLOCK);
  // Four values at a time through 32-bit words (bytes in little-endian order, as typed arrays are on
  // every engine this runs on): a 0.5B AWQ load took 2.6-2.9 s this way against 3.4-3.8 s with a byte loop.
  // Arrays off a 4-byte boundary (never the loader's or core's own) go through aligned copies.
  const q = layer.q.byteOffset % 4 === 0 ? layer.q : layer.q.slice();
  const out = quants.byteOffset % 4 === 0 ? quants : new Uint8Array(quants.length);
  const q32 = new Uint32Array(q.buffer, q.byteOffset, q.length >>> 2);
  const out32 = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  const w = new Int32Array(8);
  let exact = 0;
  for (let block = 0; block < rows * perRow; block++) {
    const sBits = blockScales[block]!;
    if (sBits >= 0) {
      // With c = 24 - z each byte q + c is 16 + (q - z + 8), so q - z + 8 is in 0..15 (d = scale) exactly
      // when its high nibble is 1; with 24 + z - q likewise for 8 - (q - z) (d = -scale). No byte carries.
      const z = zeros[block]!, at = block * (QUANT_BLOCK / 4);
      const up = (24 - z) * 0x01010101, down = (24 + z) * 0x01010101;
      let direct = true, flipped = true;
      for (let k = 0; k < 8; k++) {
        const v = q32[at + k]!;
        w[k] = v;
        direct &&= ((v + up) & 0xf0f0f0f0) === 0x10101010;
      }
      if (!direct) for (let k = 0; k < 8; k++) flipped &&= ((down - w[k]!) & 0xf0f0f0f0) === 0x10101010;
      if (direct || flipped) {
        scales[block] = direct ? sBits : sBits ^ 0x8000;
        // Byte j of a block: value j in the low nibble, value j + 16 in the high one.
        for (let k = 0, o = block * 4; k < 4; k++, o++) {
          const lo = direct ? w[k]! + up : down - w[k]!, hi = direct ? w[k + 4]! + up : down - w[k + 4]!;
          out32[o] = (lo & 0x0f0f0f0f) | ((hi & 0x0f0f0f0f) << 4);
        }
        exact++;
        continue;
      }
    }
    blockValues(layer, Math.floor(block / perRow), block % perRow, values);
    quantizeBlocksQ4_0(values, scales, out, block);
  }
  if (out !== quants) quants.set(out);
  return exact;
}

function storeQ8_0(layer: QuantizedLayer, scales: Uint16Array, quants: Int8Array): number {
  const { rows, cols, q } = layer;
  const perRow = cols / QUANT_BLOCK;
  const { scales: blockScales, zeros } = blockParams(layer);
  const values = new Float32Array(QUANT_BLOCK);
  let exact = 0;
  for (let o = 0; o < rows; o++) {
    for (let b = 0; b < perRow; b++) {
      const block = o * perRow + b, at = o * cols + b * QUANT_BLOCK;
      const sBits = blockScales[block]!;
      if (sBits >= 0) {
        const z = zeros[block]!;
        let fits = true;
        for (let j = at; j < at + QUANT_BLOCK; j++) fits &&= q[j]! - z >= -127 && q[j]! - z <= 127;
        if (fits) {
          scales[block] = sBits;
          for (let j = 0; j < QUANT_BLOCK; j++) quants[at + j] = q[at + j]! - z;
          exact++;
          continue;
        }
      }
      blockValues(layer, o, b, values);
      quantizeBlocksQ8_0(values, scales, quants, block);
    }
  }
  return exact;
}

/** The float values of block b of row o (`scale * (q - zero)` of each column's group). */
function blockValues(layer: QuantizedLayer, o: number, b: number, values: Float32Array): void {
  const at = o * layer.cols + b * QUANT_BLOCK;
  for (let j = 0; j < QUANT_BLOCK; j++) {
    const k = layer.group[b * QUANT_BLOCK + j]! * layer.rows + o;
    values[j] = layer.scales[k]! * (layer.q[at + j]! - layer.zeros[k]!);
  }
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
