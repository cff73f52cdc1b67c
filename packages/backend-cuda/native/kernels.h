// Launchers of every CUDA kernel of the backend. Each enqueues work on `stream` (never synchronizes, so
// that it can be captured into a CUDA graph) and returns cudaGetLastError() of the launch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

// Weight formats, in the order of core's WeightFormat union (the host side uses the same codes).
enum WeightFormatCode : int { FMT_F32 = 0, FMT_F16 = 1, FMT_BF16 = 2, FMT_Q8_0 = 3, FMT_Q4_0 = 4 };

// KV cache storage, in the order of core's KVCacheDtype (the host side uses the same codes): keys and
// values as f32, or as f16 rounded the way kv_from_f32 (kv_cache.cuh) rounds them. Every launch that
// writes or reads a cache takes its pointers as `void*` with this code; attention arithmetic is f32 for both.
enum KVDtypeCode : int { KV_F32 = 0, KV_F16 = 1 };

// A weight on the device: `data` holds f32/f16/bf16 values row-major, or the quants of q8_0 (32 int8 per
// block) / q4_0 (16 bytes per block); `scales` holds one f16 scale per 32-value block (quantized only).
struct DevWeight {
  const void* data;
  const uint16_t* scales;
  int format;
  int rows;
  int cols;
};

// A position: (*ptr if ptr else 0) + value. Passes replayed from a CUDA graph read the pass's start
// position from device memory (ptr), so the same graph serves every decode step.
struct PosArg {
  const int* ptr;
  int value;
};

// Sampling parameters of core's SamplingParams that the device kernel needs (the history is uploaded).
struct SampleArgs {
  double temperature;
  int top_k;
  double top_p;
  double min_p;
  double repetition_penalty;
  double presence_penalty;
  double frequency_penalty;
  double uniform;
  int serial_history;  // 1 when an id repeats: apply the history in order on one thread
};

// Whether launches carry the programmatic-dependent-launch attribute (see await_prior_grids in
// common.cuh): the context's setting, stored by addon.cc's ctxOf for the native call in progress (all
// calls come from one JavaScript thread). Defined in addon.cc.
extern bool g_programmatic_launch;

cudaError_t launch_set_int(cudaStream_t stream, int* dst, int value);
cudaError_t launch_embed(cudaStream_t stream, DevWeight table, const int* ids, int tokens, float* out);
cudaError_t launch_rmsnorm(cudaStream_t stream, const float* x, DevWeight weight, float eps, float* out, int rows, int cols);

// out[i] = x · weights[i]ᵀ (+ biases[i]) for up to MATMUL_MAX_FUSED weights reading the same x[T, K].
// `gemm_flags` (decode GEMVs ignore them): GEMM_ROUND_X16, the prefill GEMM rounds x once to an f16/bf16
// weight's type (one MMA per tile) instead of splitting it into hi + lo parts (two MMAs, f32-grade
// results; other formats ignore it); GEMM_ONE_K_RANGE, the prefill GEMM of 16-bit and quantized weights
// never cuts K into ranges (split-K; for benchmarks and checks).
constexpr int MATMUL_MAX_FUSED = 4;
constexpr int GEMM_ROUND_X16 = 1, GEMM_ONE_K_RANGE = 2;
// Token counts up to this use the GEMV kernels (weights streamed once, tokens kept in registers).
constexpr int GEMV_MAX_TOKENS = 8;
// What a decode GEMV (tokens <= GEMV_MAX_TOKENS) also does with its results, saving the elementwise
// op that would follow: RESIDUAL (one weight): out[i] = residual[i] + result[i] (core's residual add;
// `out` may be `residual`); SWIGLU (two weights of one format and row count, gate then up): out[i] =
// silu(gate[i]) * up[i], each warp computing a gate row and its up row (`out` may be either output).
// The weights' own outputs are written as well. ROPE (three weights of one format, q, k and v, whose
// rows are heads of `rope.head_dim`): q and k rotated in place (launch_rope_qk's arithmetic), and with
// `rope.k_cache` non-null the rotated k and v written to the layer's cache as well; each warp computes a
// rotary pair of rows (i, i + head_dim / 2) of a head. This saves rope_qk's launch in a decode step.
enum MatmulEpilogueKind : int { EPI_NONE = 0, EPI_RESIDUAL = 1, EPI_SWIGLU = 2, EPI_ROPE = 3 };
// The rotary embedding and KV write of EPI_ROPE (launch_rope_qk's arguments; caches as write_kv's).
struct RopeEpilogue {
  int head_dim;
  PosArg start;
  float theta;
  void* k_cache;
  void* v_cache;
  int max_tokens;
  int kv_dtype;  // KVDtypeCode of the caches
};
struct MatmulEpilogue {
  int kind;
  const float* residual;
  float* out;
  RopeEpilogue rope;
};
constexpr MatmulEpilogue NO_EPILOGUE{EPI_NONE, nullptr, nullptr, RopeEpilogue{0, PosArg{nullptr, 0}, 0.f, nullptr, nullptr, 0, KV_F32}};
// What a decode GEMV also does before its dot products, saving the RMSNorm launch before it: x is the
// norm's input, each block normalizes it into shared memory (the RMSNorm kernel's arithmetic), and
// block 0 writes the normalized rows to `out` as well. `weight.format < 0`: none.
struct MatmulPrologue {
  DevWeight weight;
  float eps;
  float* out;
};
constexpr MatmulPrologue NO_PROLOGUE{DevWeight{nullptr, nullptr, -1, 0, 0}, 0.f, nullptr};
// `gemm_scratch`: device memory of gemm_scratch_bytes(tokens, K, weights, count, gemm_flags) for passes
// of more than GEMV_MAX_TOKENS tokens (the 16-bit copies of x that the prefill GEMM of 16-bit and
// quantized weights multiplies, and its split-K partial sums).
cudaError_t launch_matmul(cudaStream_t stream, const float* x, int tokens, int K, const DevWeight* weights,
                          const DevWeight* biases /* format < 0: none */, float* const* outs, int count,
                          int gemm_flags = 0, MatmulEpilogue epilogue = NO_EPILOGUE,
                          MatmulPrologue prologue = NO_PROLOGUE, void* gemm_scratch = nullptr);
size_t gemm_scratch_bytes(int tokens, int K, const DevWeight* weights, int count, int gemm_flags);

cudaError_t launch_rope(cudaStream_t stream, float* x, int tokens, int heads, int head_dim, PosArg start, float theta);
// rope(q) and rope(k) in one launch; with `k_cache` non-null also the KV write of the rotated k and of
// v (`[k_heads][max_tokens][head_dim]` each, of `kv_dtype`), as write_kv would do it.
cudaError_t launch_rope_qk(cudaStream_t stream, float* q, int q_heads, float* k, int k_heads, int tokens, int head_dim, PosArg start,
                           float theta, const float* v, void* k_cache, void* v_cache, int kv_dtype, int max_tokens);

// The KV cache of one layer: keys and values `[kv_heads][max_tokens][head_dim]` of `kv_dtype` (KVDtypeCode).
cudaError_t launch_write_kv(cudaStream_t stream, void* k_cache, void* v_cache, int kv_dtype, const float* k, const float* v,
                            int tokens, int kv_heads, int head_dim, int max_tokens, PosArg start);

// Attention plan. Prefill passes where an estimate of the kernels' cycles favours it go `Tiled`
// (attention_tiled.cu: blocks of 64 query rows walk the keys, f32, no scratch) or, where the caller allows
// 16-bit operands (prefillPrecision '16-bit'), `Mma` (attention_mma.cu: the same blocks on the tensor
// cores in bf16). Otherwise `Split`: keys are cut into `splits` chunks of `chunk` positions
// (flash-decoding); each (kv head, chunk, token) block writes a partial result to scratch, and the last
// of a token's visible chunks to finish merges them (counted in `counters`).
enum class AttentionKind { Split, Tiled, Mma };
struct AttentionPlan {
  AttentionKind kind;
  int chunk;
  int splits;
  size_t scratch_floats;
};
// `key_capacity` bounds the positions any replay may reach (the cache capacity for captured passes; the
// pass's start + tokens otherwise). `tensor_cores`: the Mma kernel may be chosen.
AttentionPlan plan_attention(int tokens, int heads, int kv_heads, int head_dim, int key_capacity, bool tensor_cores);
// The split kernel's plan alone (what plan_attention gives where no prefill kernel suits).
AttentionPlan plan_split_attention(int tokens, int heads, int head_dim, int key_capacity);
// Both prefill kernels: blocks of 64 query rows of one kv head walk the visible keys in tiles of 64;
// passes of fewer tokens keep the split kernel.
constexpr int PREFILL_ATTENTION_ROWS = 64, PREFILL_ATTENTION_KEYS = 64, PREFILL_ATTENTION_MIN_TOKENS = 16;
// Whether a prefill kernel with `blocks_per_sm` blocks resident per SM, each doing `macs_per_cycle`
// multiply-adds per cycle, is estimated faster than the split kernel on a pass of this shape over `keys`
// positions on `sms` multiprocessors (head_dim 64 or 128 only). Estimates from the kernels' structure,
// not timings.
bool prefill_attention_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms, int blocks_per_sm, double macs_per_cycle);
// Whether the tiled (f32) or the tensor-core kernel takes a pass of this shape (prefill_attention_suits
// with each kernel's figures).
bool attention_tiled_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms);
bool attention_mma_suits(int tokens, int heads, int kv_heads, int head_dim, int keys, int sms);
// The caches of every attention launch are `kv_dtype` (KVDtypeCode); halves are widened exactly to f32
// as they are read (the tensor-core kernel then rounds them to bf16 as it rounds f32 caches).
cudaError_t launch_attention_mma(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens,
                                 int heads, int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window, float* out);
cudaError_t launch_attention_tiled(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens,
                                   int heads, int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window, float* out);
// `counters`: attention_counter_ints(tokens, kv_heads) ints, zero before the first call; the split kernel
// leaves them at zero again, so one buffer serves every later call (and graph replay).
cudaError_t launch_attention(cudaStream_t stream, const float* q, const void* k_cache, const void* v_cache, int kv_dtype, int tokens,
                             int heads, int kv_heads, int head_dim, int max_tokens, PosArg start, float scale, int window,
                             const AttentionPlan& plan, float* scratch, int* counters, float* out);
size_t attention_counter_ints(int tokens, int kv_heads);

cudaError_t launch_swiglu(cudaStream_t stream, const float* gate, const float* up, float* out, size_t n);
cudaError_t launch_add(cudaStream_t stream, const float* a, const float* b, float* out, size_t n);

// One int per row: the first index of the row maximum; -1 when the row holds only NaN.
cudaError_t launch_argmax(cudaStream_t stream, const float* logits, int rows, int cols, int* out);
// Samples one token following core's sampleFromLogits; `scratch` holds sample_scratch_bytes(n). Writes
// the token (or -1 when every logit is NaN) to `out`. `previous` (or null): the device address of the
// previous draw's token, counted as one more occurrence in the history (it may be `out`). Vocabularies
// of up to SAMPLE_MAX_VOCAB tokens (cudaErrorInvalidValue beyond).
constexpr int SAMPLE_MAX_CHUNKS = 1024;
constexpr int SAMPLE_MAX_VOCAB = SAMPLE_MAX_CHUNKS * 1024;
size_t sample_scratch_bytes(int n);
cudaError_t launch_sample(cudaStream_t stream, const float* logits, int n, const int* history_ids,
                          const int* history_counts, int history_len, SampleArgs args, const int* previous, void* scratch,
                          int* out);

// Benchmark: copies `bytes` from src to dst with 128-bit loads and stores.
cudaError_t launch_copy_bandwidth(cudaStream_t stream, const void* src, void* dst, size_t bytes);
