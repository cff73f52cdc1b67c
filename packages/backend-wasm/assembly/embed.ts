// Row dequantization for embedding lookups: one row of a weight table -> f32.
import { f16ToF32 } from './common';
import { q4kByteOffset, q4kScalesAt, q4kSuperAt, q4kUnit } from './q4_k_layout';
import { q4ByteOffset, q8ByteOffset, setSize, setStart } from './quant_layout';

/** f16 or bf16 row of n values at src -> f32 at out. */
export function dequant_half(src: usize, out: usize, n: i32, bf16: i32): void {
  for (let i = 0; i < n; i++) {
    const h = <u32>load<u16>(src + (<usize>i << 1));
    store<f32>(out + (<usize>i << 2), bf16 ? reinterpret<f32>(h << 16) : f16ToF32(h));
  }
}

/**
 * Row `row` of a q8_0 weight of `rows` rows: n values (n % 32 == 0) from quants at q (the weight's base,
 * stored interleaved, quant_layout.ts) and the row's f16 scales s.
 */
export function dequant_q8_0(q: usize, row: i32, rows: i32, s: usize, out: usize, n: i32): void {
  const nb = <usize>(n >> 5);
  for (let i: usize = 0; i < <usize>n; i++) {
    const b = i >> 5;
    const d = f16ToF32(<u32>load<u16>(s + (b << 1)));
    store<f32>(out + (i << 2), d * <f32>load<i8>(q + q8ByteOffset(<usize>row, <usize>rows, nb, b, i & 31)));
  }
}

/**
 * Row `row` of a q4_0 weight of `rows` rows: n values from 16-byte blocks at q (the weight's base, this
 * build's storage, quant_layout.ts) and the row's f16 scales s.
 */
export function dequant_q4_0(q: usize, row: i32, rows: i32, s: usize, out: usize, n: i32): void {
  const nb = <usize>(n >> 5);
  for (let b: usize = 0; b < nb; b++) {
    const d = f16ToF32(<u32>load<u16>(s + (b << 1)));
    const o = out + (b << 7);
    for (let j: usize = 0; j < 16; j++) {
      const byte = <i32>load<u8>(q + q4ByteOffset(<usize>row, <usize>rows, nb, b, j));
      store<f32>(o + (j << 2), d * <f32>((byte & 15) - 8));
      store<f32>(o + ((j + 16) << 2), d * <f32>((byte >> 4) - 8));
    }
  }
}

/**
 * Row `row` of a q4_k weight of `rows` rows: n values (n % 256 == 0) from the weight at q (this build's
 * storage, q4_k_layout.ts), each (d * sc) * q - dmin * m with ggml's f32 roundings (d * sc and dmin * m
 * are exact; the product with q and the difference round once each, as in dequantize_row_q4_K).
 */
export function dequant_q4_k(q: usize, row: i32, rows: i32, out: usize, n: i32): void {
  const nb = <usize>(n >> 5), r = <usize>row, N = <usize>rows;
  const size = setSize(16, r, N), i = r - setStart(16, r, N);
  for (let b: usize = 0; b < nb; b++) {
    const u = q + q4kUnit(r, N, nb, b), sm = u + q4kScalesAt(i, b) + (b & 3), dd = u + q4kSuperAt(size, i);
    const scale: f32 = load<f32>(dd) * <f32>load<u8>(sm), offset: f32 = load<f32>(dd, 4) * <f32>load<u8>(sm, 4);
    const o = out + (b << 7);
    for (let j: usize = 0; j < 16; j++) {
      const byte = <i32>load<u8>(q + q4kByteOffset(r, N, nb, b, j));
      store<f32>(o + (j << 2), scale * <f32>(byte & 15) - offset);
      store<f32>(o + ((j + 16) << 2), scale * <f32>(byte >> 4) - offset);
    }
  }
}
