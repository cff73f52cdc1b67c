import { describe, expect, it } from 'vitest';
import { ModelWeightsError, WeightFormatError } from '../errors.js';
import { dequantize } from '../quant/host-weight.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../numeric/half.js';
import { toHostWeight } from './convert.js';

const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 0.3);
const f32Bytes = new Uint8Array(values.buffer);
const bf16Bytes = new Uint8Array(Uint16Array.from(values, f32ToBf16).buffer);
const f16Bytes = new Uint8Array(Uint16Array.from(values, f32ToF16).buffer);

describe('toHostWeight', () => {
  it("'auto' keeps the checkpoint dtype", () => {
    expect(toHostWeight(f32Bytes, 'F32', [2, 32], 'auto').format).toBe('f32');
    const bf = toHostWeight(bf16Bytes, 'BF16', [2, 32], 'auto');
    expect(bf.format).toBe('bf16');
    expect(bf.rows).toBe(2);
    expect(toHostWeight(f16Bytes, 'F16', [64], 'auto')).toMatchObject({ format: 'f16', rows: 1, cols: 64 });
  });
  it('converts between float formats with round-to-nearest-even', () => {
    const w = toHostWeight(f32Bytes, 'F32', [2, 32], 'bf16');
    expect(w.format).toBe('bf16');
    if (w.format === 'bf16') for (let i = 0; i < 64; i++) expect(w.data[i]).toBe(f32ToBf16(values[i]!));
    const f = toHostWeight(bf16Bytes, 'BF16', [2, 32], 'f32');
    if (f.format === 'f32') for (let i = 0; i < 64; i++) expect(f.data[i]).toBe(bf16ToF32(f32ToBf16(values[i]!)));
    const h = toHostWeight(bf16Bytes, 'BF16', [2, 32], 'f16');
    if (h.format === 'f16') for (let i = 0; i < 64; i++) expect(f16ToF32(h.data[i]!)).toBeCloseTo(values[i]!, 2);
  });
  it('quantizes to q8_0 and q4_0', () => {
    const q8 = dequantize(toHostWeight(f32Bytes, 'F32', [2, 32], 'q8_0'));
    const q4 = dequantize(toHostWeight(f32Bytes, 'F32', [2, 32], 'q4_0'));
    for (let i = 0; i < 64; i++) {
      expect(Math.abs(q8[i]! - values[i]!)).toBeLessThan(0.3 / 127);
      expect(Math.abs(q4[i]! - values[i]!)).toBeLessThan(0.3 / 7);
    }
  });
  it('copies unaligned bytes instead of failing', () => {
    const buf = new Uint8Array(f32Bytes.byteLength + 1);
    buf.set(f32Bytes, 1);
    const w = toHostWeight(buf.subarray(1), 'F32', [64], 'f32');
    if (w.format === 'f32') expect(Array.from(w.data)).toEqual(Array.from(values));
  });
  it('names the tensor on bad input', () => {
    expect(() => toHostWeight(f32Bytes, 'F32', [3, 32], 'f32', 'w')).toThrow(ModelWeightsError);
    expect(() => toHostWeight(f32Bytes, 'I32', [2, 32], 'f32', 'w')).toThrow(/not a floating-point/);
    expect(() => toHostWeight(f32Bytes, 'F32', [4, 16], 'q8_0', 'w')).toThrow(WeightFormatError);
  });
});
