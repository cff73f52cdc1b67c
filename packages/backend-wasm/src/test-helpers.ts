// Plain-JS references and random weights for the tests (float64 loops, no SIMD, no tricks).
import { dequantizeQ4_KRow, Q4_K_BLOCK_BYTES, QK_K, type HostWeight, type WeightFormat } from '@qwen2-ts/core';

/** Deterministic PRNG (mulberry32) in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** f16 bit pattern -> number (exact, via the IEEE definition). */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A random weight of `format` and its exact values as float64 rows. */
export function randomWeight(format: WeightFormat, rows: number, cols: number, seed: number): { host: HostWeight; values: Float64Array } {
  const r = rng(seed);
  const n = rows * cols;
  const values = new Float64Array(n);
  switch (format) {
    case 'f32': {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = data[i] = r() * 2 - 1;
      return { host: { format, rows, cols, data }, values };
    }
    case 'f16': {
      const data = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        // Exponents 0 (subnormal) .. 16, random mantissa and sign.
        data[i] = (r() < 0.5 ? 0x8000 : 0) | (Math.floor(r() * 17) << 10) | Math.floor(r() * 1024);
        values[i] = f16ToNumber(data[i]!);
      }
      return { host: { format, rows, cols, data }, values };
    }
    case 'bf16': {
      const data = new Uint16Array(n);
      const f = new Float32Array(1), u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) {
        f[0] = r() * 2 - 1;
        data[i] = u[0]! >>> 16;
        u[0] = data[i]! << 16;
        values[i] = f[0]!;
      }
      return { host: { format, rows, cols, data }, values };
    }
    case 'q8_0':
    case 'q4_0': {
      const blocks = n / 32;
      const scales = new Uint16Array(blocks);
      for (let b = 0; b < blocks; b++) scales[b] = ((8 + Math.floor(r() * 4)) << 10) | Math.floor(r() * 1024); // 2^-7 .. 2^-4
      if (format === 'q8_0') {
        const quants = new Int8Array(n);
        for (let i = 0; i < n; i++) {
          quants[i] = Math.floor(r() * 256) - 128;
          values[i] = f16ToNumber(scales[i >> 5]!) * quants[i]!;
        }
        return { host: { format, rows, cols, scales, quants }, values };
      }
      const quants = new Uint8Array(n / 2);
      for (let i = 0; i < n / 2; i++) quants[i] = Math.floor(r() * 256);
      for (let i = 0; i < n; i++) {
        const b = i >> 5, j = i & 31;
        const byte = quants[b * 16 + (j & 15)]!;
        values[i] = f16ToNumber(scales[b]!) * ((j < 16 ? byte & 15 : byte >> 4) - 8);
      }
      return { host: { format, rows, cols, scales, quants }, values };
    }
    case 'q4_k': {
      // Random bytes everywhere (every 12-byte pattern is a valid set of 6-bit scales and mins; the
      // nibbles take all 16 values), d and dmin random f16 of either sign in 2^-10 .. 2^-6; the values
      // are core's dequantization (ggml's f32 roundings).
      const blocks = new Uint8Array((n / QK_K) * Q4_K_BLOCK_BYTES);
      for (let i = 0; i < blocks.length; i++) blocks[i] = Math.floor(r() * 256);
      for (let at = 0; at < blocks.length; at += Q4_K_BLOCK_BYTES) {
        for (const o of [0, 2]) {
          const h = (r() < 0.5 ? 0x8000 : 0) | ((5 + Math.floor(r() * 4)) << 10) | Math.floor(r() * 1024);
          blocks[at + o] = h & 0xff;
          blocks[at + o + 1] = h >> 8;
        }
      }
      const row = new Float32Array(cols);
      for (let i = 0; i < rows; i++) {
        dequantizeQ4_KRow(blocks, cols, i, row);
        values.set(row, i * cols);
      }
      return { host: { format, rows, cols, blocks }, values };
    }
  }
}

/** Random f32 activations in [-scale, scale). */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/** x[T, K] . W[N, K]^T in float64. */
export function matmulRef(x: Float32Array, w: Float64Array, T: number, K: number, N: number, bias?: Float32Array): Float64Array {
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[t * K + k]! * w[n * K + k]!;
      out[t * N + n] = s + (bias ? bias[n]! : 0);
    }
  }
  return out;
}

/**
 * What the q8_0/q4_0 kernels compute exactly: activations quantized per 32-block (d = amax/levels in f32:
 * 32767 for int16, 127 for int8; q = round-half-even(x * f32(1/d))), so the tests can check the integer
 * path to float rounding.
 */
export function quantizeActivations(x: Float32Array, levels = 32767): Float32Array {
  const out = new Float32Array(x.length);
  const fr = Math.fround;
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = fr(amax / levels);
    const id = d ? fr(1 / d) : 0;
    for (let j = 0; j < 32; j++) {
      const v = fr(x[b + j]! * id);
      let q = Math.round(v);
      if (Math.abs(v % 1) === 0.5 && q % 2 !== 0) q -= 1; // ties to even, like f32x4.nearest
      out[b + j] = fr(q * d);
    }
  }
  return out;
}

/** Largest |a - b| relative to max(1, max |b|). */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1, err = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < b.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!));
  return err / scale;
}
