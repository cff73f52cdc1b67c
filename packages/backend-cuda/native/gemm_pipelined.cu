// Prefill GEMM for f16/bf16/q8_0/q4_0 weights with K a multiple of 32: out_j[T, N_j] = x[T, K] · W_jᵀ
// (+ bias_j) for the weights of one format in a matmul call (q/k/v, gate/up) in one launch, on tensor
// cores (mma.sync m16n8k16, f32 accumulation) fed by a cp.async pipeline: the loads of k-tile
// kt + STAGES - 1 are in flight while tile kt is multiplied, with one barrier per k-tile. 16-bit weight
// fragments come from padded shared rows through ldmatrix without bank conflicts; quantized ones are
// dequantized to bf16 from the raw blocks in shared memory. Blocks walk the token rows fastest, so the
// blocks that run together share weight columns and each weight is read from memory about once.
//
// The tensor cores take 16-bit operands and x is f32, so a first kernel writes x as 16-bit rows of the
// weights' type into scratch: hi = round(x) and, for f16/bf16 weights unless prefillPrecision is
// '16-bit', lo = round(x - hi), which the main kernel multiplies as well (two MMAs per fragment, results
// at f32 precision: the weights are exact in their own type). With f16 weights, rows whose largest
// |value| reaches 2^15 are first scaled by a power of two (f16 ends at 65504) and their results scaled
// back. Quantized weights are lossy already: x is rounded to bf16 once. Passes of more than SLICE_ROWS
// tokens run in slices of rows, which bounds the scratch.
//
// Where the output tiles alone would leave SMs idle (a 7B o_proj or down_proj at 512 tokens is 112 large
// tiles on 132 SMs), the k-tiles are cut into up to MAX_SPLITS ranges (split-K): each block writes its
// range's sums to scratch, and a second kernel adds the ranges in order, divides by the row's scale and
// adds the bias (plan_gemm_pipelined estimates which tiling and cut is fastest).
#include <algorithm>
#include "common.cuh"
#include "matmul.h"
#include "mma.cuh"

#ifndef QWEN2_GEMM_SLICE_ROWS
#define QWEN2_GEMM_SLICE_ROWS 4096  // the emulated kernel test sets a small value to check slicing
#endif

namespace {

constexpr int BK = 32;                          // k per pipeline stage
constexpr int LDS = BK + 8;                     // shared row stride in elements: 80 bytes, 16-byte aligned, and
                                                // the 8 rows an ldmatrix reads fall in distinct banks
constexpr int SLICE_ROWS = QWEN2_GEMM_SLICE_ROWS;
constexpr int SPLIT_THREADS = 256;

// x's rows into hi (+ lo) parts of the weights' 16-bit type; with f16, the rows' power-of-two scales.
template <typename TIn, bool SPLIT>
__global__ void __launch_bounds__(SPLIT_THREADS) split_rows_kernel(const float* __restrict__ x, int K, TIn* __restrict__ hi, TIn* __restrict__ lo,
                                                                   float* __restrict__ row_scale) {
  await_prior_grids();
  const size_t row = blockIdx.x;
  const float* xr = x + row * K;
  float s = 1.f;
  if constexpr (std::is_same_v<TIn, __half>) {
    __shared__ float partial[SPLIT_THREADS / 32];
    float mx = 0.f;
    for (int c = threadIdx.x; c < K; c += SPLIT_THREADS) mx = fmaxf(mx, fabsf(xr[c]));
    mx = warp_max(mx);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = mx;
    __syncthreads();
    mx = 0.f;
    for (int i = 0; i < SPLIT_THREADS / 32; i++) mx = fmaxf(mx, partial[i]);
    s = f16_row_scale(mx);
    if (threadIdx.x == 0) row_scale[row] = s;
  }
  for (int c = threadIdx.x; c < K; c += SPLIT_THREADS) {
    const float v = xr[c] * s;
    const TIn h = from_f32<TIn>(v);
    hi[row * K + c] = h;
    if constexpr (SPLIT) lo[row * K + c] = from_f32<TIn>(v - to_f32<TIn>(h));
  }
}

// A block computes BM x BN outputs on WARPS_M x WARPS_N warps, each FM x FN MMA tiles of 16 x 8.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int MIN_BLOCKS_>
struct PipeTiles {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, MIN_BLOCKS = MIN_BLOCKS_;
  static constexpr int THREADS = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // one warp's outputs
  static constexpr int FM = WM / 16, FN = WN / 8;
  static constexpr int CHUNKS = BK / 8;  // 16-byte chunks per row of an x tile
  static_assert(WM % 16 == 0 && WN % 16 == 0, "an ldmatrix x4 loads 16 rows of A, or 16 rows (two 8-column tiles) of B");
  static_assert(BM * CHUNKS % THREADS == 0 && BN <= THREADS, "tile loads; one thread per weight row's scale");
};
// Blocks per SM (launch bounds) for the registers: 2 of the large tiles (8 warps of 64 x 32), 3 of the
// small ones (4 warps of 32 x 32), which go where large tiles would leave SMs idle.
using LargePipe = PipeTiles<128, 128, 2, 4, 2>;
using SmallPipe = PipeTiles<64, 64, 2, 2, 3>;

// A weight tile in shared memory, one row per output column: 16-bit rows padded to 80 bytes (as x's),
// q8_0's 32-byte blocks padded to 48 and q4_0's 16-byte blocks unpadded, so that the 8 rows a fragment
// reads fall in distinct banks; quantized tiles also keep each row's block scale, in f32.
template <int FMT> constexpr bool QUANT = FMT == FMT_Q8_0 || FMT == FMT_Q4_0;
template <int FMT> constexpr int BLOCK_BYTES = FMT == FMT_Q8_0 ? 32 : 16;  // one 32-value quantized block
template <int FMT> constexpr int B_ROW_BYTES = FMT == FMT_Q8_0 ? 48 : FMT == FMT_Q4_0 ? 16 : LDS * 2;
template <int FMT> constexpr int B_CHUNKS = QUANT<FMT> ? BLOCK_BYTES<FMT> / 16 : BK / 8;  // 16-byte copies per row

// Stages of the pipeline: 3 with the lo part (a large block's stages then take 90 KiB, so two blocks
// fit an H100's SM), 4 without.
template <bool SPLIT> constexpr int STAGES = SPLIT ? 3 : 4;
template <class TL, bool SPLIT, int FMT>
struct StageLayout {
  static constexpr int A_BYTES = TL::BM * LDS * 2;  // one 16-bit part of x
  static constexpr int B_OFFSET = (SPLIT ? 2 : 1) * A_BYTES;
  static constexpr int SCALE_OFFSET = B_OFFSET + TL::BN * B_ROW_BYTES<FMT>;
  static constexpr int BYTES = SCALE_OFFSET + (QUANT<FMT> ? TL::BN * 4 : 0);
  static constexpr size_t SMEM = static_cast<size_t>(STAGES<SPLIT>) * BYTES;
  static_assert(B_OFFSET % 16 == 0 && SCALE_OFFSET % 16 == 0 && BYTES % 16 == 0, "16-byte aligned parts");
};

// The weights of one launch; column blocks [first_block[j], first_block[j + 1]) belong to weight j.
// Split-K: blockIdx.z covers k-tiles [z * k_tiles_per_split, (z + 1) * k_tiles_per_split), and weight j's
// sums of range z go to partial[j] + (z * T + row) * N instead of its output.
struct PipeJobs {
  MatmulJob job[MATMUL_MAX_FUSED];
  float* partial[MATMUL_MAX_FUSED];
  int first_block[MATMUL_MAX_FUSED + 1];
  int count;
  int k_tiles_per_split;
};

// A quantized weight's B fragment for k kk..kk+15 of the tile's block: b0,b1 = W[n][kk+2t..], b2,b3 =
// W[n][kk+2t+8..] of row n (this lane's g), dequantized to bf16 (an f16 scale times a small integer is
// exact in f32, then rounded once). q4_0 keeps values 0-15 in the low nibbles of the block's 16 bytes and
// 16-31 in the high ones.
template <int FMT>
__device__ __forceinline__ void quant_fragment(const unsigned char* row, float scale, int kk, int t, uint32_t& b0, uint32_t& b1) {
  if constexpr (FMT == FMT_Q8_0) {
    const uint16_t p = *reinterpret_cast<const uint16_t*>(row + kk + 2 * t), q = *reinterpret_cast<const uint16_t*>(row + kk + 2 * t + 8);
    b0 = pack_bf16x2(scale * static_cast<signed char>(p & 0xff), scale * static_cast<signed char>(p >> 8));
    b1 = pack_bf16x2(scale * static_cast<signed char>(q & 0xff), scale * static_cast<signed char>(q >> 8));
  } else {
    const int shift = kk == 0 ? 0 : 4;
    const uint16_t p = *reinterpret_cast<const uint16_t*>(row + 2 * t), q = *reinterpret_cast<const uint16_t*>(row + 2 * t + 8);
    b0 = pack_bf16x2(scale * static_cast<float>(((p >> shift) & 15) - 8), scale * static_cast<float>(((p >> (8 + shift)) & 15) - 8));
    b1 = pack_bf16x2(scale * static_cast<float>(((q >> shift) & 15) - 8), scale * static_cast<float>(((q >> (8 + shift)) & 15) - 8));
  }
}

// Grid: x = blocks of BM token rows (fastest, so concurrent blocks share weight columns), y = column
// blocks of every weight in turn. row_scale is null but with f16 weights.
template <typename TIn, bool SPLIT, int FMT, class TL>
__global__ void __launch_bounds__(TL::THREADS, TL::MIN_BLOCKS) gemm_pipelined_kernel(const TIn* __restrict__ a_hi, const TIn* __restrict__ a_lo,
                                                                                     const float* __restrict__ row_scale, int T, int K, PipeJobs jobs) {
  await_prior_grids();
  using L = StageLayout<TL, SPLIT, FMT>;
  static_assert(!QUANT<FMT> || std::is_same_v<TIn, __nv_bfloat16>, "quantized weights are dequantized to bf16");
  constexpr int BM = TL::BM, BN = TL::BN, THREADS = TL::THREADS, FM = TL::FM, FN = TL::FN, S = STAGES<SPLIT>;
  QWEN2_DYNAMIC_SMEM(uint4, smem_raw);  // uint4: 16-byte aligned for cp.async and ldmatrix
  unsigned char* smem = reinterpret_cast<unsigned char*>(smem_raw);
  // This block's weight, by constant indices only (a computed index would copy the jobs to local memory).
  MatmulJob job = jobs.job[0];
  float* partial = jobs.partial[0];
  int first = 0;
#pragma unroll
  for (int j = 1; j < MATMUL_MAX_FUSED; j++)
    if (j < jobs.count && static_cast<int>(blockIdx.y) >= jobs.first_block[j]) {
      job = jobs.job[j];
      partial = jobs.partial[j];
      first = jobs.first_block[j];
    }
  const int N = job.w.rows;
  const int m0 = blockIdx.x * BM, n0 = (blockIdx.y - first) * BN;
  const unsigned char* W = static_cast<const unsigned char*>(job.w.data);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / TL::WARPS_N, wn = warp % TL::WARPS_N;
  // This block's k-tiles: kt0 + [0, k_tiles) (all of them without split-K).
  const int kt0 = blockIdx.z * jobs.k_tiles_per_split;
  const int k_tiles = min(K / BK - kt0, jobs.k_tiles_per_split);

  // Issues the copies of this block's k-tile kt into a stage; rows past the matrices are zeros (nothing
  // is read).
  auto load_tile = [&](int stage, int kt) {
    unsigned char* s = smem + stage * L::BYTES;
    const int k0 = (kt0 + kt) * BK;
#pragma unroll
    for (int i = 0; i < BM * TL::CHUNKS / THREADS; i++) {
      const int c = tid + i * THREADS, r = c / TL::CHUNKS, col = (c % TL::CHUNKS) * 8;
      const bool valid = m0 + r < T;
      const size_t src = static_cast<size_t>(valid ? m0 + r : 0) * K + k0 + col;
      cp_async16(s + (r * LDS + col) * 2, a_hi + src, valid);
      if constexpr (SPLIT) cp_async16(s + L::A_BYTES + (r * LDS + col) * 2, a_lo + src, valid);
    }
#pragma unroll
    for (int c = tid; c < BN * B_CHUNKS<FMT>; c += THREADS) {
      const int r = c / B_CHUNKS<FMT>, part = c % B_CHUNKS<FMT>;
      const bool valid = n0 + r < N;
      const size_t row = valid ? n0 + r : 0;
      // 16-bit weights: 8 values of the row at k0; quantized: part of the row's block kt.
      const unsigned char* src = QUANT<FMT> ? W + (row * (K / 32) + kt0 + kt) * BLOCK_BYTES<FMT> + part * 16 : W + (row * K + k0 + part * 8) * 2;
      cp_async16(s + L::B_OFFSET + r * B_ROW_BYTES<FMT> + part * 16, src, valid);
    }
  };
  // Quantized weights: this thread's row scale (f16) of the block's k-tile kt, as f32; 0 past the matrix.
  auto fetch_scale = [&](int kt) { return n0 + tid < N ? f16_to_f32(job.w.scales[static_cast<size_t>(n0 + tid) * (K / 32) + kt0 + kt]) : 0.f; };
  auto scales_of = [&](int stage) { return reinterpret_cast<float*>(smem + stage * L::BYTES + L::SCALE_OFFSET); };

  float acc[FM][FN][4];
#pragma unroll
  for (int i = 0; i < FM; i++)
#pragma unroll
    for (int n = 0; n < FN; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][n][e] = 0.f;

  // Group g holds tile g: the first S - 1 now, then one per iteration (empty past the last tile, so
  // that the count of groups in flight stays the same). The scales of quantized weights come through
  // registers: loaded with their tile's copies, stored into the tile's stage an iteration later (after
  // the barrier that frees it from its previous tile), so that their latency overlaps the MMAs.
#pragma unroll
  for (int s = 0; s < S - 1; s++) {
    if (s < k_tiles) {
      load_tile(s, s);
      if constexpr (QUANT<FMT>)
        if (tid < BN) scales_of(s)[tid] = fetch_scale(s);
    }
    cp_async_commit();
  }
  float pending_scale = 0.f;
  int pending_stage = -1;
  // This lane's ldmatrix row addresses. A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7,
  // k 8-15), (rows 8-15, k 8-15) give a0..a7 of a 16 x 16 tile. B (rows are n): (n 0-7, k 0-7), (n 0-7,
  // k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) give b0..b3 of two 8-column tiles.
  const int a_row = wm * TL::WM + lane % 8 + 8 * ((lane / 8) % 2), a_col = 8 * (lane / 16);
  const int b_row = wn * TL::WN + lane % 8 + 8 * (lane / 16), b_col = 8 * ((lane / 8) % 2);
  const int g = lane / 4, t = lane % 4;
  for (int kt = 0; kt < k_tiles; kt++) {
    cp_async_wait<S - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();         // everyone's have, and every warp is done with the stage of tile kt - 1
    if constexpr (QUANT<FMT>) {
      if (pending_stage >= 0 && tid < BN) scales_of(pending_stage)[tid] = pending_scale;
      pending_stage = -1;
    }
    if (kt + S - 1 < k_tiles) {
      const int next = kt + S - 1;
      load_tile(next % S, next);  // into that stage
      if constexpr (QUANT<FMT>) {
        if (tid < BN) pending_scale = fetch_scale(next);
        pending_stage = next % S;
      }
    }
    cp_async_commit();
    const unsigned char* stage = smem + (kt % S) * L::BYTES;
    const TIn* sa = reinterpret_cast<const TIn*>(stage);
    const unsigned char* sb = stage + L::B_OFFSET;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t b[FN][2];
      if constexpr (QUANT<FMT>) {
        const float* sc = reinterpret_cast<const float*>(stage + L::SCALE_OFFSET);
#pragma unroll
        for (int n = 0; n < FN; n++) {
          const int row = wn * TL::WN + 8 * n + g;
          quant_fragment<FMT>(sb + row * B_ROW_BYTES<FMT>, sc[row], kk, t, b[n][0], b[n][1]);
        }
      } else {
#pragma unroll
        for (int n = 0; n < FN; n += 2) {
          uint32_t r[4];
          ldmatrix_x4(r, sb + ((b_row + 8 * n) * LDS + kk + b_col) * 2);
          b[n][0] = r[0];
          b[n][1] = r[1];
          b[n + 1][0] = r[2];
          b[n + 1][1] = r[3];
        }
      }
#pragma unroll
      for (int i = 0; i < FM; i++) {
        uint32_t a[4];
        ldmatrix_x4(a, sa + (a_row + 16 * i) * LDS + kk + a_col);
#pragma unroll
        for (int n = 0; n < FN; n++) mma_16816<TIn>(acc[i][n], a, b[n][0], b[n][1]);
        if constexpr (SPLIT) {
          ldmatrix_x4(a, sa + BM * LDS + (a_row + 16 * i) * LDS + kk + a_col);
#pragma unroll
          for (int n = 0; n < FN; n++) mma_16816<TIn>(acc[i][n], a, b[n][0], b[n][1]);
        }
      }
    }
  }
  cp_async_wait<0>();  // only empty groups remain, but none may be in flight when the block exits

  // Accumulator (i, n) holds rows g and g + 8 of its 16, columns 2t and 2t + 1 of its 8. Split-K: the
  // range's sums as they are (split_sum_kernel finishes them).
  const bool has_bias = job.bias.format >= 0;
#pragma unroll
  for (int i = 0; i < FM; i++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int row = m0 + wm * TL::WM + 16 * i + g + 8 * h;
      if (row >= T) continue;
      const float s = row_scale && !partial ? row_scale[row] : 1.f;
      float* out = partial ? partial + (static_cast<size_t>(blockIdx.z) * T + row) * N : job.out + static_cast<size_t>(row) * N;
#pragma unroll
      for (int n = 0; n < FN; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int col = n0 + wn * TL::WN + 8 * n + 2 * t + e;
          if (col < N) out[col] = acc[i][n][2 * h + e] / s + (has_bias && !partial ? weight_at(job.bias, 0, col) : 0.f);  // s: a power of two, exact
        }
    }
}

// Split-K's second kernel: out_j = (sum of weight j's ranges, added in order) / the row's scale + bias_j,
// grid row j for weight j.
constexpr int SUM_THREADS = 256;
__global__ void __launch_bounds__(SUM_THREADS) split_sum_kernel(PipeJobs jobs, int T, int splits, const float* __restrict__ row_scale) {
  await_prior_grids();
  MatmulJob job = jobs.job[0];
  const float* partial = jobs.partial[0];
#pragma unroll
  for (int j = 1; j < MATMUL_MAX_FUSED; j++)
    if (j == static_cast<int>(blockIdx.y)) {
      job = jobs.job[j];
      partial = jobs.partial[j];
    }
  const int N = job.w.rows;
  const size_t n = static_cast<size_t>(T) * N;
  for (size_t i = static_cast<size_t>(blockIdx.x) * SUM_THREADS + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * SUM_THREADS) {
    float sum = 0.f;
    for (int z = 0; z < splits; z++) sum += partial[z * n + i];
    const int row = static_cast<int>(i / N), col = static_cast<int>(i % N);
    job.out[i] = sum / (row_scale ? row_scale[row] : 1.f) + (job.bias.format >= 0 ? weight_at(job.bias, 0, col) : 0.f);
  }
}

// The cost model of plan_gemm_pipelined. Assumed from the kernels' structure, not measured: an SM's
// tensor throughput with q blocks resident, as a fraction of its best. A large block (8 warps, 16
// independent MMAs per warp and k-step) keeps an SM fairly busy alone; a small one (4 warps, 4 MMAs each)
// needs company.
constexpr double LARGE_RATE[LargePipe::MIN_BLOCKS] = {0.75, 1.0};
constexpr double SMALL_RATE[SmallPipe::MIN_BLOCKS] = {0.35, 0.65, 0.85};
// What split-K adds, in multiply-adds of an SM's time: its partial sums written and read back (an
// H100/H200 SM does about 512 bf16 MMA multiply-adds per clock and gets about 18 bytes of DRAM bandwidth
// per clock), and one more launch (about 2 µs).
constexpr double MACS_PER_BYTE = 512.0 / 18.0;
constexpr double SUM_LAUNCH_MACS = 2e-6 * 1.8e9 * 512.0;
// At most this many k-ranges, each of at least MIN_SPLIT_TILES k-tiles (the pipeline's fill is paid once
// per range).
constexpr int MAX_SPLITS = 4;
constexpr int MIN_SPLIT_TILES = 8;

// Estimated time of `blocks` blocks of `macs` multiply-adds each on `sms` SMs that hold up to `per_sm` at
// once, in multiply-adds of one SM at full speed: full waves, then the rest spread as evenly as it goes.
double blocks_time(long long blocks, int sms, int per_sm, const double* rate, double macs) {
  const long long slots = static_cast<long long>(sms) * per_sm;
  const long long waves = blocks / slots, rest = blocks % slots;
  double t = static_cast<double>(waves) * per_sm * macs / rate[per_sm - 1];
  if (rest > 0) {
    const int q = static_cast<int>((rest + sms - 1) / sms);
    t += q * macs / rate[q - 1];
  }
  return t;
}

size_t x_parts_bytes(int rows, int K) { return static_cast<size_t>(rows) * K * 2 * sizeof(uint16_t) + static_cast<size_t>(rows) * sizeof(float); }
// Split-K's partial sums start here in the scratch, after x's parts.
size_t partial_offset(int rows, int K) { return (x_parts_bytes(rows, K) + 255) / 256 * 256; }
long long total_rows(const MatmulJobs& jobs) {
  long long n = 0;
  for (int j = 0; j < jobs.count; j++) n += jobs.job[j].w.rows;
  return n;
}

PipelinedPlan plan_of(int rows, int K, const MatmulJobs& jobs, bool one_k_range) {
  int Ns[MATMUL_MAX_FUSED];
  for (int j = 0; j < jobs.count; j++) Ns[j] = jobs.job[j].w.rows;
  return plan_gemm_pipelined(rows, K, Ns, jobs.count, multiprocessor_count(), one_k_range);
}

template <typename TIn, bool SPLIT, int FMT, class TL>
cudaError_t launch_tiles(cudaStream_t stream, const TIn* hi, const TIn* lo, const float* scale, int rows, int K, const MatmulJobs& jobs,
                         const PipelinedPlan& plan, float* partial) {
  PipeJobs p{};
  p.count = jobs.count;
  p.k_tiles_per_split = plan.k_tiles_per_split;
  size_t offset = 0;
  for (int j = 0; j < jobs.count; j++) {
    p.job[j] = jobs.job[j];
    p.partial[j] = plan.splits > 1 ? partial + offset : nullptr;
    offset += static_cast<size_t>(plan.splits) * rows * jobs.job[j].w.rows;
    p.first_block[j + 1] = p.first_block[j] + static_cast<int>(ceil_div(jobs.job[j].w.rows, TL::BN));
  }
  constexpr size_t smem = StageLayout<TL, SPLIT, FMT>::SMEM;
  auto* kfn = gemm_pipelined_kernel<TIn, SPLIT, FMT, TL>;
  if (smem > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(kfn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(ceil_div(rows, TL::BM), p.first_block[jobs.count], plan.splits);
  LAUNCH(kfn, grid, TL::THREADS, smem, stream, hi, lo, scale, rows, K, p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || plan.splits == 1) return err;
  long long most = 0;
  for (int j = 0; j < jobs.count; j++) most = std::max(most, static_cast<long long>(rows) * jobs.job[j].w.rows);
  const unsigned sum_blocks = static_cast<unsigned>(std::min<long long>(ceil_div(most, SUM_THREADS), 8LL * multiprocessor_count()));
  LAUNCH(split_sum_kernel, dim3(sum_blocks, jobs.count), SUM_THREADS, 0, stream, p, rows, plan.splits, scale);
  return cudaGetLastError();
}

// One slice of at most SLICE_ROWS rows: x split into the scratch, then the GEMM as plan_gemm_pipelined
// has it (with split-K, its partial sums after x's parts in the scratch).
template <typename TIn, bool SPLIT, int FMT>
cudaError_t launch_slice(cudaStream_t stream, const float* x, int rows, int K, const MatmulJobs& jobs, bool one_k_range, void* scratch) {
  TIn* hi = static_cast<TIn*>(scratch);
  TIn* lo = hi + static_cast<size_t>(rows) * K;
  float* scale = reinterpret_cast<float*>(lo + static_cast<size_t>(rows) * K);  // 64-byte aligned: K % 32 == 0
  float* partial = reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + partial_offset(rows, K));
  LAUNCH((split_rows_kernel<TIn, SPLIT>), rows, SPLIT_THREADS, 0, stream, x, K, hi, SPLIT ? lo : nullptr, scale);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const float* row_scale = std::is_same_v<TIn, __half> ? scale : nullptr;
  const PipelinedPlan plan = plan_of(rows, K, jobs, one_k_range);
  if (plan.large) return launch_tiles<TIn, SPLIT, FMT, LargePipe>(stream, hi, SPLIT ? lo : nullptr, row_scale, rows, K, jobs, plan, partial);
  return launch_tiles<TIn, SPLIT, FMT, SmallPipe>(stream, hi, SPLIT ? lo : nullptr, row_scale, rows, K, jobs, plan, partial);
}

}  // namespace

PipelinedPlan plan_gemm_pipelined(int rows, int K, const int* Ns, int count, int sms, bool one_k_range) {
  const int k_tiles = K / BK;
  long long total_n = 0;
  for (int j = 0; j < count; j++) total_n += Ns[j];
  PipelinedPlan best{false, 1, k_tiles};
  double best_time = -1;
  for (const bool large : {true, false}) {
    if (large && rows <= SmallPipe::BM) continue;  // one row block of small tiles covers the rows
    const int bm = large ? LargePipe::BM : SmallPipe::BM, bn = large ? LargePipe::BN : SmallPipe::BN;
    long long tiles = 0;
    for (int j = 0; j < count; j++) tiles += ceil_div(Ns[j], bn);
    tiles *= ceil_div(rows, bm);
    for (int splits = 1; splits <= (one_k_range ? 1 : MAX_SPLITS); splits++) {
      const int per = (k_tiles + splits - 1) / splits;
      if (splits > 1 && (per < MIN_SPLIT_TILES || (k_tiles + per - 1) / per != splits)) continue;
      double t = large ? blocks_time(tiles * splits, sms, LargePipe::MIN_BLOCKS, LARGE_RATE, static_cast<double>(bm) * bn * per * BK)
                       : blocks_time(tiles * splits, sms, SmallPipe::MIN_BLOCKS, SMALL_RATE, static_cast<double>(bm) * bn * per * BK);
      if (splits > 1) t += SUM_LAUNCH_MACS + 2.0 * splits * rows * static_cast<double>(total_n) * sizeof(float) * MACS_PER_BYTE / sms;
      if (best_time < 0 || t < best_time) {
        best = PipelinedPlan{large, splits, per};
        best_time = t;
      }
    }
  }
  return best;
}

bool gemm_pipelined_suits(int K, int format) { return format >= FMT_F16 && format <= FMT_Q4_0 && K > 0 && K % BK == 0; }

size_t gemm_pipelined_scratch_bytes(int tokens, int K, const MatmulJobs& jobs, int gemm_flags) {
  if (tokens <= 0 || K <= 0 || jobs.count < 1) return 0;
  size_t most = 0;
  // The slices' row counts: full ones, then the rest.
  for (const int rows : {std::min(tokens, SLICE_ROWS), tokens > SLICE_ROWS ? tokens % SLICE_ROWS : 0}) {
    if (rows == 0) continue;
    const PipelinedPlan plan = plan_of(rows, K, jobs, (gemm_flags & GEMM_ONE_K_RANGE) != 0);
    const size_t partial = plan.splits > 1 ? static_cast<size_t>(plan.splits) * rows * total_rows(jobs) * sizeof(float) : 0;
    most = std::max(most, partial_offset(rows, K) + partial);
  }
  return most;
}

cudaError_t launch_gemm_pipelined(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJobs& jobs, int gemm_flags, void* scratch) {
  if (scratch == nullptr || jobs.count < 1 || !gemm_pipelined_suits(K, jobs.job[0].w.format)) return cudaErrorInvalidValue;
  const int format = jobs.job[0].w.format;
  for (int j = 1; j < jobs.count; j++)
    if (jobs.job[j].w.format != format) return cudaErrorInvalidValue;
  const bool round_x16 = (gemm_flags & GEMM_ROUND_X16) != 0, one = (gemm_flags & GEMM_ONE_K_RANGE) != 0;
  for (int r0 = 0; r0 < tokens; r0 += SLICE_ROWS) {
    const int rows = tokens - r0 < SLICE_ROWS ? tokens - r0 : SLICE_ROWS;
    MatmulJobs slice = jobs;
    for (int j = 0; j < jobs.count; j++) slice.job[j].out += static_cast<size_t>(r0) * jobs.job[j].w.rows;
    const float* xs = x + static_cast<size_t>(r0) * K;
    cudaError_t err;
    switch (format) {
      case FMT_F16:
        err = round_x16 ? launch_slice<__half, false, FMT_F16>(stream, xs, rows, K, slice, one, scratch)
                        : launch_slice<__half, true, FMT_F16>(stream, xs, rows, K, slice, one, scratch);
        break;
      case FMT_BF16:
        err = round_x16 ? launch_slice<__nv_bfloat16, false, FMT_BF16>(stream, xs, rows, K, slice, one, scratch)
                        : launch_slice<__nv_bfloat16, true, FMT_BF16>(stream, xs, rows, K, slice, one, scratch);
        break;
      // Quantized weights are lossy already: x is rounded to bf16 once, as is each dequantized weight.
      case FMT_Q8_0: err = launch_slice<__nv_bfloat16, false, FMT_Q8_0>(stream, xs, rows, K, slice, one, scratch); break;
      default: err = launch_slice<__nv_bfloat16, false, FMT_Q4_0>(stream, xs, rows, K, slice, one, scratch); break;
    }
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}
