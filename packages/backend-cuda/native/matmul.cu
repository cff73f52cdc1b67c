// matmul dispatch: a few tokens (decode) go to the bandwidth-bound GEMV kernels, fusing the weights that
// share a format into one launch; more tokens (prefill) go to the GEMM kernels: the pipelined one takes
// the f16/bf16/q8_0/q4_0 weights of a format in one launch, the others one launch per weight.
#include <algorithm>
#include "matmul.h"

namespace {

constexpr DevWeight NO_BIAS{nullptr, nullptr, -1, 0, 0};

// The weights grouped by format, in order of first appearance: one launch group each. `biases` and
// `outs` may be null (no bias, no output: for sizing the scratch).
template <class Group>
cudaError_t for_each_format_group(const DevWeight* weights, const DevWeight* biases, float* const* outs, int count, Group&& group) {
  bool done[MATMUL_MAX_FUSED] = {false, false, false, false};
  for (int i = 0; i < count; i++) {
    if (done[i]) continue;
    MatmulJobs jobs{};
    for (int j = i; j < count; j++) {
      if (done[j] || weights[j].format != weights[i].format) continue;
      jobs.job[jobs.count++] = MatmulJob{weights[j], biases ? biases[j] : NO_BIAS, outs ? outs[j] : nullptr};
      done[j] = true;
    }
    cudaError_t err = group(jobs);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

size_t gemm_scratch_bytes(int tokens, int K, const DevWeight* weights, int count, int gemm_flags) {
  size_t most = 0;
  if (tokens <= GEMV_MAX_TOKENS || count < 1 || count > MATMUL_MAX_FUSED) return 0;
  for_each_format_group(weights, nullptr, nullptr, count, [&](const MatmulJobs& jobs) {
    if (gemm_pipelined_suits(K, jobs.job[0].w.format)) most = std::max(most, gemm_pipelined_scratch_bytes(tokens, K, jobs, gemm_flags));
    return cudaSuccess;
  });
  return most;
}

cudaError_t launch_matmul(cudaStream_t stream, const float* x, int tokens, int K, const DevWeight* weights, const DevWeight* biases,
                          float* const* outs, int count, int gemm_flags, MatmulEpilogue epilogue, MatmulPrologue prologue, void* gemm_scratch) {
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
                                                         weights[1].rows % hd == 0 && weights[1].rows == weights[2].rows &&
                                                         (epilogue.rope.kv_dtype == KV_F32 || epilogue.rope.kv_dtype == KV_F16)
                                                     : false);
    if (!fits) return cudaErrorInvalidValue;
  }
  if (norm && !same_format) {
    // One GEMV launch per format below: the RMSNorm runs once first, then the grouped matmul on its output.
    cudaError_t err = launch_rmsnorm(stream, x, prologue.weight, prologue.eps, prologue.out, tokens, K);
    if (err != cudaSuccess) return err;
    return launch_matmul(stream, prologue.out, tokens, K, weights, biases, outs, count, gemm_flags, epilogue, NO_PROLOGUE, gemm_scratch);
  }
  if (epilogue.kind != EPI_NONE || norm) {
    // One launch: the GEMV takes every weight (one format) with its prologue and epilogue.
    MatmulJobs jobs{};
    for (int i = 0; i < count; i++) jobs.job[jobs.count++] = MatmulJob{weights[i], biases[i], outs[i]};
    return launch_gemv(stream, x, tokens, K, jobs, epilogue, prologue);
  }
  // The weights grouped by format, each group in one GEMV launch (decode), one pipelined GEMM launch
  // (prefill, 16-bit or quantized weights) or one GEMM launch per weight (prefill, f32 or odd shapes).
  return for_each_format_group(weights, biases, outs, count, [&](const MatmulJobs& jobs) {
    if (tokens <= GEMV_MAX_TOKENS) return launch_gemv(stream, x, tokens, K, jobs, NO_EPILOGUE);
    if (gemm_pipelined_suits(K, jobs.job[0].w.format)) return launch_gemm_pipelined(stream, x, tokens, K, jobs, gemm_flags, gemm_scratch);
    cudaError_t err = cudaSuccess;
    for (int j = 0; j < jobs.count && err == cudaSuccess; j++) err = launch_gemm(stream, x, tokens, K, jobs.job[j], (gemm_flags & GEMM_ROUND_X16) != 0);
    return err;
  });
}
