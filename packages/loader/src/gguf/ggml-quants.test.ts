import { describe, expect, it } from 'vitest';
import { rng } from '../test-support/rng.js';
import { dequantizeGgml, GGML_TYPES, ggmlType, ggmlTypeNamed, type GgmlType } from './ggml-quants.js';

/** f16 bit patterns used as block scales. */
const F16 = {
  one: 0x3c00,
  minusOne: 0xbc00,
  half: 0x3800,
  minusHalf: 0xb800,
  minusTwo: 0xc000,
  minusEight: 0xc800,
  /** 2^-15, a subnormal f16 (mantissa 512). */
  subnormal512: 0x0200,
  /** 2^-24, the smallest subnormal f16. */
  tiny: 0x0001,
  minusTiny: 0x8001,
  minusTwoTiny: 0x8002,
} as const;
const TINY = 2 ** -24;

/** IQ4_NL's levels, as listed in ggml-common.h. */
const KVALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

function typeNamed(name: string): GgmlType {
  const found = ggmlTypeNamed(name);
  if (found === undefined) throw new Error(`no type ${name}`);
  return found;
}

/** One block of `size` bytes, zero but for `fields` (byte offset → bytes). */
function block(size: number, fields: [number, ArrayLike<number>][]): Uint8Array {
  const bytes = new Uint8Array(size);
  for (const [at, data] of fields) bytes.set(Array.from(data), at);
  return bytes;
}

function f16(bits: number): number[] {
  return [bits & 0xff, bits >> 8];
}

function fill(n: number, byte: number): number[] {
  return new Array<number>(n).fill(byte);
}

function repeat(value: number, n: number): number[] {
  return new Array<number>(n).fill(value);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

function decode(name: string, bytes: Uint8Array, count?: number): number[] {
  const t = typeNamed(name);
  const n = count ?? (bytes.length / t.typeSize) * t.blockSize;
  const out = new Float32Array(n);
  dequantizeGgml(t, bytes, n, out);
  return Array.from(out);
}

/** Nibble pairs j | (15 - j) << 4 for j = 0..15: low nibbles count up, high nibbles count down. */
const UP_DOWN_NIBBLES = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));

describe('GGML_TYPES', () => {
  it.each([
    ['Q4_0', 2, 32, 18],
    ['Q4_1', 3, 32, 20],
    ['Q5_0', 6, 32, 22],
    ['Q5_1', 7, 32, 24],
    ['Q8_0', 8, 32, 34],
    ['Q2_K', 10, 256, 84],
    ['Q3_K', 11, 256, 110],
    ['Q4_K', 12, 256, 144],
    ['Q5_K', 13, 256, 176],
    ['Q6_K', 14, 256, 210],
    ['IQ4_NL', 20, 32, 18],
    ['IQ4_XS', 23, 256, 136],
    ['BF16', 30, 1, 2],
    ['F16', 1, 1, 2],
    ['F32', 0, 1, 4],
    ['Q8_K', 15, 256, 292],
    ['IQ2_XXS', 16, 256, 66],
    ['IQ1_M', 29, 256, 56],
    ['TQ1_0', 34, 256, 54],
    ['MXFP4', 39, 32, 17],
  ])('%s is id %i with %i values in %i bytes', (name, id, blockSize, typeSize) => {
    expect(ggmlType(id)).toMatchObject({ id, name, blockSize, typeSize });
  });

  it('leaves out the ids ggml removed and answers undefined for them', () => {
    for (const id of [4, 5, 31, 32, 33, 36, 37, 38, -1, 1000]) expect(ggmlType(id)).toBeUndefined();
  });

  it('marks exactly the decoded types dequantizable', () => {
    const decoded = [...GGML_TYPES.values()].filter((t) => t.dequantizable).map((t) => t.name);
    expect(decoded.sort()).toEqual(
      ['F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS'].sort(),
    );
  });

  it('gives nominal bits per weight', () => {
    const bits = Object.fromEntries([...GGML_TYPES.values()].map((t) => [t.name, t.bits]));
    expect(bits).toMatchObject({ F32: 32, F16: 16, BF16: 16, Q8_0: 8, Q6_K: 6, Q5_0: 5, Q5_K: 5, Q4_K: 4, IQ4_XS: 4, Q3_K: 3, Q2_K: 2, IQ2_XXS: 2 });
  });
});

describe('f16, bf16 and f32 tensors', () => {
  it('widens every f16 bit pattern as IEEE 754 does (subnormals, infinities, NaN, -0)', () => {
    const bytes = new Uint8Array(65536 * 2);
    for (let h = 0; h < 65536; h++) bytes.set(f16(h), 2 * h);
    const got = decode('F16', bytes);
    const wrong: string[] = [];
    for (let h = 0; h < 65536; h++) if (!Object.is(got[h], f16Value(h))) wrong.push(`0x${h.toString(16)}: ${got[h]}`);
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(decode('F16', new Uint8Array([...f16(0x0001), ...f16(0x83ff), ...f16(0x7bff), ...f16(0xfc00), ...f16(0x8000)]))).toEqual([
      2 ** -24,
      -1023 * 2 ** -24,
      65504,
      -Infinity,
      -0,
    ]);
  });

  it('keeps NaN payloads from f16 (quieted) and bf16 (as they are)', () => {
    const out = new Float32Array(4);
    dequantizeGgml(typeNamed('F16'), new Uint8Array([...f16(0x7c01), ...f16(0xfe00)]), 2, out);
    dequantizeGgml(typeNamed('BF16'), new Uint8Array([0x81, 0x7f, 0xc0, 0xff]), 2, out, 2);
    expect(Array.from(new Uint32Array(out.buffer), (b) => b.toString(16))).toEqual(['7fc02000', 'ffc00000', '7f810000', 'ffc00000']);
  });

  it('widens bf16 by shifting its bits up', () => {
    expect(decode('BF16', new Uint8Array([0x80, 0x3f, 0x00, 0xc0, 0x80, 0x7f, 0x01, 0x00, 0x00, 0x80]))).toEqual([1, -2, Infinity, 2 ** -133, -0]);
  });

  it('copies f32 from any byte offset', () => {
    const values = new Float32Array([1.5, -0, 3.4028234663852886e38, 1e-45, -7]);
    const unaligned = new Uint8Array(values.byteLength + 3).subarray(3);
    unaligned.set(new Uint8Array(values.buffer));
    expect(decode('F32', unaligned)).toEqual(Array.from(values));
  });
});

describe('hand-built blocks decode to the values ggml defines', () => {
  it('Q4_0: d * (nibble - 8), low nibbles first, with a negative and a subnormal d', () => {
    const a = block(18, [[0, f16(F16.minusOne)], [2, UP_DOWN_NIBBLES]]);
    const b = block(18, [[0, f16(F16.tiny)], [2, fill(16, 0xf0)]]);
    expect(decode('Q4_0', concat(a, b))).toEqual([
      ...[8, 7, 6, 5, 4, 3, 2, 1, -0, -1, -2, -3, -4, -5, -6, -7],
      ...[-7, -6, -5, -4, -3, -2, -1, -0, 1, 2, 3, 4, 5, 6, 7, 8],
      ...repeat(-8 * TINY, 16),
      ...repeat(7 * TINY, 16),
    ]);
  });

  it('Q4_1: d * nibble + m', () => {
    const a = block(20, [[0, f16(F16.half)], [2, f16(F16.minusOne)], [4, UP_DOWN_NIBBLES]]);
    const b = block(20, [[0, f16(F16.minusTiny)], [2, f16(F16.subnormal512)], [4, fill(16, 0xf0)]]);
    expect(decode('Q4_1', concat(a, b))).toEqual([
      ...[-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5],
      ...[6.5, 6, 5.5, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1],
      ...repeat(512 * TINY, 16),
      ...repeat(497 * TINY, 16),
    ]);
  });

  it('Q5_0: bit i of the little-endian u32 qh is value i\'s fifth bit; d * (q - 16)', () => {
    // qh bits 0, 15 and 24-31 set.
    const a = block(22, [[0, f16(F16.minusTwo)], [2, [0x01, 0x80, 0x00, 0xff]], [6, UP_DOWN_NIBBLES]]);
    const b = block(22, [[0, f16(F16.tiny)], [2, fill(4, 0xff)], [6, fill(16, 0xf0)]]);
    expect(decode('Q5_0', concat(a, b))).toEqual([
      ...[-0, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, -30],
      ...[2, 4, 6, 8, 10, 12, 14, 16, -14, -12, -10, -8, -6, -4, -2, -0],
      ...repeat(0, 16),
      ...repeat(15 * TINY, 16),
    ]);
  });

  it('Q5_1: d * q + m with the fifth bit from qh', () => {
    // qh bits 0-7 and 31 set.
    const a = block(24, [[0, f16(F16.one)], [2, f16(F16.minusEight)], [4, [0xff, 0x00, 0x00, 0x80]], [8, UP_DOWN_NIBBLES]]);
    const b = block(24, [[0, f16(F16.minusTiny)], [2, f16(F16.tiny)], [4, fill(4, 0xff)], [8, fill(16, 0x0f)]]);
    expect(decode('Q5_1', concat(a, b))).toEqual([
      ...[8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7],
      ...[7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, 8],
      ...repeat(-30 * TINY, 16),
      ...repeat(-15 * TINY, 16),
    ]);
  });

  it('Q8_0: d * int8', () => {
    const qs = [0x80, 0x7f, 0xff, 0x00, 0x01, ...Array.from({ length: 27 }, (_, i) => (8 * (i + 5)) & 0xff)];
    const a = block(34, [[0, f16(F16.minusHalf)], [2, qs]]);
    const b = block(34, [[0, f16(F16.tiny)], [2, fill(32, 0x81)]]);
    expect(decode('Q8_0', concat(a, b))).toEqual([
      ...[64, -63.5, 0.5, -0, -0.5, -20, -24, -28, -32, -36, -40, -44, -48, -52, -56, -60],
      ...[64, 60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4],
      ...repeat(-127 * TINY, 32),
    ]);
  });

  it('IQ4_NL: d * kvalues_iq4nl[nibble]', () => {
    const a = block(18, [[0, f16(F16.minusTwo)], [2, UP_DOWN_NIBBLES]]);
    const b = block(18, [[0, f16(F16.minusTiny)], [2, fill(16, 0x8f)]]);
    expect(decode('IQ4_NL', concat(a, b))).toEqual([
      ...[254, 208, 166, 130, 98, 70, 44, 20, -2, -26, -50, -76, -106, -138, -178, -226],
      ...[-226, -178, -138, -106, -76, -50, -26, -2, 20, 44, 70, 98, 130, 166, 208, 254],
      ...repeat(-113 * TINY, 16),
      ...repeat(-1 * TINY, 16),
    ]);
  });

  it('Q2_K: 2-bit planes of 32 bytes per 128 values, scale and min nibbles per 16, d and dmin', () => {
    // Scale byte s: scale s, min 15 - s. Every quant byte 0b11_10_01_00 (plane p holds p) but byte 5 reversed.
    const scales = Array.from({ length: 16 }, (_, s) => s | ((15 - s) << 4));
    const qs = fill(64, 0xe4);
    qs[5] = 0x1b;
    const a = block(84, [[0, scales], [16, qs], [80, f16(F16.minusOne)], [82, f16(F16.half)]]);
    // value = -1 * scale * plane - 0.5 * min, with plane = (e >> 5) & 3 and sub-block s = e >> 4:
    const perSubBlock = [-7.5, -7, -8.5, -9, -13.5, -15, -22.5, -25, -3.5, -3, -12.5, -13, -25.5, -27, -42.5, -45];
    const expected = perSubBlock.flatMap((v) => repeat(v, 16));
    expected[37] = -10.5; // scale 2, plane 1 of the reversed byte holds 2
    expected[69] = -9.5; // scale 4, plane 2 holds 1
    expected[101] = -4.5; // scale 6, plane 3 holds 0
    const b = block(84, [[0, fill(16, 0xff)], [16, fill(64, 0xff)], [80, f16(F16.tiny)], [82, f16(F16.minusTwoTiny)]]);
    expect(decode('Q2_K', concat(a, b))).toEqual([...expected, ...repeat(75 * TINY, 256)]);
  });

  it('Q3_K: hmask high bits, 12-byte 6-bit scales less 32', () => {
    // Low nibbles of scales 0-15 count 0..15; top 2 bits (bytes 8-11, bits 2 * (s / 4)) give the 6-bit scales
    // [0, 50, 36, 22, 24, 42, 44, 30, 33, 19, 37, 23, 57, 11, 45, 31], that is (less 32):
    const signedScales = [-32, 18, 4, -10, -8, 10, 12, -2, 1, -13, 5, -9, 25, -21, 13, -1];
    const scaleBytes = [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0xe4, 0x1b, 0xaa, 0x55];
    // High bit set for the first 16 values of every 32 (no 4 subtracted), clear for the others; byte 3 has only bit 2.
    const hmask = [...fill(16, 0xff), ...fill(16, 0x00)];
    hmask[3] = 0x04;
    const a = block(110, [[0, hmask], [32, fill(64, 0xe4)], [96, scaleBytes], [108, f16(F16.minusHalf)]]);
    // value = -0.5 * scale * (plane - (second 16 of a 32 ? 4 : 0)), plane = (e >> 5) & 3:
    const perSubBlock = [0, 36, -2, -15, 8, 10, -18, -1, -0, -26, -2.5, -13.5, -25, -21, -19.5, -0.5];
    expect(perSubBlock).toEqual(signedScales.map((sc, s) => -0.5 * sc * (((s >> 1) & 3) - (s & 1 ? 4 : 0))));
    const expected = perSubBlock.flatMap((v) => repeat(v, 16));
    // Values 3 + 32k read bit k of hmask[3]: only value 67 keeps its high bit.
    Object.assign(expected, { 3: -64, 35: 6, 67: 8, 99: 6, 131: 2, 163: 7.5, 195: 25, 227: 6.5 });
    const b = block(110, [[108, f16(F16.minusTiny)]]);
    expect(decode('Q3_K', concat(a, b))).toEqual([...expected, ...repeat(-128 * TINY, 256)]);
  });

  /**
   * K_SCALE_SIZE bytes for Q4_K and Q5_K. Bytes 0-3: scales 0-3 (6 bits) and the top 2 bits of scales 4-7; bytes
   * 4-7: mins 0-3 and the top bits of mins 4-7; bytes 8-11: low nibble scale 4-7, high nibble min 4-7.
   */
  const K_SCALES = [0xc1, 0x82, 0x43, 0x3f, 0x05, 0x46, 0x87, 0xc8, 0xa9, 0x0b, 0xfc, 0x3d];
  const K_SCALE_VALUES = [1, 2, 3, 63, 9 | (3 << 4), 11 | (2 << 4), 12 | (1 << 4), 13];
  const K_MIN_VALUES = [5, 6, 7, 8, 10, 0 | (1 << 4), 15 | (2 << 4), 3 | (3 << 4)];

  it('Q4_K: 6-bit scales and mins of sub-blocks 0-3 and 4-7, low nibbles then high nibbles per 64', () => {
    expect(K_SCALE_VALUES).toEqual([1, 2, 3, 63, 57, 43, 28, 13]);
    expect(K_MIN_VALUES).toEqual([5, 6, 7, 8, 10, 16, 47, 51]);
    // d = 1, dmin = -1, every nibble pair (low 1, high 2): sub-block j is scale * (j odd ? 2 : 1) + min.
    const a = block(144, [[0, f16(F16.one)], [2, f16(F16.minusOne)], [4, K_SCALES], [16, fill(128, 0x21)]]);
    // d = -2^-24, dmin = 2^-24, low nibbles 15, high 0: -(15 * scale + min) or -min, in units of 2^-24.
    const b = block(144, [[0, f16(F16.minusTiny)], [2, f16(F16.tiny)], [4, K_SCALES], [16, fill(128, 0x0f)]]);
    expect(decode('Q4_K', concat(a, b))).toEqual([
      ...[6, 10, 10, 134, 67, 102, 75, 77].flatMap((v) => repeat(v, 32)),
      ...[-20, -6, -52, -8, -865, -16, -467, -51].flatMap((v) => repeat(v * TINY, 32)),
    ]);
  });

  it('Q5_K: the fifth bit is bit 2c (low nibbles) or 2c + 1 (high nibbles) of qh[l] in chunk c', () => {
    // qh 0b1010_0101 for even l, 0 for odd l: sub-blocks 0, 2, 5, 7 get +16 at even l.
    const qh = Array.from({ length: 32 }, (_, l) => (l % 2 === 0 ? 0xa5 : 0));
    const a = block(176, [[0, f16(F16.one)], [2, f16(F16.minusOne)], [4, K_SCALES], [16, qh], [48, fill(128, 0x21)]]);
    const evenOdd = [[22, 6], [10, 10], [58, 10], [134, 134], [67, 67], [790, 102], [75, 75], [285, 77]];
    const b = block(176, [[0, f16(F16.minusTiny)], [2, f16(F16.tiny)], [4, K_SCALES], [16, fill(32, 0xff)], [48, fill(128, 0x0f)]]);
    expect(decode('Q5_K', concat(a, b))).toEqual([
      ...evenOdd.flatMap(([even, odd]) => Array.from({ length: 32 }, (_, l) => (l % 2 === 0 ? even : odd))),
      ...[-36, -38, -100, -1016, -1777, -704, -915, -259].flatMap((v) => repeat(v * TINY, 32)),
    ]);
  });

  it('Q6_K: ql nibbles and qh 2-bit pairs less 32, int8 scale per 16', () => {
    const scales = [1, -1, 2, -2, 3, -3, 4, -4, 127, -128, 5, -5, 6, -6, 7, -7];
    // Every ql byte: low nibble 1, high 2; every qh byte 0b11_10_01_00. So values 32k + l hold
    // (k = 0) 1 - 32, (k = 1) 17 - 32, (k = 2) 34 - 32, (k = 3) 50 - 32.
    const ql = fill(128, 0x21);
    ql[64 + 32 + 3] = 0x00; // second 128: values 128 + 32 + 3 and 128 + 96 + 3 lose their nibbles
    const qh = fill(64, 0xe4);
    qh[32 + 7] = 0x00; // second 128: values 128 + 7 + 32k lose their high bits
    const a = block(210, [[0, ql], [128, qh], [192, scales.map((s) => s & 0xff)], [208, f16(F16.minusHalf)]]);
    const perSubBlock = [15.5, -15.5, 15, -15, -3, 3, -36, 36, 1968.5, -1984, 37.5, -37.5, -6, 6, -63, 63];
    const expected = perSubBlock.flatMap((v) => repeat(v, 16));
    Object.assign(expected, { 163: 40, 227: -56, 167: 77.5, 199: 90, 231: 105 });
    const b = block(210, [[0, fill(192, 0xff)], [192, fill(16, 0xff)], [208, f16(F16.tiny)]]);
    expect(decode('Q6_K', concat(a, b))).toEqual([...expected, ...repeat(-31 * TINY, 256)]);
  });

  it('IQ4_XS: 6-bit scales from scales_l nibbles and scales_h pairs, less 32', () => {
    // scales_h 0xe41b: 2-bit pairs 3, 2, 1, 0, 0, 1, 2, 3; scales_l nibbles 0, 1, 2, 3, 4, 5, 6, 15.
    // 6-bit scales 48, 33, 18, 3, 4, 21, 38, 63; d = -1 makes dl = 32 - scale.
    const a = block(136, [[0, f16(F16.minusOne)], [2, [0x1b, 0xe4]], [4, [0x10, 0x32, 0x54, 0xf6]], [8, fill(128, 0x80)]]);
    // Low nibbles 0 (level -127) fill each sub-block's first 16 values, high nibbles 8 (level 1) the rest.
    const dl = [-16, -1, 14, 29, 28, 11, -6, -31];
    const b = block(136, [[0, f16(F16.tiny)], [8, fill(128, 0xf7)]]);
    expect(decode('IQ4_XS', concat(a, b))).toEqual([
      ...dl.flatMap((s) => [...repeat(-127 * s, 16), ...repeat(s, 16)]),
      ...Array.from({ length: 8 }, () => [...repeat(320 * TINY, 16), ...repeat(-3616 * TINY, 16)]).flat(),
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A slow reference: one value at a time, reading the C structs' fields through a DataView and doing each f32
// operation of ggml's dequantize_row_* with Math.fround, following its loops (block, sub-block, element).

const f32 = Math.fround;
const mul = (a: number, b: number): number => f32(a * b);

/** IEEE f16 → number by the textbook formula. */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 31;
  const mantissa = h & 1023;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function half(v: DataView, at: number): number {
  return f16Value(v.getUint16(at, true));
}

/** ggml's get_scale_min_k4, as written in C. */
function getScaleMinK4(j: number, v: DataView, at: number): [number, number] {
  const q = (i: number) => v.getUint8(at + i);
  if (j < 4) return [q(j) & 63, q(j + 4) & 63];
  return [(q(j + 4) & 0xf) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j - 0) >> 6) << 4)];
}

/** Q3_K's 16 scales, unpacked with the dequantizer's kmask arithmetic on four u32. */
function q3kScales(v: DataView): number[] {
  const kmask1 = 0x03030303;
  const kmask2 = 0x0f0f0f0f;
  const aux = [v.getUint32(96, true), v.getUint32(100, true), v.getUint32(104, true), 0];
  const tmp = aux[2];
  aux[2] = ((aux[0] >>> 4) & kmask2) | (((tmp >>> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >>> 4) & kmask2) | (((tmp >>> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >>> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >>> 2) & kmask1) << 4);
  return Array.from({ length: 16 }, (_, is) => (aux[is >> 2] >>> (8 * (is & 3))) & 0xff);
}

/** Value `e` of the block `v` holds. */
type Reference = (v: DataView, e: number) => number;

const REFERENCE: Record<string, Reference> = {
  F32: (v) => v.getFloat32(0, true),
  F16: (v) => half(v, 0),
  BF16: (v) => {
    const widened = new DataView(new ArrayBuffer(4));
    widened.setUint32(0, v.getUint16(0, true) << 16);
    return widened.getFloat32(0);
  },
  Q4_0: (v, e) => {
    const j = e % 16;
    const x = (e < 16 ? v.getUint8(2 + j) & 0x0f : v.getUint8(2 + j) >> 4) - 8;
    return mul(x, half(v, 0));
  },
  Q4_1: (v, e) => {
    const j = e % 16;
    const x = e < 16 ? v.getUint8(4 + j) & 0x0f : v.getUint8(4 + j) >> 4;
    return f32(mul(x, half(v, 0)) + half(v, 2));
  },
  Q5_0: (v, e) => {
    const qh = v.getUint32(2, true);
    const j = e % 16;
    const xh = e < 16 ? ((qh >>> (j + 0)) << 4) & 0x10 : (qh >>> (j + 12)) & 0x10;
    const x = ((e < 16 ? v.getUint8(6 + j) & 0x0f : v.getUint8(6 + j) >> 4) | xh) - 16;
    return mul(x, half(v, 0));
  },
  Q5_1: (v, e) => {
    const qh = v.getUint32(4, true);
    const j = e % 16;
    const xh = e < 16 ? ((qh >>> (j + 0)) << 4) & 0x10 : (qh >>> (j + 12)) & 0x10;
    const x = (e < 16 ? v.getUint8(8 + j) & 0x0f : v.getUint8(8 + j) >> 4) | xh;
    return f32(mul(x, half(v, 0)) + half(v, 2));
  },
  Q8_0: (v, e) => mul(v.getInt8(2 + e), half(v, 0)),
  Q2_K: (v, e) => {
    const [n, j, part, l] = [e >> 7, (e >> 5) & 3, (e >> 4) & 1, e & 15];
    const sc = v.getUint8(8 * n + 2 * j + part);
    const dl = mul(half(v, 80), sc & 0xf);
    const ml = mul(half(v, 82), sc >> 4);
    const q = v.getUint8(16 + 32 * n + 16 * part + l);
    return f32(mul(dl, (q >> (2 * j)) & 3) - ml);
  },
  Q3_K: (v, e) => {
    const [n, j, part, l] = [e >> 7, (e >> 5) & 3, (e >> 4) & 1, e & 15];
    const dl = mul(half(v, 108), q3kScales(v)[8 * n + 2 * j + part] - 32);
    const m = 1 << (4 * n + j);
    const q = (v.getUint8(32 + 32 * n + 16 * part + l) >> (2 * j)) & 3;
    const hm = v.getUint8(16 * part + l);
    return mul(dl, q - (hm & m ? 0 : 4));
  },
  Q4_K: (v, e) => {
    const [j, second, l] = [e >> 6, (e >> 5) & 1, e & 31];
    const [sc, m] = getScaleMinK4(2 * j + second, v, 4);
    const q = v.getUint8(16 + 32 * j + l);
    return f32(mul(mul(half(v, 0), sc), second ? q >> 4 : q & 0xf) - mul(half(v, 2), m));
  },
  Q5_K: (v, e) => {
    const [j, second, l] = [e >> 6, (e >> 5) & 1, e & 31];
    const [sc, m] = getScaleMinK4(2 * j + second, v, 4);
    const u = 1 << (2 * j + second);
    const ql = v.getUint8(48 + 32 * j + l);
    const q = (second ? ql >> 4 : ql & 0xf) + (v.getUint8(16 + l) & u ? 16 : 0);
    return f32(mul(mul(half(v, 0), sc), q) - mul(half(v, 2), m));
  },
  Q6_K: (v, e) => {
    const [n, k, l] = [e >> 7, (e >> 5) & 3, e & 31];
    const ql = (i: number) => v.getUint8(64 * n + i);
    const qh = v.getUint8(128 + 32 * n + l);
    const qs = [
      (ql(l + 0) & 0xf) | (((qh >> 0) & 3) << 4),
      (ql(l + 32) & 0xf) | (((qh >> 2) & 3) << 4),
      (ql(l + 0) >> 4) | (((qh >> 4) & 3) << 4),
      (ql(l + 32) >> 4) | (((qh >> 6) & 3) << 4),
    ];
    const sc = v.getInt8(192 + 8 * n + (l >> 4) + 2 * k);
    return mul(mul(half(v, 208), sc), qs[k] - 32);
  },
  IQ4_NL: (v, e) => {
    const q = v.getUint8(2 + (e % 16));
    return mul(half(v, 0), KVALUES[e < 16 ? q & 0xf : q >> 4]);
  },
  IQ4_XS: (v, e) => {
    const [ib, second, j] = [e >> 5, (e >> 4) & 1, e & 15];
    const ls = ((v.getUint8(4 + (ib >> 1)) >> (4 * (ib % 2))) & 0xf) | (((v.getUint16(2, true) >> (2 * ib)) & 3) << 4);
    const dl = mul(half(v, 0), ls - 32);
    const q = v.getUint8(8 + 16 * ib + j);
    return mul(dl, KVALUES[second ? q >> 4 : q & 0xf]);
  },
};

/** Byte offsets of each type's f16 scale fields, kept finite in random blocks. */
const SCALE_FIELDS: Record<string, number[]> = {
  F32: [],
  F16: [],
  BF16: [],
  Q4_0: [0],
  Q4_1: [0, 2],
  Q5_0: [0],
  Q5_1: [0, 2],
  Q8_0: [0],
  Q2_K: [80, 82],
  Q3_K: [108],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [208],
  IQ4_NL: [0],
  IQ4_XS: [0],
};

/** `blocks` random blocks of `t`, their f16 scales finite (random exponent 0-30, so subnormals too). */
function randomBlocks(t: GgmlType, blocks: number, seed: number): Uint8Array {
  const random = rng(seed);
  const bytes = Uint8Array.from({ length: blocks * t.typeSize }, () => Math.floor(random() * 256));
  for (let b = 0; b < blocks; b++) {
    for (const at of SCALE_FIELDS[t.name]) {
      const exponent = Math.floor(random() * 31);
      const bits = (random() < 0.5 ? 0x8000 : 0) | (exponent << 10) | Math.floor(random() * 1024);
      bytes.set(f16(bits), b * t.typeSize + at);
    }
  }
  return bytes;
}

const DEQUANTIZABLE = [...GGML_TYPES.values()].filter((t) => t.dequantizable);

describe('random blocks against the per-value reference', () => {
  it.each(DEQUANTIZABLE.map((t) => [t.name, t] as const))('%s', (_, t) => {
    const blocks = t.blockSize === 1 ? 512 : 16;
    for (const seed of [1, 2, 3]) {
      const bytes = randomBlocks(t, blocks, seed);
      const out = new Float32Array(blocks * t.blockSize);
      dequantizeGgml(t, bytes, out.length, out);
      const wrong: string[] = [];
      for (let b = 0; b < blocks; b++) {
        const v = new DataView(bytes.buffer, bytes.byteOffset + b * t.typeSize, t.typeSize);
        for (let e = 0; e < t.blockSize; e++) {
          const want = f32(REFERENCE[t.name](v, e));
          const got = out[b * t.blockSize + e];
          if (!Object.is(got, want)) wrong.push(`seed ${seed} block ${b} value ${e}: ${got} != ${want}`);
        }
      }
      expect(wrong.slice(0, 5)).toEqual([]);
    }
  });
});

describe('dequantizeGgml', () => {
  it.each(DEQUANTIZABLE.map((t) => [t.name, t] as const))('%s reads unaligned bytes and writes from outOffset', (_, t) => {
    const blocks = t.blockSize === 1 ? 64 : 4;
    const count = blocks * t.blockSize;
    const aligned = randomBlocks(t, blocks, 7);
    const expected = new Float32Array(count);
    dequantizeGgml(t, aligned, count, expected);
    for (const shift of [1, 3]) {
      const unaligned = new Uint8Array(aligned.length + shift).subarray(shift);
      unaligned.set(aligned);
      const out = new Float32Array(count + 7).fill(123);
      dequantizeGgml(t, unaligned, count, out, 5);
      expect(Array.from(out.subarray(0, 5))).toEqual(repeat(123, 5));
      expect(Array.from(out.subarray(5, 5 + count))).toEqual(Array.from(expected));
      expect(Array.from(out.subarray(5 + count))).toEqual(repeat(123, 2));
    }
  });

  it('throws RangeError for short input, partial blocks and too small an output', () => {
    const q4k = typeNamed('Q4_K');
    const out = new Float32Array(512);
    expect(() => dequantizeGgml(q4k, new Uint8Array(2 * 144 - 1), 512, out)).toThrow(RangeError);
    expect(() => dequantizeGgml(q4k, new Uint8Array(2 * 144), 500, out)).toThrow(RangeError);
    expect(() => dequantizeGgml(typeNamed('Q4_0'), new Uint8Array(18), 31, out)).toThrow(/whole number of 32-value blocks/);
    expect(() => dequantizeGgml(q4k, new Uint8Array(2 * 144), 512, out, 1)).toThrow(RangeError);
    expect(() => dequantizeGgml(q4k, new Uint8Array(2 * 144), -256, out)).toThrow(RangeError);
    expect(() => dequantizeGgml(q4k, new Uint8Array(0), 0, out)).not.toThrow();
  });

  it('throws an Error naming a type it cannot dequantize', () => {
    const iq2 = ggmlType(16)!;
    expect(iq2.dequantizable).toBe(false);
    expect(() => dequantizeGgml(iq2, new Uint8Array(66), 256, new Float32Array(256))).toThrow(/IQ2_XXS/);
    expect(() => dequantizeGgml(typeNamed('Q8_K'), new Uint8Array(292), 256, new Float32Array(256))).toThrow(/Q8_K/);
  });
});
