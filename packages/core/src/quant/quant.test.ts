import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '../numeric/half.js';
import { dequantize } from './host-weight.js';
import { quantizeQ4_0 } from './q4_0.js';
import { quantizeQ8_0 } from './q8_0.js';

function randomRows(rows: number, cols: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return out;
}

describe('q8_0', () => {
  it('matches ggml on a hand-computed block', () => {
    const x = new Float32Array(32);
    for (let i = 0; i < 32; i++) x[i] = (i - 16) / 8; // amax = 2 (x[0] = -2)
    const q = quantizeQ8_0(x, 1, 32);
    expect(q.scales[0]).toBe(f32ToF16(Math.fround(2 / 127)));
    expect(q.quants[0]).toBe(-127);
    // x = 0.5 -> 0.5 * 63.5 = 31.75 -> 32
    expect(q.quants[20]).toBe(32);
    // x = -1.375 (i=5) -> -87.3125 -> -87
    expect(q.quants[5]).toBe(-87);
  });
  it('rounds half away from zero and keeps error within half a step', () => {
    const x = randomRows(3, 64, 7);
    const q = quantizeQ8_0(x, 3, 64);
    const back = dequantize(q);
    for (let b = 0; b < 6; b++) {
      const d = f16ToF32(q.scales[b]!);
      for (let j = 0; j < 32; j++) expect(Math.abs(back[b * 32 + j]! - x[b * 32 + j]!)).toBeLessThanOrEqual(d * 0.5 + d * 0.01 + 1e-7);
    }
    const zero = quantizeQ8_0(new Float32Array(32), 1, 32);
    expect(zero.scales[0]).toBe(0);
    expect([...zero.quants].every((v) => v === 0)).toBe(true);
  });
  it('rejects a shape that is not whole blocks', () => {
    expect(() => quantizeQ8_0(new Float32Array(40), 1, 40)).toThrow(/multiple of the 32/);
  });
});

describe('q4_0', () => {
  it('uses the signed max and ggml nibble layout', () => {
    const x = new Float32Array(32);
    for (let i = 0; i < 32; i++) x[i] = i / 4; // max = 7.75 (positive) -> d = -0.96875
    const q = quantizeQ4_0(x, 1, 32);
    const d = f16ToF32(q.scales[0]!);
    expect(d).toBeCloseTo(-7.75 / 8, 6);
    // x[31] = 7.75: 7.75 / d = -8 -> +8.5 = 0.5 -> 0 (high nibble of byte 15)
    expect(q.quants[15]! >>> 4).toBe(0);
    // x[0] = 0 -> 8.5 -> 8 (low nibble of byte 0)
    expect(q.quants[0]! & 15).toBe(8);
    const back = dequantize(q);
    expect(back[31]).toBeCloseTo(7.75, 2);
    expect(back[0] === 0).toBe(true); // (8 - 8) * d: a zero of either sign
  });
  it('clamps the other extreme to 15 and bounds the error by one step', () => {
    const x = randomRows(2, 96, 11);
    const q = quantizeQ4_0(x, 2, 96);
    const back = dequantize(q);
    for (let b = 0; b < 6; b++) {
      const d = Math.abs(f16ToF32(q.scales[b]!));
      for (let j = 0; j < 32; j++) expect(Math.abs(back[b * 32 + j]! - x[b * 32 + j]!)).toBeLessThanOrEqual(d * 1.01 + 1e-6);
    }
    for (const byte of q.quants) expect(byte).toBeLessThan(256);
  });
});

// ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref transcribed line by line with the Math functions
// of their C (fabsf, MAX, roundf, MIN, truncation by the (int8_t) cast), so that the quantizers' faster
// integer arithmetic is checked against the plain formulas on values that reach every branch: signs,
// exact halves of a step, zeros of both signs, subnormals, huge values, infinities and NaN.
function ggmlQ8_0(x: Float32Array): { scales: number[]; quants: number[] } {
  const scales: number[] = [], quants: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    scales.push(f32ToF16(d));
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j]! * id);
      const r = Math.sign(v) * Math.floor(Math.abs(v) + 0.5); // roundf: half away from zero
      quants.push(Number.isNaN(r) || r === 0 ? 0 : r); // an Int8Array stores NaN and -0 as 0
    }
  }
  return { scales, quants };
}
function ggmlQ4_0(x: Float32Array): { scales: number[]; quants: number[] } {
  const scales: number[] = [], quants: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j]!;
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    scales.push(f32ToF16(d));
    const nibble = (v: number): number => {
      const t = Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
      return Number.isNaN(t) ? 0 : t;
    };
    for (let j = 0; j < 16; j++) quants.push(nibble(x[b * 32 + j]!) | (nibble(x[b * 32 + 16 + j]!) << 4));
  }
  return { scales, quants };
}

describe('q8_0 and q4_0 against ggml\'s reference formulas', () => {
  const special = [0, -0, 0.5, -0.5, 1e-40, -1e-40, 1e-8, -1e-8, 65504, -65504, 3e38, -3e38, Infinity, -Infinity, NaN];
  const blocks = 400;
  const x = randomRows(blocks, 32, 23);
  // Blocks 0-99 keep random values; in the rest every fourth value is special, and blocks 100-149 hold
  // exact multiples of a step (i / 2 * amax / 127 for q8_0's halves), so rounding ties occur.
  for (let i = 100 * 32; i < 150 * 32; i++) x[i] = ((i % 255) - 127) / 2;
  for (let i = 150 * 32; i < x.length; i += 4) x[i] = special[(i / 4) % special.length]!;
  it('q8_0 gives ggml\'s scales and values bit for bit', () => {
    const q = quantizeQ8_0(x, blocks, 32), want = ggmlQ8_0(x);
    expect(Array.from(q.scales)).toEqual(want.scales);
    expect(Array.from(q.quants)).toEqual(want.quants);
  });
  it('q4_0 gives ggml\'s scales and nibbles bit for bit', () => {
    const q = quantizeQ4_0(x, blocks, 32), want = ggmlQ4_0(x);
    expect(Array.from(q.scales)).toEqual(want.scales);
    expect(Array.from(q.quants)).toEqual(want.quants);
  });
});

describe('rowDot', () => {
  it('equals dequantizeRow followed by a dot product, for every format', async () => {
    const { rowDot, dequantizeRow } = await import('./host-weight.js');
    const { hostWeight } = await import('../testing/op-suite.js');
    const x = randomRows(1, 96, 3);
    const values = randomRows(5, 96, 4);
    for (const format of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const) {
      const w = hostWeight(format, 5, 96, values);
      const row = new Float32Array(96);
      for (let n = 0; n < 5; n++) {
        dequantizeRow(w, n, row);
        let want = 0;
        for (let k = 0; k < 96; k++) want += row[k]! * x[k]!;
        expect(rowDot(w, n, x, 0)).toBeCloseTo(want, 10);
      }
    }
  });
});
