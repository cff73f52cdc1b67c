// Element-wise ops and lookups: pass position, embed, SwiGLU, add, and the bandwidth copy kernel.
#include "common.cuh"

__global__ void set_int_kernel(int* dst, int value) {
  await_prior_grids();
  *dst = value;
}

cudaError_t launch_set_int(cudaStream_t stream, int* dst, int value) {
  LAUNCH(set_int_kernel, 1, 1, 0, stream, dst, value);
  return cudaGetLastError();
}

// One block per token: out[t] = table[ids[t]] widened to f32.
__global__ void embed_kernel(DevWeight table, const int* __restrict__ ids, float* __restrict__ out) {
  await_prior_grids();
  const int t = blockIdx.x;
  const int id = ids[t];
  float* row = out + static_cast<size_t>(t) * table.cols;
  if (id < 0 || id >= table.rows) {
    // The host checks ids; a bad one here would be a bug: poison the row rather than read out of bounds.
    for (int c = threadIdx.x; c < table.cols; c += blockDim.x) row[c] = __int_as_float(0x7fc00000);
    return;
  }
  for (int c = threadIdx.x; c < table.cols; c += blockDim.x) row[c] = weight_at(table, id, c);
}

cudaError_t launch_embed(cudaStream_t stream, DevWeight table, const int* ids, int tokens, float* out) {
  if (tokens <= 0) return cudaSuccess;
  LAUNCH(embed_kernel, tokens, 256, 0, stream, table, ids, out);
  return cudaGetLastError();
}

// silu(g) * u with an accurate expf (no fast math): g / (1 + e^-g) also behaves for large |g|.
__global__ void swiglu_kernel(const float* gate, const float* up, float* out, size_t n) {
  await_prior_grids();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(const float* a, const float* b, float* out, size_t n) {
  await_prior_grids();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i];
  }
}

static unsigned elementwise_blocks(size_t n) {
  unsigned b = ceil_div(n, 256);
  return b > 4096 ? 4096 : (b == 0 ? 1 : b);
}

// An output that overlaps an input at an offset (views of one tensor a few rows apart) makes the result
// depend on the order elements are written; the reference writes them first to last. One thread running
// the grid-stride loop does exactly that (rare, so its speed does not matter). Identical ranges (in
// place) are order-independent and stay parallel.
static bool shifted_overlap(const float* out, const float* in, size_t n) { return out != in && out < in + n && in < out + n; }

static unsigned blocks_for(const float* out, const float* a, const float* b, size_t n, unsigned& threads) {
  if (shifted_overlap(out, a, n) || shifted_overlap(out, b, n)) {
    threads = 1;
    return 1;
  }
  threads = 256;
  return elementwise_blocks(n);
}

cudaError_t launch_swiglu(cudaStream_t stream, const float* gate, const float* up, float* out, size_t n) {
  unsigned threads;
  const unsigned blocks = blocks_for(out, gate, up, n, threads);
  LAUNCH(swiglu_kernel, blocks, threads, 0, stream, gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t launch_add(cudaStream_t stream, const float* a, const float* b, float* out, size_t n) {
  unsigned threads;
  const unsigned blocks = blocks_for(out, a, b, n, threads);
  LAUNCH(add_kernel, blocks, threads, 0, stream, a, b, out, n);
  return cudaGetLastError();
}

// 128-bit loads and stores, grid-stride, several in flight per thread: the copy that measures the
// achievable DRAM bandwidth the decode kernels are compared with.
__global__ void copy_kernel(const int4* __restrict__ src, int4* __restrict__ dst, size_t n) {
  await_prior_grids();
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const int4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
    dst[i] = a;
    dst[i + stride] = b;
    dst[i + 2 * stride] = c;
    dst[i + 3 * stride] = d;
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

cudaError_t launch_copy_bandwidth(cudaStream_t stream, const void* src, void* dst, size_t bytes) {
  LAUNCH(copy_kernel, multiprocessor_count() * 8, 512, 0, stream, static_cast<const int4*>(src), static_cast<int4*>(dst), bytes / 16);
  return cudaGetLastError();
}
