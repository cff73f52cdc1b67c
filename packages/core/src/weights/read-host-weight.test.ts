import { describe, expect, it } from 'vitest';
import type { HostWeight, WeightFormat } from '../backend/types.js';
import { f32ToBf16 } from '../numeric/half.js';
import { toHostWeight } from './convert.js';
import { readHostWeight, type RangeReadable } from './read-host-weight.js';

/** A bf16 tensor [rows, cols] of varied values, and a source that records how it was read. */
function source(rows: number, cols: number) {
  const bits = new Uint16Array(rows * cols);
  for (let i = 0; i < bits.length; i++) bits[i] = f32ToBf16(Math.sin(i * 0.37) * (1 + (i % 13)));
  const bytes = new Uint8Array(bits.buffer);
  const calls: string[] = [];
  const src: RangeReadable = {
    async read() { calls.push('read'); return bytes.slice(); },
    async readRange(_name, offset, length) { calls.push(`range ${offset}+${length}`); return bytes.slice(offset, offset + length); },
  };
  return { bytes, calls, src };
}

describe('readHostWeight', () => {
  it.each<WeightFormat>(['f32', 'f16', 'q8_0', 'q4_0'])('converts slice by slice to %s, identical to a whole conversion', async (format) => {
    const { bytes, calls, src } = source(37, 64);
    const sliced = await readHostWeight(src, 'w', 'BF16', [37, 64], format, { sliceBytes: 5 * 64 * 2 });
    expect(sliced).toEqual(toHostWeight(bytes, 'BF16', [37, 64], format, 'w'));
    expect(calls).toHaveLength(8); // 7 full slices of 5 rows and one of 2
    expect(calls.at(-1)).toBe(`range ${35 * 128}+${2 * 128}`);
  });
  it('fills the storage `allocate` gives (a backend buffer) instead of new arrays', async () => {
    const { bytes, src } = source(37, 64);
    const given: HostWeight[] = [];
    const allocate = async (format: WeightFormat, rows: number, cols: number): Promise<HostWeight> => {
      expect([format, rows, cols]).toEqual(['q4_0', 37, 64]);
      const w: HostWeight = { format: 'q4_0', rows, cols, scales: new Uint16Array(rows * 2).fill(0xffff), quants: new Uint8Array(rows * 32).fill(0xff) };
      given.push(w);
      return w;
    };
    const sliced = await readHostWeight(src, 'w', 'BF16', [37, 64], 'q4_0', { sliceBytes: 5 * 64 * 2, allocate });
    expect(given).toHaveLength(1);
    expect(sliced).toBe(given[0]);
    expect(sliced).toEqual(toHostWeight(bytes, 'BF16', [37, 64], 'q4_0', 'w'));
  });
  it.each<WeightFormat | 'auto'>(['bf16', 'auto'])('slices a tensor kept in its format (%s) into `allocate`\'s storage', async (target) => {
    const { bytes, calls, src } = source(37, 64);
    const given: HostWeight[] = [];
    const allocate = async (format: WeightFormat, rows: number, cols: number): Promise<HostWeight> => {
      expect([format, rows, cols]).toEqual(['bf16', 37, 64]);
      const w: HostWeight = { format: 'bf16', rows, cols, data: new Uint16Array(rows * cols).fill(0xffff) };
      given.push(w);
      return w;
    };
    const sliced = await readHostWeight(src, 'w', 'BF16', [37, 64], target, { sliceBytes: 5 * 64 * 2, allocate });
    expect(sliced).toBe(given[0]);
    expect(sliced).toEqual(toHostWeight(bytes, 'BF16', [37, 64], 'bf16', 'w'));
    expect(calls).toHaveLength(8);
    expect(calls.every((c) => c.startsWith('range'))).toBe(true);
  });
  it('reads whole when the format is kept (without `allocate`), the tensor is small, or ranges are unavailable', async () => {
    const { calls, src } = source(8, 32);
    await readHostWeight(src, 'w', 'BF16', [8, 32], 'bf16', { sliceBytes: 64 });
    await readHostWeight(src, 'w', 'BF16', [8, 32], 'q8_0');
    await readHostWeight({ read: src.read }, 'w', 'BF16', [8, 32], 'q8_0', { sliceBytes: 64 });
    expect(calls).toEqual(['read', 'read', 'read']);
  });
});
