import { describe, expect, it } from 'vitest';
import { ModelWeightsError, WeightFormatError } from '../errors.js';
import { dequantize } from '../quant/host-weight.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../numeric/half.js';
import { decodeToF32, toHostWeight, type QuantizeBlocks } from './convert.js';
import { quantizeBlocksQ4_0, quantizeQ4_0 } from '../quant/q4_0.js';
import { quantizeBlocksQ8_0, quantizeQ8_0 } from '../quant/q8_0.js';

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
  it('decodes bf16 bit for bit, two at a time or one (odd counts, 2-byte aligned bytes)', () => {
    const patterns = [0x0000, 0x8000, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x7fc1, 0xffff, 0x0001, 0x8001, 0x4049, 0x1234, 0xabcd];
    for (const [offset, count] of [[0, 13], [2, 13], [0, 12], [2, 12], [4, 1]] as const) {
      const buf = new Uint8Array(offset + count * 2);
      const src = new Uint16Array(buf.buffer, offset, count);
      for (let i = 0; i < count; i++) src[i] = patterns[i % patterns.length]!;
      const got = new Uint32Array(decodeToF32(buf.subarray(offset), 'BF16').buffer);
      expect(Array.from(got), `offset ${offset}, ${count} values`).toEqual(Array.from(src, (h) => h * 65536));
    }
  });

  it("hands a backend's quantizer bf16 bytes as they are, and its result is the weight", () => {
    const seen: string[] = [];
    const quantize: QuantizeBlocks = (format, input, scales, quants, firstBlock) => {
      seen.push(`${input.constructor.name} ${input.length} from block ${firstBlock}`);
      const f32 = input instanceof Uint16Array ? decodeToF32(new Uint8Array(input.buffer, input.byteOffset, input.byteLength), 'BF16') : input;
      if (format === 'q8_0') quantizeBlocksQ8_0(f32, scales, quants as Int8Array, firstBlock);
      else quantizeBlocksQ4_0(f32, scales, quants as Uint8Array, firstBlock);
    };
    for (const format of ['q8_0', 'q4_0'] as const) {
      seen.length = 0;
      const got = toHostWeight(bf16Bytes, 'BF16', [2, 32], format, 'w', quantize);
      expect(got).toEqual(toHostWeight(bf16Bytes, 'BF16', [2, 32], format, 'w'));
      expect(seen).toEqual(['Uint16Array 64 from block 0']);
      // f32 checkpoints still go through f32 values.
      seen.length = 0;
      expect(toHostWeight(f32Bytes, 'F32', [2, 32], format, 'w', quantize)).toEqual(toHostWeight(f32Bytes, 'F32', [2, 32], format, 'w'));
      expect(seen).toEqual(['Float32Array 64 from block 0']);
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

describe('toHostWeight on matrices larger than one conversion slice', () => {
  it('gives the same result as converting everything at once', () => {
    const rows = 17000, cols = 64; // 1.09 Mi values: two slices of 1 Mi and 40 Ki
    const v = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * 0.1);
    const bytes = new Uint8Array(Uint16Array.from(v, f32ToBf16).buffer);
    const widened = Float32Array.from(new Uint16Array(bytes.buffer), bf16ToF32);
    const q8 = toHostWeight(bytes, 'BF16', [rows, cols], 'q8_0');
    const q4 = toHostWeight(bytes, 'BF16', [rows, cols], 'q4_0');
    const f16 = toHostWeight(bytes, 'BF16', [rows, cols], 'f16');
    const whole8 = quantizeQ8_0(widened, rows, cols);
    const whole4 = quantizeQ4_0(widened, rows, cols);
    if (q8.format !== 'q8_0' || q4.format !== 'q4_0' || f16.format !== 'f16') throw new Error('wrong formats');
    // (vitest's deep equality is very slow on millions of elements: compare bytes)
    const same = (a: ArrayBufferView, b: ArrayBufferView) => Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;
    expect(same(q8.scales, whole8.scales) && same(q8.quants, whole8.quants)).toBe(true);
    expect(same(q4.scales, whole4.scales) && same(q4.quants, whole4.quants)).toBe(true);
    expect(same(f16.data, Uint16Array.from(widened, f32ToF16))).toBe(true);
  });
});
