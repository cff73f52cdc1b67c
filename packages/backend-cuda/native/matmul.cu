// matmul dispatch: a few tokens (decode) go to the bandwidth-bound GEMV kernels, fusing the weights that
// share a format into one launch; more tokens (prefill) go to the GEMM kernels: the pipelined one takes
// the f16/bf16/q8_0/q4_0 weights of a format in one launch, the others one launch per weight.
#include "matmul.h"

cudaError_t launch_matmul(cudaStream_t stream, const float* x, int tokens, int K, const DevWeight* weights, const DevWeight* biases,
                          float* const* outs, int count, bool round_x16, MatmulEpilogue epilogue, MatmulPrologue prologue, void* gemm_scratch) {
  if (tokens <= 0 || count <= 0) return cudaSuccess;
  if (count > MATMUL_MAX_FUSED) return cudaErrorInvalidValue;
  const bool norm = prologue.weight.format >= 0;
  if (norm && (tokens > GEMV_MAX_TOKENS || prologue.out == nullptr || prologue.weight.cols != K)) return cudaErrorInvalidValue;
  bool same_format = true;
  for (int i = 1; i < count; i++) same_format = same_format && weights[i].format == weights[0].format;
  if (epilogue.kind != EPI_NONE) {
    // Decode only, and the weights must fit the epilogue (the host checks; never fuse anything else).
    const int hd = epilogue.rope.head_dim;
    const bool fits = tokens <= GEMV_MAX_TOKENS &&
                      (epilogue.kind == EPI_RESIDUAL ? count == 1 && epilogue.residual != nullptr && epilogue.out != nullptr
                       : epilogue.kind == EPI_SWIGLU ? count == 2 && same_format && weights[0].rows == weights[1].rows && epilogue.out != nullptr
                       : epilogue.kind == EPI_ROPE   ? count == 3 && same_format && hd >= 2 && hd % 2 == 0 && weights[0].rows % hd == 0 &&
                                                         weights[1].rows % hd == 0 && weights[1].rows == weights[2].rows
                                                     : false);
    if (!fits) return cudaErrorInvalidValue;
  }
  if (norm && !same_format) {
    // One GEMV launch per format below: the RMSNorm runs once first, then the grouped matmul on its output.
    cudaError_t err = launch_rmsnorm(stream, x, prologue.weight, prologue.eps, prologue.out, tokens, K);
    if (err != cudaSuccess) return err;
    return launch_matmul(stream, prologue.out, tokens, K, weights, biases, outs, count, round_x16, epilogue, NO_PROLOGUE, gemm_scratch);
  }
  if (epilogue.kind != EPI_NONE || norm) {
    // One launch: the GEMV takes every weight (one format) with its prologue and epilogue.
    MatmulJobs jobs{};
    for (int i = 0; i < count; i++) jobs.job[jobs.count++] = MatmulJob{weights[i], biases[i], outs[i]};
    return launch_gemv(stream, x, tokens, K, jobs, epilogue, prologue);
  }
  // The weights grouped by format, each group in one GEMV launch (decode), one pipelined GEMM launch
  // (prefill, 16-bit or quantized weights) or one GEMM launch per weight (prefill, f32 or odd shapes).
  bool done[MATMUL_MAX_FUSED] = {false, false, false, false};
  for (int i = 0; i < count; i++) {
    if (done[i]) continue;
    MatmulJobs jobs{};
    for (int j = i; j < count; j++) {
      if (done[j] || weights[j].format != weights[i].format) continue;
      jobs.job[jobs.count++] = MatmulJob{weights[j], biases[j], outs[j]};
      done[j] = true;
    }
    cudaError_t err = cudaSuccess;
    if (tokens <= GEMV_MAX_TOKENS) {
      err = launch_gemv(stream, x, tokens, K, jobs, NO_EPILOGUE);
    } else if (gemm_pipelined_suits(K, weights[i].format)) {
      err = launch_gemm_pipelined(stream, x, tokens, K, jobs, round_x16, gemm_scratch);
    } else {
      for (int j = 0; j < jobs.count && err == cudaSuccess; j++) err = launch_gemm(stream, x, tokens, K, jobs.job[j], round_x16);
    }
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}
