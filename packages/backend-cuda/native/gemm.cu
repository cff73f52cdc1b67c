// Prefill GEMM: out[T, N] = x[T, K] · W[N, K]ᵀ (+ bias) on tensor cores (WMMA 16x16x16, f32 accumulate).
//
// Precision: f16/bf16 weights are exact in their own type, but rounding the f32 activations to 16 bits
// would cost ~3 significant digits. So x is split into hi + lo parts of the weight's type (x ≈ hi + lo
// to ~16 bits more) and both products are accumulated: two MMAs per tile, f32-grade results. f16 holds
// magnitudes below 65504 only, so with f16 weights each row of x whose largest |value| is 2^15 or more
// is first scaled by a power of two (exact) and its results scaled back. For
// q8_0/q4_0 weights (already lossy) x is rounded to bf16 once and the dequantized weights to bf16.
// f32 weights use a plain SIMT tiled kernel.
#include <type_traits>

#include "common.cuh"
#ifndef QWEN2_EMULATE
#include <mma.h>
#endif
#include "matmul.h"

using namespace nvcuda;

namespace {

constexpr int BM = 64, BN = 64, BK = 32, LDS = BK + 8, LDC = BN + 4;
constexpr int GEMM_THREADS = 128;  // 4 warps, each a 32x32 output tile (2x2 fragments)

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename TIn, bool SPLIT, int FMT>
__global__ void __launch_bounds__(GEMM_THREADS) gemm_wmma_kernel(const float* __restrict__ x, int T, int K, DevWeight w, DevWeight bias,
                                                               float* __restrict__ out) {
  __shared__ __align__(32) TIn a_hi[BM * LDS];
  __shared__ __align__(32) TIn a_lo[SPLIT ? BM * LDS : 16];
  __shared__ __align__(32) TIn b_s[BN * LDS];
  __shared__ __align__(32) float c_s[BM * LDC];
  const int N = w.rows;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int tid = threadIdx.x, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;
  // Rows of x with values beyond f16's range (Qwen2's activations can reach them) would split into inf.
  constexpr bool SCALE_ROWS = SPLIT && std::is_same_v<TIn, __half>;
  __shared__ float row_scale[SCALE_ROWS ? BM : 1];
  if constexpr (SCALE_ROWS) {
    const int lane = tid & 31;
    for (int r = warp; r < BM; r += GEMM_THREADS / 32) {
      const int gm = m0 + r;
      float mx = 0.f;
      if (gm < T)
        for (int k = lane; k < K; k += 32) mx = fmaxf(mx, fabsf(x[static_cast<size_t>(gm) * K + k]));
      mx = warp_max(mx);
      if (lane == 0) {
        int e = 0;
        frexpf(mx, &e);  // mx < 2^e: scaled by 2^(15-e), the row stays below 2^15
        row_scale[r] = e > 15 ? ldexpf(1.f, 15 - e) : 1.f;
      }
    }
    __syncthreads();
  }

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Tiles: BM x BK of x and BN x BK of W; consecutive threads read consecutive k (coalesced).
    for (int idx = tid; idx < BM * BK; idx += GEMM_THREADS) {
      const int r = idx / BK, c = idx % BK;
      const int gm = m0 + r, gk = k0 + c;
      float v = gm < T && gk < K ? x[static_cast<size_t>(gm) * K + gk] : 0.f;
      if constexpr (SCALE_ROWS) v *= row_scale[r];
      const TIn hi = from_f32<TIn>(v);
      a_hi[r * LDS + c] = hi;
      if constexpr (SPLIT) a_lo[r * LDS + c] = from_f32<TIn>(v - to_f32<TIn>(hi));
    }
    for (int idx = tid; idx < BN * BK; idx += GEMM_THREADS) {
      const int r = idx / BK, c = idx % BK;
      const int gn = n0 + r, gk = k0 + c;
      TIn v = from_f32<TIn>(0.f);
      if (gn < N && gk < K) {
        if constexpr (FMT == FMT_F16 || FMT == FMT_BF16) {
          // Stored in the MMA's own type: copy the bits, no rounding.
          const uint16_t bits = static_cast<const uint16_t*>(w.data)[static_cast<size_t>(gn) * K + gk];
          v = *reinterpret_cast<const TIn*>(&bits);
        } else {
          v = from_f32<TIn>(weight_at(w, gn, gk));
        }
      }
      b_s[r * LDS + c] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, TIn, wmma::col_major> b[2];
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], b_s + (wn * 32 + j * 16) * LDS + kk, LDS);
#pragma unroll
      for (int i = 0; i < 2; i++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, TIn, wmma::row_major> a;
        wmma::load_matrix_sync(a, a_hi + (wm * 32 + i * 16) * LDS + kk, LDS);
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
        if constexpr (SPLIT) {
          wmma::load_matrix_sync(a, a_lo + (wm * 32 + i * 16) * LDS + kk, LDS);
#pragma unroll
          for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(c_s + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC, wmma::mem_row_major);
  __syncthreads();
  const bool has_bias = bias.format >= 0;
  for (int idx = tid; idx < BM * BN; idx += GEMM_THREADS) {
    const int r = idx / BN, c = idx % BN;
    const int gm = m0 + r, gn = n0 + c;
    if (gm < T && gn < N) {
      float v = c_s[r * LDC + c];
      if constexpr (SCALE_ROWS) v /= row_scale[r];  // a power of two: exact
      out[static_cast<size_t>(gm) * N + gn] = v + (has_bias ? weight_at(bias, 0, gn) : 0.f);
    }
  }
}

// f32 weights: 64x64 tiles, 16 deep, each of 256 threads computing a 4x4 block of outputs in f32.
constexpr int SB = 64, SK = 16;
__global__ void __launch_bounds__(256) gemm_f32_kernel(const float* __restrict__ x, int T, int K, DevWeight w, DevWeight bias,
                                                      float* __restrict__ out) {
  __shared__ float as[SK][SB + 4];
  __shared__ float bs[SK][SB + 4];
  const int N = w.rows;
  const int m0 = blockIdx.y * SB, n0 = blockIdx.x * SB;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const float* W = static_cast<const float*>(w.data);
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += SK) {
    for (int idx = tid; idx < SB * SK; idx += 256) {
      const int r = idx / SK, c = idx % SK;
      const int gk = k0 + c;
      as[c][r] = m0 + r < T && gk < K ? x[static_cast<size_t>(m0 + r) * K + gk] : 0.f;
      bs[c][r] = n0 + r < N && gk < K ? W[static_cast<size_t>(n0 + r) * K + gk] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SK; kk++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = as[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) b[j] = bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  const bool has_bias = bias.format >= 0;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int gm = m0 + ty * 4 + i;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int gn = n0 + tx * 4 + j;
      if (gm < T && gn < N) out[static_cast<size_t>(gm) * N + gn] = acc[i][j] + (has_bias ? weight_at(bias, 0, gn) : 0.f);
    }
  }
}

}  // namespace

cudaError_t launch_gemm(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJob& job) {
  const int N = job.w.rows;
  if (job.w.format == FMT_F32) {
    const dim3 sgrid((N + SB - 1) / SB, (tokens + SB - 1) / SB);
    LAUNCH(gemm_f32_kernel, sgrid, 256, 0, stream, x, tokens, K, job.w, job.bias, job.out);
    return cudaGetLastError();
  }
  const dim3 grid((N + BN - 1) / BN, (tokens + BM - 1) / BM);
  switch (job.w.format) {
    case FMT_F16:
      { auto* kfn = gemm_wmma_kernel<__half, true, FMT_F16>; LAUNCH(kfn, grid, GEMM_THREADS, 0, stream, x, tokens, K, job.w, job.bias, job.out); }
      break;
    case FMT_BF16:
      { auto* kfn = gemm_wmma_kernel<__nv_bfloat16, true, FMT_BF16>; LAUNCH(kfn, grid, GEMM_THREADS, 0, stream, x, tokens, K, job.w, job.bias, job.out); }
      break;
    case FMT_Q8_0:
      { auto* kfn = gemm_wmma_kernel<__nv_bfloat16, false, FMT_Q8_0>; LAUNCH(kfn, grid, GEMM_THREADS, 0, stream, x, tokens, K, job.w, job.bias, job.out); }
      break;
    case FMT_Q4_0:
      { auto* kfn = gemm_wmma_kernel<__nv_bfloat16, false, FMT_Q4_0>; LAUNCH(kfn, grid, GEMM_THREADS, 0, stream, x, tokens, K, job.w, job.bias, job.out); }
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
