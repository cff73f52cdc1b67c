// Causal grouped-query attention for prefill-sized passes, flash-attention style on the CUDA cores: one
// block takes 64 query rows of one kv head (rows are (token, head of the group) pairs, so a group's
// heads share every key load) and walks the visible keys in tiles of 64, keeping a running max and sum
// per row. Each key tile is read from the cache once per 64 rows, where the split kernel reads it once
// per token; scores and the value product are register-tiled (4 x 4 scores, 4 rows x head_dim / 16
// outputs per thread) from shared memory laid out for 128-bit loads; and no partial results go through
// global memory. f32 throughout, like the split kernel, so the two agree to rounding (an f16 cache's
// halves are widened as the tiles are loaded; the tiles stay f32).
#include <cfloat>
#include <cmath>
#include "attention_prefill.cuh"

namespace {

constexpr int TILED_THREADS = 256;  // 16 x 16: ty picks 4 rows, tx 4 keys (scores) or columns (output)
constexpr int ROWS = PREFILL_ATTENTION_ROWS;  // query rows per block
constexpr int KEYS = PREFILL_ATTENTION_KEYS;  // keys per tile
constexpr int PAD = 4;              // row padding of the transposed tiles (keeps 16-byte alignment)
constexpr int QS = ROWS + PAD;      // stride of qT [head_dim][QS] and pT [KEYS][QS]
constexpr int KS = KEYS + PAD;      // stride of kT [head_dim][KS]

// Shared memory: scaled queries transposed, the key tile transposed (then the value tile in the same
// space: the two are never needed at once), and the tile's probabilities transposed.
__host__ __device__ constexpr int kv_tile_floats(int head_dim) { return head_dim * KS > KEYS * head_dim ? head_dim * KS : KEYS * head_dim; }
constexpr size_t tiled_smem_floats(int head_dim) { return static_cast<size_t>(head_dim) * QS + kv_tile_floats(head_dim) + KEYS * QS; }

// Row r of the block (0..63) is flattened row row0 + r = token * group + head-in-group.
template <int D, typename KV>
__global__ void __launch_bounds__(TILED_THREADS, 2) attention_tiled_kernel(
    const float* __restrict__ q, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache, int tokens, int heads,
    int kv_heads, int max_tokens, PosArg start, float scale, int window, float* __restrict__ out) {
  await_prior_grids();
  static_assert(D % 64 == 0, "head_dim must be a multiple of 64");
  constexpr int D4 = D / 4;
  constexpr int COLS = D / 64;  // float4 column groups per thread in the output: columns c * 64 + tx * 4 + e
  QWEN2_DYNAMIC_SMEM(float, smem);
  float* qT = smem;
  float* kv = qT + D * QS;  // kT [D][KS], later v [KEYS][D]
  float* pT = kv + kv_tile_floats(D);

  const int group = heads / kv_heads;
  const int g0 = blockIdx.y;
  const int total_rows = tokens * group;
  const int base = pos_of(start);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const PrefillBlock blk = prefill_block(tokens, group, base, window, max_tokens);
  const int row0 = blk.row0, key_begin = blk.key_begin, key_end = blk.key_end;

  // Queries, scaled, transposed: qT[d][r]. A warp reads one float4 of 32 rows (32 distinct rows, so the
  // transposed stores fall in distinct banks); rows past the pass are zero.
  for (int i = tid; i < ROWS * D4; i += TILED_THREADS) {
    const int r = i % ROWS, d4 = i / ROWS, rt = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (rt < total_rows) v = reinterpret_cast<const float4*>(q + row_index(rt, group, heads, g0) * D)[d4];
    qT[(4 * d4 + 0) * QS + r] = v.x * scale;
    qT[(4 * d4 + 1) * QS + r] = v.y * scale;
    qT[(4 * d4 + 2) * QS + r] = v.z * scale;
    qT[(4 * d4 + 3) * QS + r] = v.w * scale;
  }

  // This thread's rows: their positions and first visible keys (rows past the pass see nothing).
  int row_pos[4], row_first[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int rt = row0 + ty * 4 + i;
    row_pos[i] = row_position(rt, total_rows, group, base);
    row_first[i] = first_visible_key(row_pos[i], window);
  }
  float m[4], l[4], o[4][COLS * 4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int c = 0; c < COLS * 4; c++) o[i][c] = 0.f;
  }

  const KV* kbase = k_cache + static_cast<size_t>(g0) * max_tokens * D;
  const KV* vbase = v_cache + static_cast<size_t>(g0) * max_tokens * D;
  for (int tile = key_begin; tile <= key_end; tile += KEYS) {
    // Keys, transposed: kT[d][j]; keys past the block's last position are zero (never visible, and the
    // cache past them may hold anything).
    for (int i = tid; i < KEYS * D4; i += TILED_THREADS) {
      const int j = i % KEYS, d4 = i / KEYS, key = tile + j;
      const float4 v = key <= key_end ? kv_load4(kbase + static_cast<size_t>(key) * D, d4) : make_float4(0.f, 0.f, 0.f, 0.f);
      kv[(4 * d4 + 0) * KS + j] = v.x;
      kv[(4 * d4 + 1) * KS + j] = v.y;
      kv[(4 * d4 + 2) * KS + j] = v.z;
      kv[(4 * d4 + 3) * KS + j] = v.w;
    }
    __syncthreads();  // also covers the query stores before the first tile

    // Scores s[i][j] = q(row ty*4+i) . k(key tx*4+j).
    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) s[i][j] = 0.f;
#pragma unroll 8
    for (int d = 0; d < D; d++) {
      const float4 a = *reinterpret_cast<const float4*>(qT + d * QS + ty * 4);
      const float4 b = *reinterpret_cast<const float4*>(kv + d * KS + tx * 4);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = fmaf(av[i], bv[j], s[i][j]);
    }

    // Online softmax per row; a row's 64 scores lie in the 16 lanes of its half-warp (same ty).
    float p[4][4], corr[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int key = tile + tx * 4 + j;
        if (key > row_pos[i] || key < row_first[i]) s[i][j] = -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_new = fmaxf(m[i], mx);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        // A row that has seen no visible key yet (m_new still -inf: rows past the pass; with tiles as
        // long as a block's token span, no real row) gets zeros, not exp(-inf + inf).
        p[i][j] = m_new == -INFINITY ? 0.f : expf(s[i][j] - m_new);
        sum += p[i][j];
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      corr[i] = m_new == -INFINITY ? 1.f : expf(m[i] - m_new);
      l[i] = l[i] * corr[i] + sum;
      m[i] = m_new;
    }
    // Probabilities, transposed: pT[j][r].
#pragma unroll
    for (int j = 0; j < 4; j++)
      *reinterpret_cast<float4*>(pT + (tx * 4 + j) * QS + ty * 4) = make_float4(p[0][j], p[1][j], p[2][j], p[3][j]);
    __syncthreads();  // the scores are done with kT; pT is complete

    // Values: v[j][d], same zeros past the last position.
    for (int i = tid; i < KEYS * D4; i += TILED_THREADS) {
      const int j = i / D4, d4 = i % D4, key = tile + j;
      reinterpret_cast<float4*>(kv)[i] = key <= key_end ? kv_load4(vbase + static_cast<size_t>(key) * D, d4) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    __syncthreads();

    // o[i][c] = o[i][c] * corr[i] + sum over the tile's keys of p[i][j] * v[j][column c].
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int c = 0; c < COLS * 4; c++) o[i][c] *= corr[i];
#pragma unroll 4
    for (int j = 0; j < KEYS; j++) {
      const float4 a = *reinterpret_cast<const float4*>(pT + j * QS + ty * 4);
      const float av[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int c = 0; c < COLS; c++) {
        const float4 b = *reinterpret_cast<const float4*>(kv + j * D + c * 64 + tx * 4);
        const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int e = 0; e < 4; e++) o[i][c * 4 + e] = fmaf(av[i], bv[e], o[i][c * 4 + e]);
      }
    }
    __syncthreads();  // before the next tile overwrites kv and pT
  }

#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int rt = row0 + ty * 4 + i;
    if (rt >= total_rows) continue;
    float* orow = out + row_index(rt, group, heads, g0) * D;
    const float inv = 1.f / l[i];
#pragma unroll
    for (int c = 0; c < COLS; c++)
      *reinterpret_cast<float4*>(orow + c * 64 + tx * 4) =
          make_float4(o[i][c * 4] * inv, o[i][c * 4 + 1] * inv, o[i][c * 4 + 2] * inv, o[i][c * 4 + 3] * inv);
  }
}

// The tiled kernel of this head_dim on a cache of KV.
template <typename KV>
cudaError_t launch_tiled_as(cudaStream_t stream, const float* q, const KV* k_cache, const KV* v_cache, int tokens, int heads, int kv_heads,
                            int head_dim, int max_tokens, PosArg start, float scale, int window, float* out) {
  const PrefillAttentionKernel<KV> kernel = head_dim == 64 ? attention_tiled_kernel<64, KV> : head_dim == 128 ? attention_tiled_kernel<128, KV> : nullptr;
  return launch_prefill_attention(kernel, tiled_smem_floats(head_dim) * sizeof(float), TILED_THREADS, stream, q, k_cache, v_cache, tokens,
                                  heads, kv_heads, max_tokens, start, scale, window, out);
}

}  // namespace

bool attention_tiled_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms) {
  // One block per SM (256 threads, about 100 KiB of shared memory at head_dim 128), the SM's 128 FP32
  // FMAs per cycle (4 x 4 register tiles).
  return prefill_attention_suits(tokens, heads, kv_heads, head_dim, keys, sms, 1, 128);
}

cudaError_t launch_attention_tiled(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens, int heads,
                                   int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window, float* out) {
  if (kv_dtype == KV_F32)
    return launch_tiled_as(stream, q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), tokens, heads, kv_heads, head_dim,
                           max_tokens, start, scale, window, out);
  if (kv_dtype == KV_F16)
    return launch_tiled_as(stream, q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), tokens, heads, kv_heads, head_dim,
                           max_tokens, start, scale, window, out);
  return cudaErrorInvalidValue;
}
