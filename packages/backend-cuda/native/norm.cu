// Row-wise RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, f32 accumulation. In place is safe: each
// thread rewrites only the elements it read.
#include "common.cuh"

template <int THREADS>
__global__ void rmsnorm_kernel(const float* x, DevWeight weight, float eps, float* out, int cols) {
  await_prior_grids();
  const float* row = x + static_cast<size_t>(blockIdx.x) * cols;
  float* dst = out + static_cast<size_t>(blockIdx.x) * cols;
  const float r = block_inv_rms<THREADS>(row, cols, eps);
  for (int c = threadIdx.x; c < cols; c += THREADS) dst[c] = row[c] * r * weight_at(weight, 0, c);
}

cudaError_t launch_rmsnorm(cudaStream_t stream, const float* x, DevWeight weight, float eps, float* out, int rows, int cols) {
  if (rows <= 0) return cudaSuccess;
  if (cols >= 2048) { auto* kfn = rmsnorm_kernel<1024>; LAUNCH(kfn, rows, 1024, 0, stream, x, weight, eps, out, cols); }
  else { auto* kfn = rmsnorm_kernel<256>; LAUNCH(kfn, rows, 256, 0, stream, x, weight, eps, out, cols); }
  return cudaGetLastError();
}
