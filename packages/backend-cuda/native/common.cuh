// Device helpers shared by the kernels: half/bfloat16 widening, weight element access for every format,
// warp reductions and pass positions.
#pragma once
#include <cstdint>
#ifdef QWEN2_EMULATE
// Host build of the kernels on an emulation of the CUDA thread model (test/emulated-kernels.cc).
#include "emulate.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif
#include "kernels.h"

// Programmatic dependent launch (sm_90 and later, where the context enables it): a kernel may be
// launched while the one before it on the stream still runs, and its blocks wait here until that grid
// has finished and its writes are visible; then they let the next kernel launch in turn. Every kernel
// calls this first, before touching global memory (src/kernel-sources.test.ts checks), so ordering is
// the stream's as before and only the launch latency overlaps. Without the launch attribute, and before
// sm_90, it does nothing.
__device__ __forceinline__ void await_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Kernel launches go through LAUNCH so that the same code also runs under the host emulation.
#ifdef QWEN2_EMULATE
#define LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::emu::launch(dim3(grid), dim3(block), (smem), [=]() { kernel(__VA_ARGS__); })
#define QWEN2_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(::emu::dynamic_smem())
#else
// With the context's programmatic launch on, through cudaLaunchKernelEx with that attribute.
template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args... args) {
  if (!g_programmatic_launch) {
    kernel<<<grid, block, smem, stream>>>(args...);
    return;
  }
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = 1;
  cudaLaunchKernelEx(&config, kernel, args...);  // its error is also the next cudaGetLastError()
}
#define LAUNCH(kernel, grid, block, smem, stream, ...) launch_kernel(kernel, dim3(grid), dim3(block), (smem), (stream), __VA_ARGS__)
#define QWEN2_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif

__device__ __forceinline__ float f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
// bf16 is the top half of an f32: widening is a shift, exact.
__device__ __forceinline__ float bf16_to_f32(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ int pos_of(PosArg p) { return (p.ptr ? *p.ptr : 0) + p.value; }

// RoPE's cos and sin for dimension pair i of a head at position `pos`. The angle in double precision:
// positions reach the thousands of radians, where f32 angles lose digits (the reference computes in
// float64). It goes in half-turns to sincospi, whose range reduction is exact: sincos's reduction of
// large arguments (a call the compiler keeps, whatever the range) made the GEMV's rope epilogue spill.
// Shared by the rope kernel and the GEMV's rope epilogue, so both rotate to the same bits.
__device__ __forceinline__ void rope_cos_sin(int pos, int i, int head_dim, float theta, float& cs, float& sn) {
  const double angle = static_cast<double>(pos) * pow(static_cast<double>(theta), -2.0 * i / head_dim);
  double s, c;
  sincospi(angle * (1.0 / 3.141592653589793238462643383279502884), &s, &c);
  cs = static_cast<float>(c);
  sn = static_cast<float>(s);
}

// The rotate-half pair (x1, x2) = (x[i], x[i + half]) turned by the angle of (cs, sn).
__device__ __forceinline__ void rope_rotate(float x1, float x2, float cs, float sn, float& r1, float& r2) {
  r1 = x1 * cs - x2 * sn;
  r2 = x2 * cs + x1 * sn;
}

// Element (row, col) of a weight of any format, widened to f32 exactly (q8_0: an f16 scale times an
// int8 has at most 19 significant bits; q4_0 likewise).
__device__ __forceinline__ float weight_at(const DevWeight& w, int row, int col) {
  const size_t i = static_cast<size_t>(row) * w.cols + col;
  switch (w.format) {
    case FMT_F32:
      return static_cast<const float*>(w.data)[i];
    case FMT_F16:
      return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case FMT_BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case FMT_Q8_0:
      return f16_to_f32(w.scales[i / 32]) * static_cast<float>(static_cast<const int8_t*>(w.data)[i]);
    case FMT_Q4_0: {
      const size_t block = i / 32;
      const int j = static_cast<int>(i % 32);
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[block * 16 + (j & 15)];
      const int q = j < 16 ? (byte & 15) : (byte >> 4);
      return f16_to_f32(w.scales[block]) * static_cast<float>(q - 8);
    }
    default:
      return 0.f;
  }
}

inline unsigned ceil_div(size_t a, size_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// Multiprocessors of the current device (1 if the query fails), for sizing grids.
inline int multiprocessor_count() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) return 1;
  return n;
}

// 1 / sqrt(mean(row^2) + eps) for one row of `cols`, computed by a block of THREADS threads (all of them
// call it) and returned to every thread: the RMSNorm kernel's reduction, shared with the GEMV's RMSNorm
// prologue so that both normalize to the same bits.
template <int THREADS>
__device__ __forceinline__ float block_inv_rms(const float* row, int cols, float eps) {
  __shared__ float partial[THREADS / 32];
  __shared__ float inv_rms;
  float ss = 0.f;
  for (int c = threadIdx.x; c < cols; c += THREADS) {
    const float v = row[c];
    ss = fmaf(v, v, ss);
  }
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < THREADS / 32 ? partial[threadIdx.x] : 0.f;
    s = warp_sum(s);
    if (threadIdx.x == 0) inv_rms = rsqrtf(s / static_cast<float>(cols) + eps);
  }
  __syncthreads();
  return inv_rms;
}
