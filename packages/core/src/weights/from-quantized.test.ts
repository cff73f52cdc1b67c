// Storing AWQ / GPTQ layers as q4_0 / q8_0: a block is either exactly the layer's values or exactly what
// ggml's rounding makes of them (never anything else), and the blocks that can be exact are.
import { describe, expect, it } from 'vitest';
import { dequantize } from '../quant/host-weight.js';
import { quantizeQ4_0 } from '../quant/q4_0.js';
import { quantizeQ8_0 } from '../quant/q8_0.js';
import { TestRandom } from '../testing/random.js';
import { allocateHostWeight } from './read-host-weight.js';
import { storeQuantizedLayer, type BlockWeight, type QuantizedLayer } from './from-quantized.js';
import { quantizeMatrix, type LayerQuantization } from '../testing/quantized-checkpoints.js';

const BLOCK = 32;

/** Stores the layer and checks it block by block; returns how many blocks hold the values exactly. */
function storeAndCheck(layer: QuantizedLayer, values: Float32Array, format: 'q4_0' | 'q8_0'): { exact: number; blocks: number } {
  const { rows, cols } = layer;
  const out = allocateHostWeight(format, rows, cols) as BlockWeight;
  const reported = storeQuantizedLayer(layer, out);
  const got = dequantize(out);
  const rounded = dequantize(format === 'q4_0' ? quantizeQ4_0(values, rows, cols) : quantizeQ8_0(values, rows, cols));
  let exact = 0, other = 0;
  for (let b = 0; b < (rows * cols) / BLOCK; b++) {
    const at = b * BLOCK;
    const same = (a: Float32Array) => a.subarray(at, at + BLOCK).every((v, j) => Object.is(v, got[at + j]) || v === got[at + j]);
    if (same(values)) exact++;
    else if (!same(rounded)) other++;
  }
  expect(other).toBe(0);
  // A rounded block can by chance come out exact, never the other way round.
  expect(reported).toBeLessThanOrEqual(exact);
  return { exact: reported, blocks: (rows * cols) / BLOCK };
}

function matrix(rows: number, cols: number, seed: number, opt: LayerQuantization) {
  const r = new TestRandom(seed);
  return quantizeMatrix(r.normals(rows * cols, 0.02), rows, cols, opt);
}

describe('storeQuantizedLayer', () => {
  it('symmetric GPTQ 4-bit (zero 8) in whole-block groups: every q4_0 and q8_0 block is exact', () => {
    const { layer, values } = matrix(24, 256, 1, { bits: 4, groupSize: 128, symmetric: true });
    expect(storeAndCheck(layer, values, 'q4_0')).toEqual({ exact: 192, blocks: 192 });
    expect(storeAndCheck(layer, values, 'q8_0')).toEqual({ exact: 192, blocks: 192 });
  });

  it('AWQ-style asymmetric 4-bit groups: blocks whose q - zero fit -8..7 or -7..8 are exact, the rest rounded', () => {
    const { layer, values } = matrix(64, 256, 2, { bits: 4, groupSize: 64, symmetric: false });
    const q4 = storeAndCheck(layer, values, 'q4_0');
    // Normal weights put most zeros at 7 or 8, and a block need not span its group's whole range:
    // 420 of these 512 blocks (82%) are exact.
    expect(q4).toEqual({ exact: 420, blocks: 512 });
    expect(storeAndCheck(layer, values, 'q8_0').exact).toBe(q4.blocks);
  });

  it('a zero far from the middle cannot be held by q4_0 (rounded), yet is by q8_0; zero 7 is held flipped', () => {
    const { layer, values } = matrix(8, 64, 3, { bits: 4, groupSize: 32, symmetric: false });
    const shifted = { ...layer, zeros: new Int16Array(layer.zeros.length).fill(3), q: layer.q.map((_, k) => (k % 16)) };
    const shiftedValues = new Float32Array(values.length);
    for (let o = 0; o < 8; o++) for (let i = 0; i < 64; i++) shiftedValues[o * 64 + i] = shifted.scales[Math.floor(i / 32) * 8 + o]! * (shifted.q[o * 64 + i]! - 3);
    expect(storeAndCheck(shifted, shiftedValues, 'q4_0').exact).toBe(0);
    expect(storeAndCheck(shifted, shiftedValues, 'q8_0').exact).toBe(16);
    // Zero 7 puts q - zero in -7..8: q4_0 holds it with d = -scale.
    const seven = { ...shifted, zeros: new Int16Array(layer.zeros.length).fill(7) };
    const sevenValues = shiftedValues.map((_, k) => seven.scales[Math.floor((k % 64) / 32) * 8 + Math.floor(k / 64)]! * (seven.q[k]! - 7));
    expect(storeAndCheck(seven, sevenValues, 'q4_0').exact).toBe(16);
  });

  it('act-order groups that split a block, and scales that are not f16, are rounded', () => {
    const r = new TestRandom(4);
    const group = Int32Array.from({ length: 128 }, (_, i) => Math.floor(i / 32));
    for (let i = 127; i > 0; i--) {
      const j = r.int(i + 1);
      [group[i], group[j]] = [group[j]!, group[i]!];
    }
    const permuted = matrix(8, 128, 5, { bits: 4, groupSize: 32, symmetric: true, group });
    expect(storeAndCheck(permuted.layer, permuted.values, 'q4_0').exact).toBe(0);
    const plain = matrix(8, 64, 6, { bits: 4, groupSize: 32, symmetric: true });
    const thirds = { ...plain.layer, scales: plain.layer.scales.map(() => Math.fround(1 / 3)) };
    const thirdValues = new Float32Array(8 * 64);
    for (let k = 0; k < thirdValues.length; k++) thirdValues[k] = Math.fround(1 / 3) * (plain.layer.q[k]! - 8);
    expect(storeAndCheck(thirds, thirdValues, 'q4_0').exact).toBe(0);
  });

  it('symmetric 8-bit GPTQ into q8_0: exact unless a block holds q - zero = -128', () => {
    const { layer, values } = matrix(16, 128, 7, { bits: 8, groupSize: 128, symmetric: true });
    let withMin = 0;
    for (let b = 0; b < 64; b++) if (layer.q.subarray(b * 32, b * 32 + 32).some((q) => q === 0)) withMin++;
    expect(withMin).toBeGreaterThan(0);
    expect(storeAndCheck(layer, values, 'q8_0').exact).toBe(64 - withMin);
  });

  it('stores the same blocks from arrays that do not start on a 4-byte boundary', () => {
    const { layer } = matrix(16, 128, 9, { bits: 4, groupSize: 32, symmetric: false });
    const aligned = allocateHostWeight('q4_0', 16, 128) as Extract<BlockWeight, { format: 'q4_0' }>;
    const exact = storeQuantizedLayer(layer, aligned);
    const q = new Uint8Array(layer.q.length + 1).subarray(1);
    q.set(layer.q);
    const shifted = { format: 'q4_0' as const, rows: 16, cols: 128, scales: new Uint16Array(64), quants: new Uint8Array(16 * 64 + 3).subarray(3) };
    expect(storeQuantizedLayer({ ...layer, q }, shifted)).toBe(exact);
    expect(exact).toBeGreaterThan(0);
    expect(exact).toBeLessThan(64);
    expect(shifted.scales).toEqual(aligned.scales);
    expect(shifted.quants).toEqual(aligned.quants);
  });

  it('refuses columns that are not whole blocks', () => {
    const { layer } = matrix(2, 40, 8, { bits: 4, groupSize: 40, symmetric: true });
    expect(() => storeQuantizedLayer(layer, allocateHostWeight('q4_0', 2, 64) as BlockWeight)).toThrow(/q4_0 needs whole blocks of 32 columns, got 40/);
  });
});
