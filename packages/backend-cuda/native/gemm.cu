// Prefill GEMM for what gemm_pipelined.cu does not take: out[T, N] = x[T, K] · W[N, K]ᵀ (+ bias) for
// f16/bf16 weights whose K is not a multiple of 32, on tensor cores (WMMA 16x16x16, f32 accumulate, tiles
// loaded element by element), and a plain SIMT tiled kernel for f32 weights.
//
// Precision: f16/bf16 weights are exact in their own type, but rounding the f32 activations to 16 bits
// would cost ~3 significant digits. So x is split into hi + lo parts of the weight's type (x ≈ hi + lo
// to ~16 bits more) and both products are accumulated: two MMAs per tile, f32-grade results (unless the
// backend was opened with prefillPrecision '16-bit': then x is rounded once, one MMA per tile). f16 holds
// magnitudes below 65504 only, so with f16 weights each row of x whose largest |value| is 2^15 or more
// is first scaled by a power of two (exact) and its results scaled back.
#include <type_traits>

#include "common.cuh"
#ifndef QWEN2_EMULATE
#include <mma.h>
#endif
#include "matmul.h"
#include "mma.cuh"

using namespace nvcuda;

namespace {

constexpr int BK = 32, LDS = BK + 8;  // k per tile; smem row stride in elements (80 bytes: 16-byte aligned rows)

// Tile shapes: a BM x BN block of outputs on WARPS_M x WARPS_N warps, each warp FM x FN fragments of 16x16.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_>
struct Tiles {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int THREADS = WARPS_M * WARPS_N * 32;
  // Blocks per SM the register budget is sized for (launch bounds): 3 of the small tiles, 1 of the large
  // ones. Without it ptxas spilled a few bytes in two small-tile variants at sm_80.
  static constexpr int MIN_BLOCKS = THREADS <= 128 ? 3 : 1;
  static constexpr int FM = BM / WARPS_M / 16, FN = BN / WARPS_N / 16;
};
using LargeTiles = Tiles<128, 128, 2, 4>;  // 8 warps of 64x32: twice the MMAs per fragment load of the small tiles
using SmallTiles = Tiles<64, 64, 2, 2>;    // 4 warps of 32x32: more blocks where large tiles would leave SMs idle

// Tiles load element by element with bounds checks (K need not be a multiple of anything).
template <typename TIn, bool SPLIT, class TL>
__global__ void __launch_bounds__(TL::THREADS, TL::MIN_BLOCKS) gemm_wmma_kernel(const float* __restrict__ x, int T, int K, DevWeight w, DevWeight bias,
                                                               float* __restrict__ out) {
  await_prior_grids();
  constexpr int BM = TL::BM, BN = TL::BN, FM = TL::FM, FN = TL::FN, THREADS = TL::THREADS;
  __shared__ __align__(32) TIn a_hi[BM * LDS];
  __shared__ __align__(32) TIn a_lo[SPLIT ? BM * LDS : 16];
  __shared__ __align__(32) TIn b_s[BN * LDS];
  __shared__ __align__(32) float stage[TL::WARPS_M * TL::WARPS_N][16 * 16];  // epilogue, one fragment per warp
  const int N = w.rows;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp / TL::WARPS_N, wn = warp % TL::WARPS_N;
  // Rows of x with values beyond f16's range (Qwen2's activations can reach them) would split into inf.
  constexpr bool SCALE_ROWS = std::is_same_v<TIn, __half>;
  __shared__ float row_scale[SCALE_ROWS ? BM : 1];
  if constexpr (SCALE_ROWS) {
    for (int r = warp; r < BM; r += THREADS / 32) {
      const int gm = m0 + r;
      float mx = 0.f;
      if (gm < T)
        for (int k = lane; k < K; k += 32) mx = fmaxf(mx, fabsf(x[static_cast<size_t>(gm) * K + k]));
      mx = warp_max(mx);
      if (lane == 0) row_scale[r] = f16_row_scale(mx);
    }
    __syncthreads();
  }
  // One value of x into the A tiles: hi, and with SPLIT the remainder lo (x ≈ hi + lo).
  auto put_a = [&](int r, int c, float v) {
    if constexpr (SCALE_ROWS) v *= row_scale[r];
    const TIn hi = from_f32<TIn>(v);
    a_hi[r * LDS + c] = hi;
    if constexpr (SPLIT) a_lo[r * LDS + c] = from_f32<TIn>(v - to_f32<TIn>(hi));
  };

  // The k-tile at k0 into the shared tiles, zeros outside the matrices.
  auto load_tile = [&](int k0) {
    for (int idx = tid; idx < BM * BK; idx += THREADS) {
      const int r = idx / BK, c = idx % BK, gm = m0 + r, gk = k0 + c;
      put_a(r, c, gm < T && gk < K ? x[static_cast<size_t>(gm) * K + gk] : 0.f);
    }
    for (int idx = tid; idx < BN * BK; idx += THREADS) {
      const int r = idx / BK, c = idx % BK, gn = n0 + r, gk = k0 + c;
      TIn v = from_f32<TIn>(0.f);
      if (gn < N && gk < K) {
        const uint16_t bits = static_cast<const uint16_t*>(w.data)[static_cast<size_t>(gn) * K + gk];
        v = *reinterpret_cast<const TIn*>(&bits);  // the MMA's own type: bits copied, no rounding
      }
      b_s[r * LDS + c] = v;
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; i++)
#pragma unroll
    for (int j = 0; j < FN; j++) wmma::fill_fragment(acc[i][j], 0.f);

  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tile(k0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, TIn, wmma::col_major> b[FN];
#pragma unroll
      for (int j = 0; j < FN; j++) wmma::load_matrix_sync(b[j], b_s + (wn * FN * 16 + j * 16) * LDS + kk, LDS);
#pragma unroll
      for (int i = 0; i < FM; i++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, TIn, wmma::row_major> a;
        wmma::load_matrix_sync(a, a_hi + (wm * FM * 16 + i * 16) * LDS + kk, LDS);
#pragma unroll
        for (int j = 0; j < FN; j++) wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
        if constexpr (SPLIT) {
          wmma::load_matrix_sync(a, a_lo + (wm * FM * 16 + i * 16) * LDS + kk, LDS);
#pragma unroll
          for (int j = 0; j < FN; j++) wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
        }
      }
    }
    __syncthreads();
  }
  // Epilogue: each warp passes its fragments through its own 16x16 staging tile (the accumulator's
  // layout in registers is opaque) and writes them with the row scale undone and the bias added.
  const bool has_bias = bias.format >= 0;
  float* tile = stage[warp];
#pragma unroll
  for (int i = 0; i < FM; i++)
#pragma unroll
    for (int j = 0; j < FN; j++) {
      wmma::store_matrix_sync(tile, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int r0 = wm * FM * 16 + i * 16, gn0 = n0 + wn * FN * 16 + j * 16;
      for (int e = lane; e < 256; e += 32) {
        const int r = r0 + e / 16, gm = m0 + r, gn = gn0 + e % 16;
        if (gm < T && gn < N) {
          float v = tile[e];
          if constexpr (SCALE_ROWS) v /= row_scale[r];  // a power of two: exact
          out[static_cast<size_t>(gm) * N + gn] = v + (has_bias ? weight_at(bias, 0, gn) : 0.f);
        }
      }
      __syncwarp();
    }
}

// f32 weights: 64x64 tiles, 16 deep, each of 256 threads computing a 4x4 block of outputs in f32.
constexpr int SB = 64, SK = 16;
__global__ void __launch_bounds__(256) gemm_f32_kernel(const float* __restrict__ x, int T, int K, DevWeight w, DevWeight bias,
                                                      float* __restrict__ out) {
  await_prior_grids();
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

namespace {

template <typename TIn, bool SPLIT, class TL>
cudaError_t launch_tiles(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJob& job) {
  const dim3 grid((job.w.rows + TL::BN - 1) / TL::BN, (tokens + TL::BM - 1) / TL::BM);
  auto* kfn = gemm_wmma_kernel<TIn, SPLIT, TL>;
  LAUNCH(kfn, grid, TL::THREADS, 0, stream, x, tokens, K, job.w, job.bias, job.out);
  return cudaGetLastError();
}

// Large tiles when they still give every SM a block; small ones otherwise (few tokens or narrow weights).
template <typename TIn, bool SPLIT>
cudaError_t launch_wmma(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJob& job) {
  const long long large_blocks = static_cast<long long>((job.w.rows + LargeTiles::BN - 1) / LargeTiles::BN) *
                                 ((tokens + LargeTiles::BM - 1) / LargeTiles::BM);
  if (tokens > SmallTiles::BM && large_blocks >= multiprocessor_count()) return launch_tiles<TIn, SPLIT, LargeTiles>(stream, x, tokens, K, job);
  return launch_tiles<TIn, SPLIT, SmallTiles>(stream, x, tokens, K, job);
}

}  // namespace

cudaError_t launch_gemm(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJob& job, bool round_x16) {
  const int N = job.w.rows;
  switch (job.w.format) {
    case FMT_F32: {
      const dim3 sgrid((N + SB - 1) / SB, (tokens + SB - 1) / SB);
      LAUNCH(gemm_f32_kernel, sgrid, 256, 0, stream, x, tokens, K, job.w, job.bias, job.out);
      return cudaGetLastError();
    }
    case FMT_F16: return round_x16 ? launch_wmma<__half, false>(stream, x, tokens, K, job) : launch_wmma<__half, true>(stream, x, tokens, K, job);
    case FMT_BF16: return round_x16 ? launch_wmma<__nv_bfloat16, false>(stream, x, tokens, K, job) : launch_wmma<__nv_bfloat16, true>(stream, x, tokens, K, job);
    default: return cudaErrorInvalidValue;  // q8_0/q4_0 (K a multiple of 32 by their format) take gemm_pipelined.cu
  }
}
