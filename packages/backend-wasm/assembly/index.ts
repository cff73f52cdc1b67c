// WebAssembly SIMD kernels of @qwen2-ts/backend-wasm. Pointers are byte offsets into the imported
// memory; JavaScript owns the layout. Kernels that run on several threads take (first0, first1,
// scratch) first: the range of output rows (or heads) this thread computes and its private scratch.
export { rms_norm, add_f32, swiglu_f32, add_bias, rope_f32, dot_f32 } from './elementwise';
export { matmul_f32, matmul_f16, matmul_bf16, pair_lanes, matvec_bf16_paired, matvec_bf16_paired2 } from './matmul_float';
export { quantize_q16_q4, quantize_q16q8, quantize_q8x4, quantize_q8x4_dense, quantize_q16x4 } from './quantize_act';
export { matmul_q8_0, matmul_q4_0_i8, matmul_q4_k_i8, relaxed_selftest } from './matvec_quant';
export { matmul_q4_0_nib, matmul_q4_k_nib } from './matmul_q4';
export { matmul_q4_0_i8_gemm, matmul_q4_0_i16_gemm, matmul_q4_k_i8_gemm, matmul_q4_k_i16_gemm, matmul_q8_0_i16_gemm } from './matmul_quant';
export { dequant_half, dequant_q8_0, dequant_q4_0, dequant_q4_k } from './embed';
export { relayout_q4_0, relayout_q8_0 } from './quant_layout';
export { repack_q4_k } from './q4_k_layout';
export { attention_f32, attention_f16, attention_f16_nonfinite, widen_halves } from './attention';
export { store_halves } from './kv_store';
export { quantize_q8_0_f32, quantize_q4_0_f32 } from './quantize_weights';
export { read_bytes, read_chunks } from './bandwidth';
export { sample_max, sample_exp, sample_kth, sample_collect, sample_histogram, sample_kept_mass, sample_draw } from './sample';
