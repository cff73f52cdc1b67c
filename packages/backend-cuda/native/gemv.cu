// Decode GEMV: out[t][n] = x[t] · W[n] for up to GEMV_MAX_TOKENS tokens. Bandwidth-bound: one warp per
// weight row streams it once with 128-bit loads (evict-first, the weights do not fit in L2), converts
// in registers and reuses each loaded value for every token; a warp shuffle reduction finishes the row.
// Fused weights (q/k/v, gate/up) share one launch through blockIdx.y; a prologue can also do the RMSNorm
// before (see MatmulPrologue), and an epilogue the residual add, the SwiGLU or q/k/v's rope and KV write
// after (see MatmulEpilogue).
#include "kv_cache.cuh"
#include "matmul.h"

namespace {

constexpr int GEMV_THREADS = 256;
constexpr int ROWS_PER_BLOCK = GEMV_THREADS / 32;
// With the RMSNorm prologue every block normalizes x first, so each warp takes several rows to share
// that: up to this many (see gemv_norm_rows_per_warp).
constexpr int NORM_ROWS_PER_WARP = 4;
// Rows of one job a warp covers for `rpw` rows per warp: at least one rotary pair with the rope
// epilogue. One rule for the kernel's row mapping and the launch's grid.
__host__ __device__ constexpr int gemv_warp_rows(int rpw, bool rope) { return rope && rpw < 2 ? 2 : rpw; }
// The normalized rows live in (default-sized) shared memory: T * K floats at most this many bytes.
constexpr size_t NORM_SMEM_LIMIT = 48 * 1024;

__device__ __forceinline__ void bf16x2_to_f32(uint32_t v, float& lo, float& hi) {
  lo = __uint_as_float(v << 16);
  hi = __uint_as_float(v & 0xffff0000u);
}

__device__ __forceinline__ void f16x2_to_f32(uint32_t v, float& lo, float& hi) {
  const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&v));
  lo = f.x;
  hi = f.y;
}

template <int TT>
__device__ __forceinline__ void fma8(float (&acc)[TT], const float (&w)[8], const float* x, int T, int K, int k) {
#pragma unroll
  for (int t = 0; t < TT; t++) {
    if (t < T) {
      const float4 a = *reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * K + k);
      const float4 b = *reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * K + k + 4);
      float s = acc[t];
      s = fmaf(w[0], a.x, s); s = fmaf(w[1], a.y, s); s = fmaf(w[2], a.z, s); s = fmaf(w[3], a.w, s);
      s = fmaf(w[4], b.x, s); s = fmaf(w[5], b.y, s); s = fmaf(w[6], b.z, s); s = fmaf(w[7], b.w, s);
      acc[t] = s;
    }
  }
}

// One lane's share of x[t] · W_n[row_n] for every token and each of NR rows (of one weight format and
// K): VEC when rows are 16-byte aligned (K a multiple of 4 for f32, 8 for f16/bf16; always for
// q8_0/q4_0) and so is x; otherwise element by element. The NR rows are streamed in the same loop, so a
// warp has the loads of all of them in flight at once (gate and up rows, a rotary pair), each row
// summed in the order it would be alone.
template <int FMT, int TT, bool VEC, int NR>
__device__ __forceinline__ void row_partials(const DevWeight* const (&w)[NR], const int (&row)[NR], const float* __restrict__ x, int T, int K,
                                             int lane, float (&acc)[NR][TT]) {
  // The quantized loops unroll twice for one row; two rows already give two loads per iteration (and
  // unrolled, q4_0 at 8 tokens spilled at sm_80 under the prologue kernel's 128 registers).
  constexpr int Q_UNROLL = NR == 1 ? 2 : 1;
#pragma unroll
  for (int n = 0; n < NR; n++)
#pragma unroll
    for (int t = 0; t < TT; t++) acc[n][t] = 0.f;

  if constexpr (!VEC) {
    for (int k = lane; k < K; k += 32) {
#pragma unroll
      for (int n = 0; n < NR; n++) {
        const float v = weight_at(*w[n], row[n], k);
#pragma unroll
        for (int t = 0; t < TT; t++)
          if (t < T) acc[n][t] = fmaf(v, x[static_cast<size_t>(t) * K + k], acc[n][t]);
      }
    }
  } else if constexpr (FMT == FMT_F32) {
    const float4* wr[NR];
#pragma unroll
    for (int n = 0; n < NR; n++) wr[n] = reinterpret_cast<const float4*>(static_cast<const float*>(w[n]->data) + static_cast<size_t>(row[n]) * K);
    const int chunks = K / 4;
#pragma unroll 4
    for (int c = lane; c < chunks; c += 32) {
      float4 v[NR];
#pragma unroll
      for (int n = 0; n < NR; n++) v[n] = __ldcs(wr[n] + c);
#pragma unroll
      for (int n = 0; n < NR; n++) {
#pragma unroll
        for (int t = 0; t < TT; t++) {
          if (t < T) {
            const float4 a = *reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * K + c * 4);
            acc[n][t] = fmaf(v[n].x, a.x, fmaf(v[n].y, a.y, fmaf(v[n].z, a.z, fmaf(v[n].w, a.w, acc[n][t]))));
          }
        }
      }
    }
  } else if constexpr (FMT == FMT_F16 || FMT == FMT_BF16) {
    const uint4* wr[NR];
#pragma unroll
    for (int n = 0; n < NR; n++) wr[n] = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w[n]->data) + static_cast<size_t>(row[n]) * K);
    const int chunks = K / 8;
#pragma unroll 4
    for (int c = lane; c < chunks; c += 32) {
      uint4 raw[NR];
#pragma unroll
      for (int n = 0; n < NR; n++) raw[n] = __ldcs(wr[n] + c);
#pragma unroll
      for (int n = 0; n < NR; n++) {
        float v[8];
        if constexpr (FMT == FMT_BF16) {
          bf16x2_to_f32(raw[n].x, v[0], v[1]); bf16x2_to_f32(raw[n].y, v[2], v[3]);
          bf16x2_to_f32(raw[n].z, v[4], v[5]); bf16x2_to_f32(raw[n].w, v[6], v[7]);
        } else {
          f16x2_to_f32(raw[n].x, v[0], v[1]); f16x2_to_f32(raw[n].y, v[2], v[3]);
          f16x2_to_f32(raw[n].z, v[4], v[5]); f16x2_to_f32(raw[n].w, v[6], v[7]);
        }
        fma8<TT>(acc[n], v, x, T, K, c * 8);
      }
    }
  } else if constexpr (FMT == FMT_Q8_0) {
    // 16 quants (half a block) per load; the block scale multiplies the partial sum.
    const uint4* wr[NR];
    const uint16_t* sr[NR];
#pragma unroll
    for (int n = 0; n < NR; n++) {
      wr[n] = reinterpret_cast<const uint4*>(static_cast<const int8_t*>(w[n]->data) + static_cast<size_t>(row[n]) * K);
      sr[n] = w[n]->scales + static_cast<size_t>(row[n]) * (K / 32);
    }
    const int chunks = K / 16;
#pragma unroll Q_UNROLL
    for (int c = lane; c < chunks; c += 32) {
      uint4 raw[NR];
      float d[NR];
#pragma unroll
      for (int n = 0; n < NR; n++) {
        raw[n] = __ldcs(wr[n] + c);
        d[n] = f16_to_f32(sr[n][c >> 1]);
      }
#pragma unroll
      for (int n = 0; n < NR; n++) {
        const uint32_t words[4] = {raw[n].x, raw[n].y, raw[n].z, raw[n].w};
        float partial[TT];
#pragma unroll
        for (int t = 0; t < TT; t++) partial[t] = 0.f;
#pragma unroll
        for (int h = 0; h < 2; h++) {
          float v[8];
#pragma unroll
          for (int b = 0; b < 8; b++) v[b] = static_cast<float>(static_cast<int8_t>((words[h * 2 + b / 4] >> (8 * (b % 4))) & 0xff));
          fma8<TT>(partial, v, x, T, K, c * 16 + h * 8);
        }
#pragma unroll
        for (int t = 0; t < TT; t++) acc[n][t] = fmaf(d[n], partial[t], acc[n][t]);
      }
    }
  } else {  // FMT_Q4_0: one 16-byte block (32 values) per load
    const uint4* wr[NR];
    const uint16_t* sr[NR];
#pragma unroll
    for (int n = 0; n < NR; n++) {
      wr[n] = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w[n]->data) + static_cast<size_t>(row[n]) * (K / 2));
      sr[n] = w[n]->scales + static_cast<size_t>(row[n]) * (K / 32);
    }
    const int blocks = K / 32;
#pragma unroll Q_UNROLL
    for (int c = lane; c < blocks; c += 32) {
      uint4 raw[NR];
      float d[NR];
#pragma unroll
      for (int n = 0; n < NR; n++) {
        raw[n] = __ldcs(wr[n] + c);
        d[n] = f16_to_f32(sr[n][c]);
      }
#pragma unroll
      for (int n = 0; n < NR; n++) {
        const uint32_t words[4] = {raw[n].x, raw[n].y, raw[n].z, raw[n].w};
        float partial[TT];
#pragma unroll
        for (int t = 0; t < TT; t++) partial[t] = 0.f;
        // Byte j holds value j (low nibble) and value j + 16 (high nibble).
#pragma unroll
        for (int half = 0; half < 2; half++) {
#pragma unroll
          for (int q = 0; q < 2; q++) {
            float v[8];
#pragma unroll
            for (int b = 0; b < 8; b++) {
              const uint32_t byte = (words[q * 2 + b / 4] >> (8 * (b % 4))) & 0xff;
              v[b] = static_cast<float>(static_cast<int>(half == 0 ? (byte & 15) : (byte >> 4)) - 8);
            }
            fma8<TT>(partial, v, x, T, K, c * 32 + half * 16 + q * 8);
          }
        }
#pragma unroll
        for (int t = 0; t < TT; t++) acc[n][t] = fmaf(d[n], partial[t], acc[n][t]);
      }
    }
  }
}

// The results of one row (lane 0 holds them): warp sums plus the bias.
template <int TT>
__device__ __forceinline__ void row_sums(const MatmulJob& job, int row, int T, int lane, float (&acc)[TT]) {
  const float b = job.bias.format >= 0 && lane == 0 ? weight_at(job.bias, 0, row) : 0.f;
#pragma unroll
  for (int t = 0; t < TT; t++)
    if (t < T) acc[t] = warp_sum(acc[t]) + b;
}

// The finished results of one row (lane 0 holds them), written to the job's output.
template <int TT>
__device__ __forceinline__ void finish_row(const MatmulJob& job, int row, int T, int lane, float (&acc)[TT]) {
  row_sums<TT>(job, row, T, lane, acc);
#pragma unroll
  for (int t = 0; t < TT; t++)
    if (t < T && lane == 0) job.out[static_cast<size_t>(t) * job.w.rows + row] = acc[t];
}

// The RMSNorm prologue: x's T rows normalized into `xn` (shared memory) with the RMSNorm kernel's
// reduction at 256 threads (block_inv_rms), so the values match its own for rows of under 2048 (it
// uses 1024 threads above); block `writer` also stores them to the prologue's output.
template <int TT>
__device__ __forceinline__ void normalize_rows(const float* __restrict__ x, int T, int K, const MatmulPrologue& pro, float* xn, bool writer) {
  __shared__ float inv_rms[TT];
  const int tid = threadIdx.x;
  for (int t = 0; t < T; t++) {
    const float r = block_inv_rms<GEMV_THREADS>(x + static_cast<size_t>(t) * K, K, pro.eps);
    if (tid == 0) inv_rms[t] = r;
  }
  __syncthreads();
  for (int i = tid; i < T * K; i += GEMV_THREADS) {
    const float v = x[i] * inv_rms[i / K] * weight_at(pro.weight, 0, i % K);
    xn[i] = v;
    if (writer) pro.out[i] = v;
  }
  __syncthreads();
}

// One output row in one warp. EPI_RESIDUAL: then out = residual + result. EPI_SWIGLU: jobs 0 and 1
// (gate, up) for the same row, then out = silu(gate) * up, written after both outputs (so `out` may be
// either of them).
template <int FMT, int TT, bool VEC, int EPI>
__device__ __forceinline__ void gemv_row(const MatmulJob& job, const MatmulJobs& jobs, const MatmulEpilogue& epi, int row,
                                         const float* __restrict__ x, int T, int K) {
  const int lane = threadIdx.x & 31;
  const int N = job.w.rows;
  if constexpr (EPI == EPI_SWIGLU) {
    // The gate row and the up row streamed together.
    float both[2][TT];
    row_partials<FMT, TT, VEC, 2>({&job.w, &jobs.job[1].w}, {row, row}, x, T, K, lane, both);
    finish_row<TT>(job, row, T, lane, both[0]);
    finish_row<TT>(jobs.job[1], row, T, lane, both[1]);
#pragma unroll
    for (int t = 0; t < TT; t++) {
      // The same expression as the separate SwiGLU kernel (elementwise.cu).
      if (t < T && lane == 0) epi.out[static_cast<size_t>(t) * N + row] = both[0][t] / (1.f + expf(-both[0][t])) * both[1][t];
    }
  } else {
    float one[1][TT];
    row_partials<FMT, TT, VEC, 1>({&job.w}, {row}, x, T, K, lane, one);
    float (&acc)[TT] = one[0];
    finish_row<TT>(job, row, T, lane, acc);
    if constexpr (EPI == EPI_RESIDUAL) {
#pragma unroll
      for (int t = 0; t < TT; t++) {
        const size_t i = static_cast<size_t>(t) * N + row;
        if (t < T && lane == 0) epi.out[i] = epi.residual[i] + acc[t];
      }
    }
  }
}

// EPI_ROPE: rotary pair `pair` of job `which` (0 q, 1 k, 2 v) in one warp, rows i and i + half of head
// pair / half: both dot products, then q and k rotated as launch_rope_qk does it, and k and v stored to
// the cache too. Lane t computes token t's angle before the loads, so the double-precision sincos
// overlaps them instead of following the reduction.
template <int FMT, int TT, bool VEC>
__device__ __forceinline__ void gemv_rope_pair(const MatmulJob& job, int which, const RopeEpilogue& rope, int pair,
                                               const float* __restrict__ x, int T, int K) {
  const int lane = threadIdx.x & 31;
  const int half = rope.head_dim / 2;
  const int head = pair / half, i = pair % half;
  const int row = head * rope.head_dim + i;
  const int pos0 = pos_of(rope.start);
  const bool rotate = which < 2;
  float cs = 1.f, sn = 0.f;
  if (rotate && lane < T) rope_cos_sin(pos0 + lane, i, rope.head_dim, rope.theta, cs, sn);
  float pair_sums[2][TT];
  row_partials<FMT, TT, VEC, 2>({&job.w, &job.w}, {row, row + half}, x, T, K, lane, pair_sums);
  float (&a)[TT] = pair_sums[0];
  float (&b)[TT] = pair_sums[1];
  row_sums<TT>(job, row, T, lane, a);
  row_sums<TT>(job, row + half, T, lane, b);
  // k's and v's rows go to their caches when the launch has them (rope_qk's rule: k_cache set), stored
  // as rope_qk stores them; the caches' type is a run-time code here (one store per pair and token
  // does not justify twice the GEMV's instances).
  void* cache = rope.k_cache == nullptr ? nullptr : which == 1 ? rope.k_cache : which == 2 ? rope.v_cache : nullptr;
#pragma unroll
  for (int t = 0; t < TT; t++) {
    if (t < T) {
      const float c = __shfl_sync(0xffffffffu, cs, t), s = __shfl_sync(0xffffffffu, sn, t);
      if (lane == 0) {
        float r1 = a[t], r2 = b[t];
        if (rotate) rope_rotate(a[t], b[t], c, s, r1, r2);
        const size_t o = static_cast<size_t>(t) * job.w.rows + row;
        job.out[o] = r1;
        job.out[o + half] = r2;
        const int pos = pos0 + t;
        if (cache != nullptr && pos >= 0 && pos < rope.max_tokens) {  // the host checks ranges
          const size_t dst = (static_cast<size_t>(head) * rope.max_tokens + pos) * rope.head_dim + i;
          kv_store_as(cache, rope.kv_dtype, dst, r1);
          kv_store_as(cache, rope.kv_dtype, dst + half, r2);
        }
      }
    }
  }
}

// EPI_NONE and EPI_ROPE: blockIdx.y picks the job (fused q/k/v, gate/up); with an epilogue the jobs share their rows.
// NORM: x is first normalized by the RMSNorm prologue (dynamic shared memory of T * K floats), and each
// warp then takes `rpw` rows (gemv_norm_rows_per_warp) so that fewer blocks repeat that; 1 without it.
template <int FMT, int TT, bool VEC, int EPI, bool NORM>
__device__ __forceinline__ void gemv_block(const float* __restrict__ x, int T, int K, const MatmulJobs& jobs, const MatmulEpilogue& epi,
                                           const MatmulPrologue& pro, int rpw) {
  const MatmulJob& job = jobs.job[EPI == EPI_NONE || EPI == EPI_ROPE ? blockIdx.y : 0];
  const float* xs = x;
  const int warp_rows = gemv_warp_rows(rpw, EPI == EPI_ROPE);
  if constexpr (NORM) {
    // A block past its job's rows (k and v have fewer than q) leaves before normalizing x for nothing;
    // block (0, 0), which writes the normalized rows, always has rows.
    if (blockIdx.x * warp_rows * ROWS_PER_BLOCK >= job.w.rows) return;
    QWEN2_DYNAMIC_SMEM(float, xn);
    normalize_rows<TT>(x, T, K, pro, xn, blockIdx.x == 0 && blockIdx.y == 0);
    xs = xn;
  }
  if constexpr (EPI == EPI_ROPE) {
    // Rotary pairs: warp_rows / 2 per warp.
    const int ppw = warp_rows / 2;
#pragma unroll 1
    for (int r = 0; r < ppw; r++) {
      const int pair = (blockIdx.x * ppw + r) * ROWS_PER_BLOCK + (threadIdx.x >> 5);
      if (pair < job.w.rows / 2) gemv_rope_pair<FMT, TT, VEC>(job, blockIdx.y, epi.rope, pair, xs, T, K);
    }
  } else {
#pragma unroll 1
    for (int r = 0; r < rpw; r++) {
      const int row = (blockIdx.x * rpw + r) * ROWS_PER_BLOCK + (threadIdx.x >> 5);
      if (row < job.w.rows) gemv_row<FMT, TT, VEC, EPI>(job, jobs, epi, row, xs, T, K);
    }
  }
}

// Two kernels for their register budgets (launch bounds): ptxas's default suits the plain GEMV (sized
// for 2 blocks per SM it spilled at q4_0 with 8 tokens), the prologue variant spills at the default.
template <int FMT, int TT, bool VEC, int EPI>
__global__ void __launch_bounds__(GEMV_THREADS) gemv_kernel(const float* __restrict__ x, int T, int K, MatmulJobs jobs, MatmulEpilogue epi,
                                                            MatmulPrologue pro) {
  await_prior_grids();
  gemv_block<FMT, TT, VEC, EPI, false>(x, T, K, jobs, epi, pro, 1);
}
template <int FMT, int TT, int EPI>
__global__ void __launch_bounds__(GEMV_THREADS, 2) gemv_norm_kernel(const float* __restrict__ x, int T, int K, MatmulJobs jobs, MatmulEpilogue epi,
                                                                    MatmulPrologue pro, int rpw) {
  await_prior_grids();
  gemv_block<FMT, TT, true, EPI, true>(x, T, K, jobs, epi, pro, rpw);
}

// A GEMV launch's grid, dynamic shared memory and rows per warp.
struct GemvLaunch {
  dim3 grid;
  size_t smem;
  int rpw;
};

template <int FMT, int TT, int EPI>
cudaError_t launch_vec(cudaStream_t stream, const float* x, int T, int K, const MatmulJobs& jobs, const MatmulEpilogue& epi,
                       const MatmulPrologue& pro, const GemvLaunch& l) {
  if (pro.weight.format >= 0) {
    auto* kfn = gemv_norm_kernel<FMT, TT, EPI>;
    LAUNCH(kfn, l.grid, GEMV_THREADS, l.smem, stream, x, T, K, jobs, epi, pro, l.rpw);
  } else {
    auto* kfn = gemv_kernel<FMT, TT, true, EPI>;
    LAUNCH(kfn, l.grid, GEMV_THREADS, 0, stream, x, T, K, jobs, epi, pro);
  }
  return cudaGetLastError();
}

// Prologues and epilogues only on the vector path (launch_gemv runs the scalar path's as separate kernels).
template <int FMT, int TT>
cudaError_t launch_fmt_tt(cudaStream_t stream, const float* x, int T, int K, const MatmulJobs& jobs, const MatmulEpilogue& epi,
                          const MatmulPrologue& pro, bool vec, const GemvLaunch& l) {
  if (vec) {
    switch (epi.kind) {
      case EPI_NONE: return launch_vec<FMT, TT, EPI_NONE>(stream, x, T, K, jobs, epi, pro, l);
      case EPI_RESIDUAL: return launch_vec<FMT, TT, EPI_RESIDUAL>(stream, x, T, K, jobs, epi, pro, l);
      case EPI_SWIGLU: return launch_vec<FMT, TT, EPI_SWIGLU>(stream, x, T, K, jobs, epi, pro, l);
      case EPI_ROPE: return launch_vec<FMT, TT, EPI_ROPE>(stream, x, T, K, jobs, epi, pro, l);
      default: return cudaErrorInvalidValue;
    }
  }
  if (epi.kind != EPI_NONE || pro.weight.format >= 0) return cudaErrorInvalidValue;
  auto* kfn = gemv_kernel<FMT, TT, false, EPI_NONE>;
  LAUNCH(kfn, l.grid, GEMV_THREADS, 0, stream, x, T, K, jobs, epi, pro);
  return cudaGetLastError();
}

template <int FMT>
cudaError_t launch_fmt(cudaStream_t stream, const float* x, int T, int K, const MatmulJobs& jobs, const MatmulEpilogue& epi,
                       const MatmulPrologue& pro, bool vec, const GemvLaunch& l) {
  if (T <= 1) return launch_fmt_tt<FMT, 1>(stream, x, T, K, jobs, epi, pro, vec, l);
  if (T <= 2) return launch_fmt_tt<FMT, 2>(stream, x, T, K, jobs, epi, pro, vec, l);
  if (T <= 4) return launch_fmt_tt<FMT, 4>(stream, x, T, K, jobs, epi, pro, vec, l);
  return launch_fmt_tt<FMT, 8>(stream, x, T, K, jobs, epi, pro, vec, l);
}

// Rows of one job a block covers.
int gemv_rows_per_block(int rpw, bool rope) { return ROWS_PER_BLOCK * gemv_warp_rows(rpw, rope); }

}  // namespace

int gemv_norm_rows_per_warp(const int* rows, int count, bool shared_rows, bool rope, int sms) {
  for (int rpw = NORM_ROWS_PER_WARP; rpw > 1; rpw /= 2) {
    const int per_block = gemv_rows_per_block(rpw, rope);
    long blocks = 0, widest = 0;
    for (int i = 0; i < count; i++) {
      const long b = (rows[i] + per_block - 1) / per_block;
      blocks += b;
      widest = b > widest ? b : widest;
    }
    if ((shared_rows ? widest : blocks) >= 2L * sms) return rpw;
  }
  return 1;
}

cudaError_t launch_gemv(cudaStream_t stream, const float* x, int tokens, int K, const MatmulJobs& jobs, const MatmulEpilogue& epilogue,
                        const MatmulPrologue& prologue) {
  if (jobs.count <= 0 || tokens > GEMV_MAX_TOKENS) return cudaErrorInvalidValue;
  int max_rows = 0;
  for (int i = 0; i < jobs.count; i++) max_rows = jobs.job[i].w.rows > max_rows ? jobs.job[i].w.rows : max_rows;
  const int fmt = jobs.job[0].w.format;
  bool same_format = true;
  for (int i = 1; i < jobs.count; i++) same_format = same_format && jobs.job[i].w.format == fmt;
  const bool x_aligned = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  bool vec;
  switch (fmt) {
    case FMT_F32: vec = x_aligned && K % 4 == 0; break;
    case FMT_F16:
    case FMT_BF16: vec = x_aligned && K % 8 == 0; break;
    default: vec = x_aligned && K % 32 == 0; break;
  }
  for (int i = 0; i < jobs.count && vec; i++) {
    if ((reinterpret_cast<uintptr_t>(jobs.job[i].w.data) & 15) != 0) vec = false;
  }
  const bool norm = prologue.weight.format >= 0;
  const size_t smem = norm ? static_cast<size_t>(tokens) * K * sizeof(float) : 0;
  if (!same_format) return cudaErrorInvalidValue;  // launch_matmul groups the weights by format
  if (norm && (!vec || smem > NORM_SMEM_LIMIT)) {
    // Unaligned, or too wide for shared memory: the RMSNorm kernel, then the GEMV on its output.
    cudaError_t err = launch_rmsnorm(stream, x, prologue.weight, prologue.eps, prologue.out, tokens, K);
    if (err != cudaSuccess) return err;
    return launch_gemv(stream, prologue.out, tokens, K, jobs, epilogue, NO_PROLOGUE);
  }
  if (!vec && epilogue.kind != EPI_NONE) {
    // Unaligned rows or x (never at Qwen2's shapes): the plain kernel, then the elementwise op it replaces.
    cudaError_t err = launch_gemv(stream, x, tokens, K, jobs, NO_EPILOGUE);
    if (err != cudaSuccess) return err;
    if (epilogue.kind == EPI_ROPE) {
      const RopeEpilogue& r = epilogue.rope;
      return launch_rope_qk(stream, jobs.job[0].out, jobs.job[0].w.rows / r.head_dim, jobs.job[1].out, jobs.job[1].w.rows / r.head_dim, tokens,
                            r.head_dim, r.start, r.theta, jobs.job[2].out, r.k_cache, r.v_cache, r.kv_dtype, r.max_tokens);
    }
    const size_t n = static_cast<size_t>(tokens) * jobs.job[0].w.rows;
    return epilogue.kind == EPI_RESIDUAL ? launch_add(stream, epilogue.residual, jobs.job[0].out, epilogue.out, n)
                                         : launch_swiglu(stream, jobs.job[0].out, jobs.job[1].out, epilogue.out, n);
  }
  // With a residual or SwiGLU epilogue the jobs share their rows, one warp per row index (grid y 1);
  // with the prologue each warp takes gemv_norm_rows_per_warp rows; with the rope a warp takes rotary pairs.
  const bool rope = epilogue.kind == EPI_ROPE;
  const bool shared_rows = epilogue.kind == EPI_RESIDUAL || epilogue.kind == EPI_SWIGLU;
  int rows[MATMUL_MAX_FUSED];
  for (int i = 0; i < jobs.count; i++) rows[i] = jobs.job[i].w.rows;
  const int rpw = norm ? gemv_norm_rows_per_warp(rows, jobs.count, shared_rows, rope, multiprocessor_count()) : 1;
  const int rows_per_block = gemv_rows_per_block(rpw, rope);
  const GemvLaunch l{dim3((max_rows + rows_per_block - 1) / rows_per_block, shared_rows ? 1 : jobs.count), smem, rpw};
  switch (fmt) {
    case FMT_F32: return launch_fmt<FMT_F32>(stream, x, tokens, K, jobs, epilogue, prologue, vec, l);
    case FMT_F16: return launch_fmt<FMT_F16>(stream, x, tokens, K, jobs, epilogue, prologue, vec, l);
    case FMT_BF16: return launch_fmt<FMT_BF16>(stream, x, tokens, K, jobs, epilogue, prologue, vec, l);
    case FMT_Q8_0: return launch_fmt<FMT_Q8_0>(stream, x, tokens, K, jobs, epilogue, prologue, vec, l);
    case FMT_Q4_0: return launch_fmt<FMT_Q4_0>(stream, x, tokens, K, jobs, epilogue, prologue, vec, l);
    default: return cudaErrorInvalidValue;
  }
}
