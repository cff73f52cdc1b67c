import { describe, expect, it } from 'vitest';
import { bf16Lookup, bf16ToF32, f16Lookup, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';

describe('f16', () => {
  it('decodes known bit patterns exactly', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });
  it('round-trips every finite f16 value and the lookup table agrees', () => {
    const table = f16Lookup();
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      if (Number.isNaN(v)) continue;
      expect(table[h]).toBe(v);
      expect(f32ToF16(v)).toBe(h);
    }
  });
  it('rounds to nearest, ties to even, overflow to infinity', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even).
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(65519)).toBe(0x7bff);
    // Subnormals: half of the smallest subnormal ties to zero, a bit more rounds up.
    expect(f32ToF16(2 ** -25)).toBe(0);
    expect(f32ToF16(2 ** -25 * 1.01)).toBe(1);
    expect(f32ToF16(3 * 2 ** -25)).toBe(2);
  });
});

describe('bf16', () => {
  it('widens exactly and round-trips', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
    const table = bf16Lookup();
    for (let h = 0; h < 65536; h += 7) {
      const v = bf16ToF32(h);
      expect(table[h]).toBe(Number.isNaN(v) ? NaN : v);
      if (!Number.isNaN(v)) expect(f32ToBf16(v)).toBe(h);
    }
  });
  it('rounds to nearest even', () => {
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -16)).toBe(0x3f81);
    expect(f32ToBf16(NaN) & 0x7fc0).toBe(0x7fc0);
  });
});
