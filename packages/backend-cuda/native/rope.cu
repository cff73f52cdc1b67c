// Rotary embedding, rotate-half convention, in place (angles: rope_cos_sin in common.cuh).
#include "kv_cache.cuh"

// RoPE of q and k (k_heads may be 0: one tensor) and the KV-cache write of the rotated k and of v, as
// one launch (a decode step's rope(q), rope(k), writeKV; the cache layout of write_kv_kernel). Blocks
// walk the q heads then the k heads; a k head's block also writes that head's keys and values, stored
// as KV (kv_cache.cuh).
template <typename KV>
__global__ void rope_qk_kernel(float* q, int q_heads, float* k, int k_heads, int head_dim, PosArg start, float theta, const float* v,
                               KV* k_cache, KV* v_cache, int max_tokens) {
  await_prior_grids();
  const int t = blockIdx.x;
  const int half = head_dim / 2;
  const int pos = pos_of(start) + t;
  const bool write = k_cache != nullptr && pos >= 0 && pos < max_tokens;  // the host checks ranges
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float cs, sn;
    rope_cos_sin(pos, i, head_dim, theta, cs, sn);
    for (int h = blockIdx.y; h < q_heads + k_heads; h += gridDim.y) {
      const bool is_k = h >= q_heads;
      const int g = is_k ? h - q_heads : h;
      float* x = is_k ? k + (static_cast<size_t>(t) * k_heads + g) * head_dim : q + (static_cast<size_t>(t) * q_heads + g) * head_dim;
      float r1, r2;
      rope_rotate(x[i], x[i + half], cs, sn, r1, r2);
      x[i] = r1;
      x[i + half] = r2;
      if (is_k && write) {
        const size_t dst = (static_cast<size_t>(g) * max_tokens + pos) * head_dim;
        const float* vrow = v + (static_cast<size_t>(t) * k_heads + g) * head_dim;
        k_cache[dst + i] = kv_from_f32<KV>(r1);
        k_cache[dst + i + half] = kv_from_f32<KV>(r2);
        v_cache[dst + i] = kv_from_f32<KV>(vrow[i]);
        v_cache[dst + i + half] = kv_from_f32<KV>(vrow[i + half]);
      }
    }
  }
}

cudaError_t launch_rope(cudaStream_t stream, float* x, int tokens, int heads, int head_dim, PosArg start, float theta) {
  return launch_rope_qk(stream, x, heads, nullptr, 0, tokens, head_dim, start, theta, nullptr, nullptr, nullptr, KV_F32, 0);
}

cudaError_t launch_rope_qk(cudaStream_t stream, float* q, int q_heads, float* k, int k_heads, int tokens, int head_dim, PosArg start, float theta,
                           const float* v, void* k_cache, void* v_cache, int kv_dtype, int max_tokens) {
  if (tokens <= 0) return cudaSuccess;
  const int threads = head_dim / 2 < 128 ? ((head_dim / 2 + 31) / 32) * 32 : 128;
  const int heads = q_heads + k_heads;
  const int ysplit = heads < 8 ? heads : 8;
  const dim3 grid(tokens, ysplit);
  // Without a cache (a plain rope) the type does not matter: the float instance.
  if (kv_dtype == KV_F32 || k_cache == nullptr) {
    LAUNCH(rope_qk_kernel<float>, grid, threads, 0, stream, q, q_heads, k, k_heads, head_dim, start, theta, v, static_cast<float*>(k_cache),
           static_cast<float*>(v_cache), max_tokens);
  } else if (kv_dtype == KV_F16) {
    LAUNCH(rope_qk_kernel<__half>, grid, threads, 0, stream, q, q_heads, k, k_heads, head_dim, start, theta, v, static_cast<__half*>(k_cache),
           static_cast<__half*>(v_cache), max_tokens);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
