// q4_k is ggml's Q4_K byte for byte: it widens through the loader's GGUF decoder (checked against
// ggml's C structs in ggml-quants.test.ts) row by row, and its quantizer must give blocks that decode
// close to the input, closer than q4_0 at the same 4 bits per value (what the 6-bit sub-block scales
// and mins are for).
import { dequantizeGgml, ggmlTypeNamed } from '@qwen2-ts/loader';
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../numeric/half.js';
import { randomGgmlBlocks } from '../testing/gguf-fixtures.js';
import { TestRandom } from '../testing/random.js';
import { dequantize, hostWeightBytes, rowDot, validateHostWeight } from './host-weight.js';
import { quantizeQ4_0 } from './q4_0.js';
import { dequantizeQ4_KRow, q4kScaleMin, quantizeQ4_K } from './q4_k.js';

const Q4_K = ggmlTypeNamed('Q4_K')!;

function rmsError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s / a.length);
}

describe('q4_k', () => {
  it('widens each row of a weight from that row\'s blocks, as the GGUF loader dequantizes the whole tensor', () => {
    const random = new TestRandom(11);
    const rows = 3, cols = 1280;
    const blocks = randomGgmlBlocks(Q4_K, rows * cols, random);
    const want = new Float32Array(rows * cols);
    dequantizeGgml(Q4_K, blocks, rows * cols, want);
    const got = dequantize({ format: 'q4_k', rows, cols, blocks });
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('decodes the 6-bit scales and mins of sub-blocks 0-3 and 4-7', () => {
    // scales[0..3]: sc 0-3 in bits 0-5, the high bits of sc 4-7 in bits 6-7; scales[4..7] likewise for
    // mins; scales[8..11]: low nibble sc 4-7's low bits, high nibble m 4-7's low bits.
    const s = Uint8Array.from([0x41, 0x82, 0xc3, 0x04, 0x45, 0x86, 0xc7, 0x08, 0x9a, 0xbc, 0xde, 0xf0]);
    expect([0, 1, 2, 3].map((j) => q4kScaleMin(s, 0, j))).toEqual([[1, 5], [2, 6], [3, 7], [4, 8]]);
    expect([4, 5, 6, 7].map((j) => q4kScaleMin(s, 0, j))).toEqual([[0x1a, 0x19], [0x2c, 0x2b], [0x3e, 0x3d], [0x00, 0x0f]]);
  });

  it('quantizes levels it can represent to exactly those levels, in every sub-block', () => {
    // Sub-block j holds (l - 3) * k_j * u for l = 0..15 (twice), with 6-bit k_j and u = 2^-10: scale
    // k_j * u and min 3 * k_j * u fit it exactly, and so do d = u, dmin = 3u and the 6-bit sub-block scales and
    // mins k_j, so a scale or min packed into the wrong bits (or a sub-block in the wrong nibbles) shows.
    const k = [8, 16, 24, 32, 40, 48, 56, 63];
    const u = 2 ** -10;
    const x = new Float32Array(256);
    for (let j = 0; j < 8; j++) for (let i = 0; i < 32; i++) x[32 * j + i] = ((i % 16) - 3) * k[j]! * u;
    const q = quantizeQ4_K(x, 1, 256);
    expect(f16ToF32(q.blocks[0]! | (q.blocks[1]! << 8))).toBe(u);
    expect(f16ToF32(q.blocks[2]! | (q.blocks[3]! << 8))).toBe(3 * u);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((j) => q4kScaleMin(q.blocks, 4, j))).toEqual(k.map((kj) => [kj, kj]));
    expect(Array.from(dequantize(q))).toEqual(Array.from(x));
    // Sub-block 2c in the low nibbles of qs[32c..32c+31], 2c+1 in the high ones.
    for (let i = 0; i < 32; i++) expect(q.blocks[16 + 32 + i], `qs[${32 + i}]`).toBe((i % 16) | ((i % 16) << 4));
  });

  it('quantizes normal weights more closely than q4_0 does', () => {
    const random = new TestRandom(5);
    const rows = 16, cols = 1024;
    const x = random.normals(rows * cols, 0.02);
    const k = rmsError(dequantize(quantizeQ4_K(x, rows, cols)), x);
    const zero = rmsError(dequantize(quantizeQ4_0(x, rows, cols)), x);
    expect(k).toBeLessThan(0.9 * zero);
    expect(k).toBeGreaterThan(0);
  });

  it('keeps an all-zero and a constant super-block finite', () => {
    const zero = dequantize(quantizeQ4_K(new Float32Array(256), 1, 256));
    expect(zero.every((v) => v === 0)).toBe(true);
    const constant = dequantize(quantizeQ4_K(new Float32Array(256).fill(0.5), 1, 256));
    expect(constant.every((v) => Number.isFinite(v) && Math.abs(v - 0.5) < 0.01)).toBe(true);
  });

  it('refuses rows that are not whole super-blocks, and validates a host weight', () => {
    expect(() => quantizeQ4_K(new Float32Array(128), 1, 128)).toThrow(/multiple of 256/);
    expect(() => quantizeQ4_K(new Float32Array(100), 1, 256)).toThrow(/expected 256 values/);
    const w = quantizeQ4_K(new TestRandom(2).normals(512), 2, 256);
    expect(hostWeightBytes(w)).toBe(2 * 144);
    expect(() => validateHostWeight(w, 'ok')).not.toThrow();
    expect(() => validateHostWeight({ ...w, cols: 128, rows: 4 }, 'w')).toThrow(/weight 'w': q4_k needs cols to be a multiple of 256, got 128/);
    expect(() => validateHostWeight({ ...w, blocks: w.blocks.subarray(0, 200) }, 'w')).toThrow(/weight 'w': q4_k needs 288 block bytes/);
  });

  it('dots a row as dequantizeRow then a dot product does', () => {
    const random = new TestRandom(9);
    const w = quantizeQ4_K(random.normals(3 * 512), 3, 512);
    const x = random.normals(512);
    const row = new Float32Array(512);
    for (let n = 0; n < 3; n++) {
      dequantizeQ4_KRow(w.blocks, 512, n, row);
      let want = 0;
      for (let k = 0; k < 512; k++) want += row[k]! * x[k]!;
      expect(rowDot(w, n, x, 0)).toBe(want);
    }
  });
});
