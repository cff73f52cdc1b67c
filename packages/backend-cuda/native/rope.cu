// Rotary embedding, rotate-half convention, in place. Angles in double precision: positions reach the
// thousands of radians, where f32 angles lose digits (the reference computes in float64).
#include "common.cuh"

__global__ void rope_kernel(float* x, int heads, int head_dim, PosArg start, float theta) {
  const int t = blockIdx.x;
  const int half = head_dim / 2;
  const int pos = pos_of(start) + t;
  float* row = x + static_cast<size_t>(t) * heads * head_dim;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const double angle = static_cast<double>(pos) * pow(static_cast<double>(theta), -2.0 * i / head_dim);
    double s, c;
    sincos(angle, &s, &c);
    const float cs = static_cast<float>(c), sn = static_cast<float>(s);
    for (int h = blockIdx.y; h < heads; h += gridDim.y) {
      float* v = row + h * head_dim;
      const float x1 = v[i], x2 = v[i + half];
      v[i] = x1 * cs - x2 * sn;
      v[i + half] = x2 * cs + x1 * sn;
    }
  }
}

cudaError_t launch_rope(cudaStream_t stream, float* x, int tokens, int heads, int head_dim, PosArg start, float theta) {
  if (tokens <= 0) return cudaSuccess;
  const int threads = head_dim / 2 < 128 ? ((head_dim / 2 + 31) / 32) * 32 : 128;
  const int ysplit = heads < 8 ? heads : 8;  // each block reuses its sin/cos over several heads
  LAUNCH(rope_kernel, dim3(tokens, ysplit), threads, 0, stream, x, heads, head_dim, start, theta);
  return cudaGetLastError();
}
