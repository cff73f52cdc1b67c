// KV cache writes and causal grouped-query attention over the cache, flash-decoding style: the keys are
// cut into chunks; one block per (kv head, chunk, query token) computes a partial softmax-weighted sum
// for every query head of its group (so K and V are read once per group, not once per head), and the
// last of a token's chunks to finish merges them with their running maxima (counted by an atomic per
// (token, kv head), so no second kernel is launched: a decode step saves one launch per layer).
// Positions come from PosArg, so a captured decode pass replays at any position; chunks outside a
// token's visible keys exit at once and the merge reads only the chunks it can see. Chunks are short
// (64 keys while that keeps at most 256 of them), so that at short contexts a decode step's work is
// spread over several blocks per kv head. Prefill passes where it is estimated faster take
// attention_tiled.cu instead, or at 16-bit prefill precision attention_mma.cu (plan.kind). The kernels
// are templates on the cache's element type (kv_cache.cuh): f16 caches are rounded as they are written
// and widened exactly as they are read, the arithmetic being f32 for both.
#include <cfloat>
#include <cmath>
#include "kv_cache.cuh"

namespace {

constexpr int ATT_THREADS = 256;
constexpr int ATT_TILE = 64;     // keys scored at a time
constexpr int MAX_GROUP = 32;    // query heads per kv head (checked on the host); kernels for 8, 16, 32
constexpr int MIN_CHUNK = ATT_TILE;
constexpr int TARGET_SPLITS = 256;  // chunks grow past MIN_CHUNK to keep at most this many (fewer empty blocks)
constexpr size_t SCRATCH_LIMIT_FLOATS = size_t(64) << 20;  // 256 MiB of partial results at most
// Grid y and z stop at 65535 blocks. The emulated kernel tests lower this to slice passes of a few tokens.
#ifndef QWEN2_MAX_GRID_YZ
#define QWEN2_MAX_GRID_YZ 65535
#endif
constexpr int MAX_GRID_YZ = QWEN2_MAX_GRID_YZ;

template <typename KV>
__global__ void write_kv_kernel(KV* k_cache, KV* v_cache, const float* k, const float* v, int kv_heads,
                                int head_dim, int max_tokens, PosArg start) {
  await_prior_grids();
  const int t = blockIdx.x, g = blockIdx.y;
  const int pos = pos_of(start) + t;
  if (pos < 0 || pos >= max_tokens) return;  // the host checks ranges; never write outside the cache
  const size_t src = static_cast<size_t>(t) * kv_heads * head_dim + static_cast<size_t>(g) * head_dim;
  const size_t dst = (static_cast<size_t>(g) * max_tokens + pos) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    k_cache[dst + d] = kv_from_f32<KV>(k[src + d]);
    v_cache[dst + d] = kv_from_f32<KV>(v[src + d]);
  }
}

// Partial results, per (token, head, split): head_dim accumulators, then the running max m and sum l.
__device__ __forceinline__ size_t part_index(int t, int h, int s, int heads, int splits) {
  return (static_cast<size_t>(t) * heads + h) * splits + s;
}

// The chunks [first, last] that hold keys visible to the query at `pos` (causal, optional sliding window).
struct VisibleChunks {
  int first, last;
};
__device__ __forceinline__ VisibleChunks visible_chunks(int pos, int window, int chunk, int splits) {
  const int first_key = window > 0 ? max(0, pos - window + 1) : 0;
  return VisibleChunks{first_key / chunk, min(splits - 1, pos / chunk)};
}

// The merge reads partial results written by other blocks of the grid, so through L2 (__ldcg), past
// this SM's L1. M: the largest max of head h's chunks that token t sees and that saw a key.
__device__ __forceinline__ float chunks_max(const float* part_ml, int t, int h, int heads, int splits, VisibleChunks vis) {
  float mx = -FLT_MAX;
  for (int s = vis.first; s <= vis.last; s++) {
    const size_t p = part_index(t, h, s, heads, splits);
    if (__ldcg(part_ml + 2 * p + 1) > 0.f) mx = fmaxf(mx, __ldcg(part_ml + 2 * p));
  }
  return mx;
}

// Element e of head h's output for token t: sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s over the
// chunks the token sees (only those were written), M from chunks_max.
__device__ __forceinline__ float merge_chunks(const float* part_acc, const float* part_ml, int t, int h, int e, int heads, int head_dim,
                                              int splits, VisibleChunks vis, float mx) {
  float num = 0.f, den = 0.f;
  for (int s = vis.first; s <= vis.last; s++) {
    const size_t p = part_index(t, h, s, heads, splits);
    const float l = __ldcg(part_ml + 2 * p + 1);
    if (!(l > 0.f)) continue;
    const float w = expf(__ldcg(part_ml + 2 * p) - mx);
    num = fmaf(w, __ldcg(part_acc + p * head_dim + e), num);
    den = fmaf(w, l, den);
  }
  return num / den;
}

// Register budget (launch bounds): 3 blocks per SM, 2 for groups above 16 (acc[32]); ptxas spilled
// at its default at sm_80 for groups of 32, and at 4 blocks per SM for groups of 16.
template <int MAXG, typename KV>
__global__ void __launch_bounds__(ATT_THREADS, MAXG > 16 ? 2 : 3) attention_split_kernel(
    const float* __restrict__ q, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache, int heads,
    int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window, int chunk, int splits,
    float* __restrict__ part_acc, float* __restrict__ part_ml, int* __restrict__ counters, float* __restrict__ out) {
  await_prior_grids();
  QWEN2_DYNAMIC_SMEM(float, smem);
  const int g0 = blockIdx.x, s = blockIdx.y, t = blockIdx.z;
  const int group = heads / kv_heads;
  const int pos = pos_of(start) + t;
  const int first = window > 0 ? max(0, pos - window + 1) : 0;
  const int begin = max(first, s * chunk);
  const int end = min(pos, (s + 1) * chunk - 1);  // inclusive
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  if (begin > end) return;  // nothing of this chunk is visible to this query (the merge skips it)

  // Shared memory: scaled queries [group][head_dim], scores [group][TILE], per-head running max/sum, the
  // rescale factor of the current tile and the tile's keys [TILE][head_dim + 1] (rows padded by one float:
  // threads reading different keys at the same dimension hit different banks); the reduction buffer
  // reuses the query area at the end.
  const int rows = max(1, ATT_THREADS / head_dim);  // key-parallel thread rows in the V product
  float* q_s = smem;
  const int q_floats = max(group * head_dim, rows * group * head_dim);
  float* sc = q_s + q_floats;
  float* m_s = sc + group * ATT_TILE;
  float* l_s = m_s + group;
  float* corr_s = l_s + group;
  float* k_s = corr_s + group;
  const int ks_stride = head_dim + 1;

  const float* qrow = q + static_cast<size_t>(t) * heads * head_dim + static_cast<size_t>(g0) * group * head_dim;
  for (int i = tid; i < group * head_dim; i += ATT_THREADS) q_s[i] = qrow[i] * scale;
  for (int g = tid; g < group; g += ATT_THREADS) {
    m_s[g] = -FLT_MAX;
    l_s[g] = 0.f;
  }
  __syncthreads();

  const KV* kbase = k_cache + static_cast<size_t>(g0) * max_tokens * head_dim;
  const KV* vbase = v_cache + static_cast<size_t>(g0) * max_tokens * head_dim;
  const int r = tid / head_dim, d = tid % head_dim;
  const bool accumulates = r < rows && tid < rows * head_dim;
  float acc[MAXG];
#pragma unroll
  for (int g = 0; g < MAXG; g++) acc[g] = 0.f;

  for (int tile = begin; tile <= end; tile += ATT_TILE) {
    const int n = min(ATT_TILE, end - tile + 1);
    // The tile's keys into shared memory (coalesced reads of whole rows).
    const KV* ktile = kbase + static_cast<size_t>(tile) * head_dim;
    for (int i = tid; i < n * head_dim; i += ATT_THREADS) k_s[(i / head_dim) * ks_stride + i % head_dim] = kv_to_f32(ktile[i]);
    __syncthreads();
    // Scores: one thread per (query head, key), a whole dot product each (four partial sums for
    // instruction-level parallelism); a warp reads one query row (broadcast) and 32 keys.
    for (int i = tid; i < group * n; i += ATT_THREADS) {
      const int g = i / n, j = i % n;
      const float* qv = q_s + g * head_dim;
      const float* kv = k_s + j * ks_stride;
      float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;
      int e = 0;
      for (; e + 4 <= head_dim; e += 4) {
        d0 = fmaf(qv[e], kv[e], d0);
        d1 = fmaf(qv[e + 1], kv[e + 1], d1);
        d2 = fmaf(qv[e + 2], kv[e + 2], d2);
        d3 = fmaf(qv[e + 3], kv[e + 3], d3);
      }
      for (; e < head_dim; e++) d0 = fmaf(qv[e], kv[e], d0);
      sc[g * ATT_TILE + j] = (d0 + d1) + (d2 + d3);
    }
    __syncthreads();
    // Online softmax per head: warp w handles heads w, w + 8, ...
    for (int g = warp; g < group; g += ATT_THREADS / 32) {
      float mx = -FLT_MAX;
      for (int j = lane; j < n; j += 32) mx = fmaxf(mx, sc[g * ATT_TILE + j]);
      mx = warp_max(mx);
      const float m_old = m_s[g];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.f;
      for (int j = lane; j < n; j += 32) {
        const float p = expf(sc[g * ATT_TILE + j] - m_new);
        sc[g * ATT_TILE + j] = p;
        sum += p;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float c = expf(m_old - m_new);
        corr_s[g] = c;
        l_s[g] = l_s[g] * c + sum;
        m_s[g] = m_new;
      }
    }
    __syncthreads();
    // acc[g] (for this thread's dimension d) += sum over its keys of p[g][j] * V[j][d].
    if (accumulates) {
#pragma unroll
      for (int g = 0; g < MAXG; g++)
        if (g < group) acc[g] *= corr_s[g];
      for (int j = r; j < n; j += rows) {
        const float vv = kv_to_f32(vbase[static_cast<size_t>(tile + j) * head_dim + d]);
#pragma unroll
        for (int g = 0; g < MAXG; g++)
          if (g < group) acc[g] = fmaf(sc[g * ATT_TILE + j], vv, acc[g]);
      }
    }
    __syncthreads();
  }

  // Merge the key-parallel rows and write this split's partial result.
  float* red = q_s;
  if (accumulates) {
#pragma unroll
    for (int g = 0; g < MAXG; g++)
      if (g < group) red[(r * group + g) * head_dim + d] = acc[g];
  }
  __syncthreads();
  for (int i = tid; i < group * head_dim; i += ATT_THREADS) {
    const int g = i / head_dim, e = i % head_dim;
    float v = 0.f;
    for (int rr = 0; rr < rows; rr++) v += red[(rr * group + g) * head_dim + e];
    const size_t p = part_index(t, g0 * group + g, s, heads, splits);
    part_acc[p * head_dim + e] = v;
  }
  for (int g = tid; g < group; g += ATT_THREADS) {
    const size_t p = part_index(t, g0 * group + g, s, heads, splits);
    part_ml[2 * p] = m_s[g];
    part_ml[2 * p + 1] = l_s[g];
  }

  // Count this chunk in; the token's last visible chunk to arrive merges them all for the group's heads.
  // The fence makes this block's partial results visible device-wide before it is counted.
  __shared__ int merges;
  __threadfence();
  __syncthreads();
  const VisibleChunks vis = visible_chunks(pos, window, chunk, splits);
  if (tid == 0) {
    int* counter = counters + static_cast<size_t>(t) * kv_heads + g0;
    merges = atomicAdd(counter, 1) == vis.last - vis.first;
    if (merges) *counter = 0;  // every other chunk has counted: ready for the next pass
  }
  __syncthreads();
  if (!merges) return;
  __threadfence();
  // Each head's M once (in corr_s, free now), not once per output element.
  for (int g = tid; g < group; g += ATT_THREADS) corr_s[g] = chunks_max(part_ml, t, g0 * group + g, heads, splits, vis);
  __syncthreads();
  for (int i = tid; i < group * head_dim; i += ATT_THREADS) {
    const int g = i / head_dim, h = g0 * group + g, e = i % head_dim;
    out[(static_cast<size_t>(t) * heads + h) * head_dim + e] = merge_chunks(part_acc, part_ml, t, h, e, heads, head_dim, splits, vis, corr_s[g]);
  }
}

size_t split_smem_bytes(int group, int head_dim) {
  const int rows = ATT_THREADS / head_dim > 1 ? ATT_THREADS / head_dim : 1;
  const int q_floats = (group * head_dim > rows * group * head_dim) ? group * head_dim : rows * group * head_dim;
  return sizeof(float) * (q_floats + group * ATT_TILE + 3 * group + ATT_TILE * (head_dim + 1));
}

// The split kernel over a cache of KV: one launch per slice of MAX_GRID_YZ tokens.
template <typename KV>
cudaError_t launch_split_attention(cudaStream_t stream, const float* q, const KV* k_cache, const KV* v_cache, int tokens, int heads, int kv_heads,
                                   int head_dim, int max_tokens, PosArg start, float scale, int window, const AttentionPlan& plan, float* scratch,
                                   int* counters, float* out) {
  const int group = heads / kv_heads;
  const size_t smem = split_smem_bytes(group, head_dim);
  auto kernel = group <= 8 ? attention_split_kernel<8, KV> : group <= 16 ? attention_split_kernel<16, KV> : attention_split_kernel<32, KV>;
  if (smem > 48 * 1024) {
    // Above the default limit the kernel must opt in (idempotent; not a stream operation).
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  float* part_acc = scratch;
  float* part_ml = scratch + static_cast<size_t>(tokens) * heads * plan.splits * head_dim;
  // Tokens index grid z, which stops at 65535: longer passes run in slices, each with its rows of q,
  // out and the partial results, at its own start position (the counters are back at zero after each).
  for (int t0 = 0; t0 < tokens; t0 += MAX_GRID_YZ) {
    const int n = tokens - t0 < MAX_GRID_YZ ? tokens - t0 : MAX_GRID_YZ;
    const size_t rows = static_cast<size_t>(t0) * heads;
    const PosArg at{start.ptr, start.value + t0};
    float* acc = part_acc + rows * plan.splits * head_dim;
    float* ml = part_ml + rows * plan.splits * 2;
    LAUNCH(kernel, dim3(kv_heads, plan.splits, n), ATT_THREADS, smem, stream, q + rows * head_dim, k_cache, v_cache, heads, kv_heads, head_dim,
           max_tokens, at, scale, window, plan.chunk, plan.splits, acc, ml, counters, out + rows * head_dim);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t launch_write_kv(cudaStream_t stream, void* k_cache, void* v_cache, int kv_dtype, const float* k, const float* v, int tokens,
                            int kv_heads, int head_dim, int max_tokens, PosArg start) {
  if (tokens <= 0) return cudaSuccess;
  const int threads = head_dim < 128 ? ((head_dim + 31) / 32) * 32 : 128;
  const dim3 grid(tokens, kv_heads);
  if (kv_dtype == KV_F32) {
    LAUNCH(write_kv_kernel<float>, grid, threads, 0, stream, static_cast<float*>(k_cache), static_cast<float*>(v_cache), k, v, kv_heads, head_dim,
           max_tokens, start);
  } else if (kv_dtype == KV_F16) {
    LAUNCH(write_kv_kernel<__half>, grid, threads, 0, stream, static_cast<__half*>(k_cache), static_cast<__half*>(v_cache), k, v, kv_heads, head_dim,
           max_tokens, start);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

AttentionPlan plan_attention(int tokens, int heads, int kv_heads, int head_dim, int key_capacity, bool tensor_cores) {
  const int sms = multiprocessor_count();
  AttentionPlan plan{};
  if (tensor_cores && attention_mma_suits(tokens, heads, kv_heads, head_dim, key_capacity, sms)) {
    plan.kind = AttentionKind::Mma;
    return plan;
  }
  if (attention_tiled_suits(tokens, heads, kv_heads, head_dim, key_capacity, sms)) {
    plan.kind = AttentionKind::Tiled;
    return plan;
  }
  return plan_split_attention(tokens, heads, head_dim, key_capacity);
}

bool prefill_attention_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms, int blocks_per_sm, double macs_per_cycle) {
  if (head_dim != 64 && head_dim != 128) return false;
  if (tokens < PREFILL_ATTENTION_MIN_TOKENS || kv_heads < 1 || heads % kv_heads != 0 || sms < 1 || keys < tokens) return false;
  // Prefill kernel: waves of blocks_per_sm blocks per SM, each as long as the longest block (the last rows
  // see every key), a tile of 64 rows x 64 keys x head_dim x 2 multiply-adds at macs_per_cycle. It wins on
  // long prompts even with SMs to spare; with a long prefix and few tokens its few blocks would walk
  // every key alone. Split kernel: every (query, visible key) pair's head_dim x 2 FMAs for each head,
  // spread over all SMs at about 16 per cycle (two shared-memory loads per FMA).
  const double blocks = std::ceil(static_cast<double>(tokens) * (heads / kv_heads) / PREFILL_ATTENTION_ROWS) * kv_heads;
  const double waves = std::ceil(blocks / (static_cast<double>(blocks_per_sm) * sms));
  const double tiles = std::ceil(static_cast<double>(keys) / PREFILL_ATTENTION_KEYS);
  const double prefill = waves * tiles * (static_cast<double>(PREFILL_ATTENTION_ROWS) * PREFILL_ATTENTION_KEYS * head_dim * 2 / macs_per_cycle);
  const double pairs = static_cast<double>(tokens) * (keys - (tokens - 1) / 2.0);
  const double split = pairs * heads * head_dim * 2 / (16.0 * sms);
  return prefill < split;
}

AttentionPlan plan_split_attention(int tokens, int heads, int head_dim, int key_capacity) {
  AttentionPlan plan{};
  const size_t per_split = static_cast<size_t>(tokens) * heads * (head_dim + 2);
  int chunk = MIN_CHUNK;
  if (key_capacity > chunk * TARGET_SPLITS) chunk = ((key_capacity + TARGET_SPLITS - 1) / TARGET_SPLITS + ATT_TILE - 1) / ATT_TILE * ATT_TILE;
  int splits = (key_capacity + chunk - 1) / chunk;
  const size_t max_splits = per_split > 0 ? (SCRATCH_LIMIT_FLOATS / per_split > 0 ? SCRATCH_LIMIT_FLOATS / per_split : 1) : 1;
  if (static_cast<size_t>(splits) > max_splits) {
    chunk = static_cast<int>((key_capacity + max_splits - 1) / max_splits);
    chunk = ((chunk + ATT_TILE - 1) / ATT_TILE) * ATT_TILE;
    splits = (key_capacity + chunk - 1) / chunk;
  }
  if (splits < 1) splits = 1;
  plan.chunk = chunk;
  plan.splits = splits;
  plan.scratch_floats = per_split * splits;
  return plan;
}

cudaError_t launch_attention(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens, int heads,
                             int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window,
                             const AttentionPlan& plan, float* scratch, int* counters, float* out) {
  if (tokens <= 0) return cudaSuccess;
  const int group = heads / kv_heads;
  if (plan.kind == AttentionKind::Tiled)
    return launch_attention_tiled(stream, q, k_cache, v_cache, kv_dtype, tokens, heads, kv_heads, head_dim, max_tokens, start, scale, window, out);
  if (plan.kind == AttentionKind::Mma)
    return launch_attention_mma(stream, q, k_cache, v_cache, kv_dtype, tokens, heads, kv_heads, head_dim, max_tokens, start, scale, window, out);
  if (group < 1 || group > MAX_GROUP || heads % kv_heads != 0 || head_dim < 1 || head_dim > 256 || counters == nullptr) return cudaErrorInvalidValue;
  if (kv_dtype == KV_F32)
    return launch_split_attention(stream, q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), tokens, heads, kv_heads, head_dim,
                                  max_tokens, start, scale, window, plan, scratch, counters, out);
  if (kv_dtype == KV_F16)
    return launch_split_attention(stream, q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), tokens, heads, kv_heads, head_dim,
                                  max_tokens, start, scale, window, plan, scratch, counters, out);
  return cudaErrorInvalidValue;
}

size_t attention_counter_ints(int tokens, int kv_heads) {
  if (tokens <= 0 || kv_heads <= 0) return 0;
  return static_cast<size_t>(tokens < MAX_GRID_YZ ? tokens : MAX_GRID_YZ) * kv_heads;
}
