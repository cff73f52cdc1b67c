import { describe, expect, it } from 'vitest';
import { argmax } from './argmax.js';

describe('argmax', () => {
  it('returns the first maximum', () => {
    expect(argmax([1, 5, 3, 5])).toBe(1);
    expect(argmax(new Float32Array([-3, -1, -2]))).toBe(1);
    expect(argmax([-Infinity, -Infinity])).toBe(0);
  });
  it('ignores NaN and throws when nothing can be chosen', () => {
    expect(argmax([NaN, 2, NaN])).toBe(1);
    expect(() => argmax([])).toThrow(RangeError);
    expect(() => argmax([NaN])).toThrow(/no finite/);
  });
});
