// Prefill matmuls (T >= 16 tokens) for q8_0 and q4_0 weights: 16 weight rows at a time are dequantized
// exactly into a per-thread f32 panel and multiplied with the f32 GEMM of matmul_float.ts (exact f32
// activations; faster there than integer dot products, which pay their per-block scaling per token).
// Decode (T < 16) is matvec_quant.ts.
//
// Weight storage (as HostWeight, uploaded verbatim): quants row-major, f16 scales one per block apart.
// q4_0 blocks are 16 bytes: byte j holds value j (low nibble) and j+16 (high nibble), minus 8.
import { f16ToF32 } from './common';
import { f32Rows, PANEL } from './matmul_float';

@inline function scaleAt(ws: usize, blk: usize): f32 {
  return f16ToF32(<u32>load<u16>(ws + (blk << 1)));
}

/** Widened weights of one block: values 0-7, 8-15, 16-23, 24-31 as i16x8. */
@inline function lo8(v: v128): v128 { return i16x8.extend_low_i8x16_s(v); }
@inline function hi8(v: v128): v128 { return i16x8.extend_high_i8x16_s(v); }
/** q4_0: low nibbles (values 0-15) and high nibbles (16-31), centred to [-8, 7] as i8x16. */
@inline function nibLo(raw: v128): v128 { return i8x16.sub(v128.and(raw, i8x16.splat(0x0f)), i8x16.splat(8)); }
@inline function nibHi(raw: v128): v128 { return i8x16.sub(i8x16.shr_u(raw, 4), i8x16.splat(8)); }

/** Dequantizes rows [r0, r0+rows) of a q8_0/q4_0 weight exactly into f32 rows at dst. */
@inline function dequantRows(wq: usize, ws: usize, dst: usize, K: i32, r0: i32, rows: i32, q4: bool): void {
  const first = <usize>r0 * <usize>(K >> 5);
  const blocks = <usize>rows * <usize>(K >> 5);
  for (let b: usize = 0; b < blocks; b++) {
    const blk = first + b;
    const s = f32x4.splat(scaleAt(ws, blk));
    let va: v128, vb: v128;
    if (q4) { const raw = v128.load(wq + (blk << 4)); va = nibLo(raw); vb = nibHi(raw); }
    else { const p = wq + (blk << 5); va = v128.load(p); vb = v128.load(p, 16); }
    const o = dst + (b << 7);
    const a0 = lo8(va), a1 = hi8(va), b0 = lo8(vb), b1 = hi8(vb);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a0)), s));
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a0)), s), 16);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a1)), s), 32);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a1)), s), 48);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b0)), s), 64);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b0)), s), 80);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b1)), s), 96);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b1)), s), 112);
  }
}

@inline function panelMatmul(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32, q4: bool): void {
  for (let r = n0; r < n1; r += PANEL) {
    const rows = min(PANEL, n1 - r);
    dequantRows(wq, ws, scratch, K, r, rows, q4);
    f32Rows(x, scratch, bias, out, T, K, N, 0, rows, r);
  }
}

/** q8_0 weights against f32 activations x[T, K] through f32 panels; `scratch` holds 16*K floats. */
export function matmul_q8_0_panel(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  panelMatmul(n0, n1, scratch, x, wq, ws, bias, out, T, K, N, false);
}

/** q4_0 weights against f32 activations x[T, K] through f32 panels; `scratch` holds 16*K floats. */
export function matmul_q4_0_panel(n0: i32, n1: i32, scratch: usize, x: usize, wq: usize, ws: usize, bias: usize, out: usize, T: i32, K: i32, N: i32): void {
  panelMatmul(n0, n1, scratch, x, wq, ws, bias, out, T, K, N, true);
}
