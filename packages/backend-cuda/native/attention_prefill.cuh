// What the two prefill attention kernels (attention_tiled.cu in f32, attention_mma.cu on the tensor
// cores) share: a block takes PREFILL_ATTENTION_ROWS query rows of one kv head (blockIdx.y), a row being
// a (token, head of the group) pair, and walks the keys its rows can see; the last rows go first. Both
// are templates on the cache's element type KV (kv_cache.cuh) as well as on head_dim.
#pragma once
#include "kv_cache.cuh"

// This block's first row and the keys any of its rows sees: from the first row's window start to the
// last row's position, inclusive (the host keeps passes inside the cache).
struct PrefillBlock {
  int row0, key_begin, key_end;
};
// Last rows first (blockIdx.x counts from the end): they see the most keys, so the longest blocks start
// in the first wave and the short ones fill in behind them (causal prefill's load balance).
__device__ __forceinline__ PrefillBlock prefill_block(int tokens, int group, int base, int window, int max_tokens) {
  const int row0 = (gridDim.x - 1 - blockIdx.x) * PREFILL_ATTENTION_ROWS;
  const int t_first = row0 / group, t_last = min(tokens - 1, (row0 + PREFILL_ATTENTION_ROWS - 1) / group);
  return PrefillBlock{row0, window > 0 ? max(0, base + t_first - window + 1) : 0, min(base + t_last, max_tokens - 1)};
}

// Row rt's position (-1 past the pass: it sees nothing) and its first visible key.
__device__ __forceinline__ int row_position(int rt, int total_rows, int group, int base) { return rt < total_rows ? base + rt / group : -1; }
__device__ __forceinline__ int first_visible_key(int pos, int window) { return window > 0 ? max(0, pos - window + 1) : 0; }

// Row rt's index in q and out ([tokens][heads] rows of head_dim) for kv head g0.
__device__ __forceinline__ size_t row_index(int rt, int group, int heads, int g0) {
  return static_cast<size_t>(rt / group) * heads + static_cast<size_t>(g0) * group + rt % group;
}

// Every prefill kernel on a cache of KV takes these arguments (head_dim is its template parameter).
template <typename KV>
using PrefillAttentionKernel = void (*)(const float*, const KV*, const KV*, int, int, int, int, PosArg, float, int, float*);

// Launches `kernel` (null: a head_dim it has no instance for) over every row block of every kv head.
template <typename KV>
inline cudaError_t launch_prefill_attention(PrefillAttentionKernel<KV> kernel, size_t smem, int threads, cudaStream_t stream, const float* q,
                                            const KV* k_cache, const KV* v_cache, int tokens, int heads, int kv_heads, int max_tokens,
                                            PosArg start, float scale, int window, float* out) {
  if (tokens <= 0) return cudaSuccess;
  if (kernel == nullptr || kv_heads < 1 || kv_heads > 65535 || heads % kv_heads != 0) return cudaErrorInvalidValue;
  if (smem > 48 * 1024) {
    // Above the default limit the kernel must opt in (idempotent; not a stream operation).
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(ceil_div(static_cast<size_t>(tokens) * (heads / kv_heads), PREFILL_ATTENTION_ROWS), kv_heads);
  LAUNCH(kernel, grid, threads, smem, stream, q, k_cache, v_cache, tokens, heads, kv_heads, max_tokens, start, scale, window, out);
  return cudaGetLastError();
}
