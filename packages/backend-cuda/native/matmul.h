// Internal interface between the matmul dispatcher (matmul.cu) and its GEMV (gemv.cu) and GEMM (gemm.cu)
// kernels.
#pragma once
#include "kernels.h"

// One weight of a fused matmul: out[T, w.rows] = x[T, K] · wᵀ (+ bias, format < 0 when none).
struct MatmulJob {
  DevWeight w;
  DevWeight bias;
  float* out;
};

struct MatmulJobs {
  MatmulJob job[MATMUL_MAX_FUSED];
  int count;
};

// Decode path (tokens <= GEMV_MAX_TOKENS): every job must have the same weight format; an epilogue
// other than EPI_NONE needs one job (residual), two of equal rows (SwiGLU) or three (rope: q, k, v).
// With a prologue, x is the RMSNorm's input (see MatmulPrologue).
cudaError_t launch_gemv(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJobs& jobs, const MatmulEpilogue& epilogue,
                        const MatmulPrologue& prologue = NO_PROLOGUE);
// Rows each warp takes in the GEMV with the RMSNorm prologue, for jobs of `rows` (one grid row each, or
// `shared_rows`: a residual/SwiGLU epilogue's jobs sharing their row indices; `rope`: rotary pairs) on
// `sms` multiprocessors: 4, so that each block's normalization serves 32 rows, or 2 or 1 where that
// would give fewer than 2 blocks per multiprocessor with rows to compute. A warp's rows run one after
// another, and a small model's decode is bound by such latencies, not by bandwidth. A choice from the
// kernel's structure, not from timings.
int gemv_norm_rows_per_warp(const int* rows, int count, bool shared_rows, bool rope, int sms);
// Prefill path for f16/bf16/q8_0/q4_0 weights where K is a multiple of 32 (gemm_pipelined_suits;
// gemm_pipelined.cu): every job in one launch (one weight format); `scratch` holds
// gemm_pipelined_scratch_bytes(tokens, K, jobs, gemm_flags). `gemm_flags` as for launch_matmul.
bool gemm_pipelined_suits(int K, int format);
cudaError_t launch_gemm_pipelined(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJobs& jobs, int gemm_flags, void* scratch);
size_t gemm_pipelined_scratch_bytes(int tokens, int K, const MatmulJobs& jobs, int gemm_flags);
// How the pipelined GEMM covers a slice of `rows` rows for weights of Ns[0..count) rows on `sms`
// multiprocessors: large (128 x 128) or small (64 x 64) tiles, and the k-tiles cut into `splits` ranges
// of `k_tiles_per_split` (split-K; 1 range with `one_k_range`). The fastest by an estimate from the
// kernel's structure (waves of blocks, assumed throughput per resident block, the partial sums' traffic),
// not from timings.
struct PipelinedPlan {
  bool large;
  int splits;
  int k_tiles_per_split;
};
PipelinedPlan plan_gemm_pipelined(int rows, int K, const int* Ns, int count, int sms, bool one_k_range);
// Prefill path for the other weights (gemm.cu), one launch per weight: WMMA tensor cores for f16/bf16
// where K is not a multiple of 32, an f32 SIMT kernel for f32 weights.
cudaError_t launch_gemm(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJob& job, bool round_x16);
