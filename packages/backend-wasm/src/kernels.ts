import { KERNELS_RELAXED_WASM_BASE64, KERNELS_SHARED_RELAXED_WASM_BASE64, KERNELS_SHARED_WASM_BASE64, KERNELS_WASM_BASE64 } from './generated/kernels-wasm.js';

/**
 * The exports of the compiled kernel module (see assembly/). Pointers are byte offsets; kernels that
 * run on several threads take (rangeStart, rangeEnd, scratch) first.
 */
export interface KernelExports {
  rms_norm(x: number, g: number, out: number, rows: number, n: number, eps: number): void;
  add_f32(a: number, b: number, out: number, n: number): void;
  add_bias(out: number, bias: number, rows: number, n: number): void;
  rope_f32(x: number, table: number, T: number, heads: number, headDim: number): void;
  dot_f32(a: number, b: number, n: number): number;
  pair_lanes(x: number, dst: number, K: number): void;
  dequant_half(src: number, out: number, n: number, bf16: number): void;
  dequant_q8_0(q: number, row: number, rows: number, s: number, out: number, n: number): void;
  dequant_q4_0(q: number, row: number, rows: number, s: number, out: number, n: number): void;
  dequant_q4_k(q: number, row: number, rows: number, out: number, n: number): void;
  read_bytes(p: number, n: number): number;
  relaxed_selftest(): number;
  relayout_q4_0(q: number, rows: number, K: number, scratch: number): void;
  relayout_q8_0(q: number, rows: number, K: number, scratch: number): void;
  repack_q4_k(q: number, rows: number, K: number, scratch: number): void;
  store_halves(src: number, dst: number, n: number): number;
  sample_max(x: number, n: number): number;
  sample_exp(x: number, e: number, n: number, max: number, invT: number): number;
  sample_kth(e: number, n: number, k: number, heap: number): number;
  sample_collect(e: number, n: number, lo: number, hi: number, vals: number): number;
  sample_histogram(e: number, n: number, hist: number): void;
  sample_kept_mass(e: number, n: number, lo: number, thr: number, ties: number): number;
  sample_draw(e: number, n: number, lo: number, thr: number, ties: number, target: number): number;
  [parallel: string]: unknown;
}

/**
 * Kernels run through the thread pool, by op code (the index here). Each takes (first, end, scratch,
 * ...args). The list is sent to workers, so both sides agree on the codes.
 */
export const PARALLEL_KERNELS = ['swiglu_f32', 'quantize_q16_q4', 'quantize_q16q8', 'quantize_q8x4', 'quantize_q8x4_dense', 'quantize_q16x4', 'matmul_f32', 'matmul_f16', 'matmul_bf16', 'matvec_bf16_paired', 'matvec_bf16_paired2', 'matmul_q8_0', 'matmul_q4_0_nib', 'matmul_q4_0_i8', 'matmul_q4_0_i8_gemm', 'matmul_q4_0_i16_gemm', 'matmul_q8_0_i16_gemm', 'matmul_q4_k_nib', 'matmul_q4_k_i8', 'matmul_q4_k_i8_gemm', 'matmul_q4_k_i16_gemm', 'attention_f32', 'attention_f16', 'attention_f16_nonfinite', 'widen_halves', 'read_chunks', 'quantize_q8_0_f32', 'quantize_q4_0_f32'] as const;
/** Op code of a parallel kernel. */
export type ParallelKernel = (typeof PARALLEL_KERNELS)[number];

/** Bytes at the start of every memory kept for the module's static data (AssemblyScript's math tables). */
export const STATIC_BYTES = 65536;
/** Maximum pages of every memory (4 GiB, the wasm32 ceiling); must match scripts/build-wasm.mjs. */
export const MAX_PAGES = 65536;

/** The raw bytes of the kernel module: the shared-memory build (threads) or the plain one, with or without relaxed SIMD. */
export function kernelBytes(shared: boolean, relaxed = false): Uint8Array<ArrayBuffer> {
  const base64 = relaxed ? (shared ? KERNELS_SHARED_RELAXED_WASM_BASE64 : KERNELS_RELAXED_WASM_BASE64) : shared ? KERNELS_SHARED_WASM_BASE64 : KERNELS_WASM_BASE64;
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** The import object of the kernel module over `memory`. */
export function kernelImports(memory: WebAssembly.Memory): WebAssembly.Imports {
  return { env: { memory, abort() { throw new Error('wasm kernel abort'); } } };
}

/** Whether this engine validates WebAssembly SIMD128 (a 1-function module using v128). */
export function hasSimd(): boolean {
  // (module (func (result v128) (v128.const i32x4 0 0 0 0)))
  const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
  return WebAssembly.validate(probe);
}

/** (module (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd)) */
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11]);

/**
 * Whether this engine validates relaxed SIMD. Chromium-based browsers (114 and later) and Node 21+ ship
 * it; Node 20 has it behind `--experimental-wasm-relaxed-simd`, which is switched on here (V8 reads wasm
 * feature flags when it compiles a module, so setting it at run time works; it only adds instructions).
 */
export async function relaxedSimdAvailable(): Promise<boolean> {
  if (WebAssembly.validate(RELAXED_PROBE)) return true;
  if (typeof process === 'undefined' || typeof process.versions?.node !== 'string') return false;
  try {
    const specifier = 'node:v8';
    const v8 = (await import(/* @vite-ignore */ specifier)) as typeof import('node:v8');
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return WebAssembly.validate(RELAXED_PROBE);
}
