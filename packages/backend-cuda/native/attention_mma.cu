// Causal grouped-query attention for prefill-sized passes on the tensor cores, for
// `prefillPrecision: '16-bit'`: the tiled kernel's blocks (64 query rows of one kv head, the rows being
// (token, head of the group) pairs, walking the visible keys in tiles of 64 with a running max and sum
// per row), but scores and the value product are mma.sync m16n8k16 in bf16 with f32 accumulation, as
// FlashAttention-2 does: each of the 4 warps owns 16 rows, keeps its queries as A fragments in
// registers, and turns its score accumulators into the A fragments of the value product without going
// through shared memory. Queries (times scale and log2 e), keys, values and probabilities are rounded to
// bf16 once; maxima, sums and accumulation stay f32. bf16 keeps f32's range, so no activation can
// overflow; results carry about 3 significant digits, like the 16-bit GEMM before it. An f16 cache's
// halves are widened to f32 as they are read and then rounded to bf16 like an f32 cache's values, so the
// results are those of an f32 cache holding the same values (bf16 MMAs throughout: f16 queries could
// overflow, and one MMA cannot mix the two types).
#include <cmath>
#include "attention_prefill.cuh"
#include "mma.cuh"

namespace {

constexpr int MMA_THREADS = 128;  // 4 warps x 16 query rows
constexpr int MMA_ROWS = PREFILL_ATTENTION_ROWS;  // query rows per block
constexpr int MMA_KEYS = PREFILL_ATTENTION_KEYS;  // keys per tile
constexpr int KEY_PAIRS = MMA_KEYS / 2;
// Rows of Q and K in shared memory are head_dim + 8 bf16 long and rows of Vt 72: 16-byte aligned for
// ldmatrix, and the 8 rows one ldmatrix matrix reads start 4 banks apart, so they do not conflict.
constexpr int VLD = MMA_KEYS + 8;
constexpr float LOG2E = 1.4426950408889634f;

__host__ __device__ constexpr int qk_ld(int head_dim) { return head_dim + 8; }
constexpr size_t mma_smem_bytes(int head_dim) {
  return (static_cast<size_t>(MMA_ROWS + MMA_KEYS) * qk_ld(head_dim) + static_cast<size_t>(head_dim) * VLD) * 2;
}

// Four consecutive f32 as four bf16, for an 8-byte store.
__device__ __forceinline__ uint2 bf16x4(float4 v) { return make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w)); }

template <int D, typename KV>
__global__ void __launch_bounds__(MMA_THREADS) attention_mma_kernel(
    const float* __restrict__ q, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache, int tokens, int heads,
    int kv_heads, int max_tokens, PosArg start, float scale, int window, float* __restrict__ out) {
  await_prior_grids();
  static_assert(D % 32 == 0, "head_dim must be a multiple of 32");
  constexpr int D4 = D / 4;
  constexpr int LD = qk_ld(D);
  constexpr int KF = D / 16;  // 16-deep k-steps of the scores (over head_dim)
  constexpr int ON = D / 8;   // 8-column output tiles
  constexpr int SN = MMA_KEYS / 8;  // 8-key score tiles
  QWEN2_DYNAMIC_SMEM(uint4, smem_raw);  // 16-byte aligned for ldmatrix
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [MMA_ROWS][LD]
  __nv_bfloat16* ks = qs + MMA_ROWS * LD;                            // [MMA_KEYS][LD]
  __nv_bfloat16* vt = ks + MMA_KEYS * LD;                            // [D][VLD], values transposed

  const int group = heads / kv_heads;
  const int g0 = blockIdx.y;
  const int total_rows = tokens * group;
  const int base = pos_of(start);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const PrefillBlock blk = prefill_block(tokens, group, base, window, max_tokens);
  const int row0 = blk.row0, key_begin = blk.key_begin, key_end = blk.key_end;

  // Queries times scale and log2 e (the softmax then runs on exp2), as bf16 rows; rows past the pass
  // are zero.
  const float qscale = scale * LOG2E;
  for (int i = tid; i < MMA_ROWS * D4; i += MMA_THREADS) {
    const int r = i / D4, d4 = i % D4, rt = row0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (rt < total_rows) v = reinterpret_cast<const float4*>(q + row_index(rt, group, heads, g0) * D)[d4];
    *reinterpret_cast<uint2*>(qs + r * LD + 4 * d4) = bf16x4(make_float4(v.x * qscale, v.y * qscale, v.z * qscale, v.w * qscale));
  }
  __syncthreads();

  // ldmatrix row addresses (as in gemm_pipelined.cu). A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7),
  // (rows 0-7, k 8-15), (rows 8-15, k 8-15). B (rows are n): (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15,
  // k 0-7), (n 8-15, k 8-15): the two registers of two 8-column tiles.
  const int a_row = lane % 8 + 8 * ((lane / 8) % 2), a_col = 8 * (lane / 16);
  const int b_row = lane % 8 + 8 * (lane / 16), b_col = 8 * ((lane / 8) % 2);
  uint32_t qf[KF][4];
#pragma unroll
  for (int kk = 0; kk < KF; kk++) ldmatrix_x4(qf[kk], qs + (warp * 16 + a_row) * LD + 16 * kk + a_col);

  // This lane's two rows (g and g + 8 of the warp's 16): positions and first visible keys; rows past the
  // pass see nothing (position -1).
  int row_pos[2], row_first[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int rt = row0 + warp * 16 + g + 8 * h;
    row_pos[h] = row_position(rt, total_rows, group, base);
    row_first[h] = first_visible_key(row_pos[h], window);
  }
  // Running max (in log2 units) and this lane's part of the running sum, per row; output accumulators.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, o[ON][4];
#pragma unroll
  for (int n = 0; n < ON; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  const KV* kbase = k_cache + static_cast<size_t>(g0) * max_tokens * D;
  const KV* vbase = v_cache + static_cast<size_t>(g0) * max_tokens * D;
  for (int tile = key_begin; tile <= key_end; tile += MMA_KEYS) {
    __syncthreads();  // every warp is done with the previous tile's keys and values
    // Keys as bf16 rows; keys past the block's last position are zero (masked anyway).
    for (int i = tid; i < MMA_KEYS * D4; i += MMA_THREADS) {
      const int j = i / D4, d4 = i % D4, key = tile + j;
      const float4 v = key <= key_end ? kv_load4(kbase + static_cast<size_t>(key) * D, d4) : make_float4(0.f, 0.f, 0.f, 0.f);
      *reinterpret_cast<uint2*>(ks + j * LD + 4 * d4) = bf16x4(v);
    }
    // Values transposed, vt[d][key], two keys per 32-bit store. A warp takes 16 key pairs x 2 column
    // groups: each key's 32 bytes are one sector, and the 32 stores of one column fall in 32 banks.
    // Values past the last position must be zero: a zero probability times stale cache contents
    // (possibly NaN) would not be zero.
    for (int i = tid; i < KEY_PAIRS * D4; i += MMA_THREADS) {
      const int rest = i / 32;
      const int jp = i % 16 + 16 * (rest % 2), d4 = (i / 16) % 2 + 2 * (rest / 2), key = tile + 2 * jp;
      const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
      const float4 a = key <= key_end ? kv_load4(vbase + static_cast<size_t>(key) * D, d4) : zero;
      const float4 b = key + 1 <= key_end ? kv_load4(vbase + static_cast<size_t>(key + 1) * D, d4) : zero;
      uint32_t* col = reinterpret_cast<uint32_t*>(vt + (4 * d4) * VLD) + jp;
      col[0] = pack_bf16x2(a.x, b.x);
      col[VLD / 2] = pack_bf16x2(a.y, b.y);
      col[VLD] = pack_bf16x2(a.z, b.z);
      col[3 * VLD / 2] = pack_bf16x2(a.w, b.w);
    }
    __syncthreads();

    // Scores of the warp's 16 rows against the tile's 64 keys.
    float s[SN][4];
#pragma unroll
    for (int n = 0; n < SN; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KF; kk++) {
#pragma unroll
      for (int n = 0; n < SN; n += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, ks + (8 * n + b_row) * LD + 16 * kk + b_col);
        mma_16816<__nv_bfloat16>(s[n], qf[kk], r[0], r[1]);
        mma_16816<__nv_bfloat16>(s[n + 1], qf[kk], r[2], r[3]);
      }
    }

    // Online softmax. s[n][0..1] are row g, keys 8n + 2t and + 1; s[n][2..3] row g + 8. A row's 64
    // scores lie in the 4 lanes of its quad.
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < SN; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int key = tile + 8 * n + 2 * t + e;
          if (key > row_pos[h] || key < row_first[h]) s[n][2 * h + e] = -INFINITY;
          mx = fmaxf(mx, s[n][2 * h + e]);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[h], mx);
      // A row that has seen no visible key yet keeps m = -inf: zeros, not exp2(-inf + inf).
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < SN; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const float p = m_new == -INFINITY ? 0.f : exp2f(s[n][2 * h + e] - m_new);
          s[n][2 * h + e] = p;
          sum += p;
        }
      corr[h] = m_new == -INFINITY ? 1.f : exp2f(m[h] - m_new);
      l[h] = l[h] * corr[h] + sum;  // this lane's keys only; the quad's parts are summed at the end
      m[h] = m_new;
    }
#pragma unroll
    for (int n = 0; n < ON; n++) {
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
    }

    // o += P V. The accumulators of score tiles 2kk and 2kk + 1 are, packed to bf16, the A fragment of
    // keys 16kk..16kk+15: rows g / g + 8, keys 2t.. / 2t + 8.. .
#pragma unroll
    for (int kk = 0; kk < MMA_KEYS / 16; kk++) {
      const uint32_t a[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < ON; n += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, vt + (8 * n + b_row) * VLD + 16 * kk + b_col);
        mma_16816<__nv_bfloat16>(o[n], a, r[0], r[1]);
        mma_16816<__nv_bfloat16>(o[n + 1], a, r[2], r[3]);
      }
    }
  }

  // The quad's sums, then rows g and g + 8: columns 8n + 2t and + 1.
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int rt = row0 + warp * 16 + g + 8 * h;
    if (rt >= total_rows) continue;
    float* orow = out + row_index(rt, group, heads, g0) * D;
    const float inv = 1.f / l[h];
#pragma unroll
    for (int n = 0; n < ON; n++) *reinterpret_cast<float2*>(orow + 8 * n + 2 * t) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
  }
}

// The tensor-core kernel of this head_dim on a cache of KV.
template <typename KV>
cudaError_t launch_mma_as(cudaStream_t stream, const float* q, const KV* k_cache, const KV* v_cache, int tokens, int heads, int kv_heads,
                          int head_dim, int max_tokens, PosArg start, float scale, int window, float* out) {
  const PrefillAttentionKernel<KV> kernel = head_dim == 64 ? attention_mma_kernel<64, KV> : head_dim == 128 ? attention_mma_kernel<128, KV> : nullptr;
  return launch_prefill_attention(kernel, mma_smem_bytes(head_dim), MMA_THREADS, stream, q, k_cache, v_cache, tokens, heads, kv_heads,
                                  max_tokens, start, scale, window, out);
}

}  // namespace

bool attention_mma_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms) {
  // Two blocks per SM (shared memory and registers allow three or four), 256 multiply-adds per cycle
  // per block: a modest share of an SM's mma.sync throughput, which the f32 conversion of each key and
  // value tile also takes from.
  return prefill_attention_suits(tokens, heads, kv_heads, head_dim, keys, sms, 2, 256);
}

cudaError_t launch_attention_mma(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens, int heads,
                                 int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window, float* out) {
  if (kv_dtype == KV_F32)
    return launch_mma_as(stream, q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), tokens, heads, kv_heads, head_dim,
                         max_tokens, start, scale, window, out);
  if (kv_dtype == KV_F16)
    return launch_mma_as(stream, q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), tokens, heads, kv_heads, head_dim,
                         max_tokens, start, scale, window, out);
  return cudaErrorInvalidValue;
}
