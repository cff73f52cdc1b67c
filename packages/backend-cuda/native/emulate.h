// A host emulation of the CUDA thread model, enough to run this backend's kernels on a CPU where no GPU
// exists: every CUDA thread of a block is a std::thread, blocks run one after another in a shuffled
// order, __syncthreads is a block barrier, warp shuffles and ballots exchange values through a per-warp
// slot array between two warp barriers, __shared__ variables are statics (one block at a time), and
// "device pointers" are host pointers. Slow, and only for tests (QWEN2_EMULATE builds).
#pragma once
#include <cuda_runtime.h>  // types only (dim3, cudaError_t, uint3, int4); no runtime call is made
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

// CUDA's sin(pi x) and cos(pi x) (no host library has them): through sincos, one rounding more.
inline void sincospi(double x, double* s, double* c) { ::sincos(x * 3.141592653589793238462643383279502884, s, c); }

namespace emu {

struct Warp {
  std::unique_ptr<std::barrier<>> barrier;
  uint64_t slots[32];
  uint32_t fragments[32][6];  // mma_16816: each lane's A and B registers
};

struct Block {
  std::unique_ptr<std::barrier<>> barrier;
  std::vector<Warp> warps;
  std::vector<unsigned char> smem;
};

struct ThreadCtx {
  uint3 t, b;
  dim3 bd, gd;
  Block* block;
};

inline thread_local ThreadCtx ctx;
// cp.async, per thread: the copies of the open group, then the committed groups, oldest first. A wait
// performs the groups it waits for, so a kernel that reads its shared tiles before the wait (or another
// thread's before the barrier after it) sees stale bytes, as it may on a GPU.
struct AsyncCopy {
  void* dst;
  const void* src;
  bool valid;
};
inline thread_local std::vector<AsyncCopy> open_copies;
inline thread_local std::vector<std::vector<AsyncCopy>> committed_copies;
inline std::mutex atomic_mutex;
// While a stream capture is open (test/emulated-runtime.cc), launches are recorded here instead of run.
inline std::vector<std::function<void()>>* capture = nullptr;

inline void* dynamic_smem() { return ctx.block->smem.data(); }

inline int lane_id() { return static_cast<int>(ctx.t.x + ctx.t.y * ctx.bd.x + ctx.t.z * ctx.bd.x * ctx.bd.y) & 31; }
inline Warp& warp() {
  const unsigned tid = ctx.t.x + ctx.t.y * ctx.bd.x + ctx.t.z * ctx.bd.x * ctx.bd.y;
  return ctx.block->warps[tid / 32];
}

template <typename T>
T exchange(T v, int (*src)(int, int), int arg) {
  static_assert(sizeof(T) <= 8, "warp exchange of at most 8 bytes");
  Warp& w = warp();
  const int lane = lane_id();
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slots[lane] = bits;
  w.barrier->arrive_and_wait();
  const int from = src(lane, arg);
  T r = v;
  if (from >= 0) std::memcpy(&r, &w.slots[from], sizeof(T));
  w.barrier->arrive_and_wait();
  return r;
}

inline int xor_src(int lane, int mask) { return (lane ^ mask) & 31; }
inline int up_src(int lane, int delta) { return lane >= delta ? lane - delta : -1; }
inline int lane_src(int, int src) { return src & 31; }

inline void cp_async16(void* dst, const void* src, bool valid) { open_copies.push_back(AsyncCopy{dst, src, valid}); }
inline void cp_async_commit() {
  committed_copies.push_back(std::move(open_copies));
  open_copies.clear();
}
inline void cp_async_wait(int pending) {
  while (static_cast<int>(committed_copies.size()) > pending) {
    for (const AsyncCopy& c : committed_copies.front()) {
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    }
    committed_copies.erase(committed_copies.begin());
  }
}

// ldmatrix .x4: every lane publishes its row address; lane l then takes, from matrix i (rows given by
// lanes 8i..8i+7), the 4 bytes of row l / 4 at byte 4 * (l % 4).
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  Warp& w = warp();
  const int lane = lane_id();
  w.slots[lane] = reinterpret_cast<uint64_t>(row);
  w.barrier->arrive_and_wait();
  for (int i = 0; i < 4; i++) std::memcpy(&r[i], reinterpret_cast<const unsigned char*>(w.slots[8 * i + lane / 4]) + 4 * (lane % 4), 4);
  w.barrier->arrive_and_wait();
}

inline float half_bits_to_f32(uint16_t h, bool f16) {
  if (f16) return __half2float(__ushort_as_half(h));
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// mma.m16n8k16 with f32 accumulation: the warp's fragments are gathered, and each lane computes its
// four outputs in f32 (products of 16-bit values are exact; k in order, one rounding per step).
// Element e (0 or 1) of a register is its low (e = 0) or high 16 bits.
template <bool F16>
inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Warp& w = warp();
  const int lane = lane_id();
  uint32_t* mine = w.fragments[lane];
  for (int i = 0; i < 4; i++) mine[i] = a[i];
  mine[4] = b0;
  mine[5] = b1;
  w.barrier->arrive_and_wait();
  auto elem = [&](int from, int reg, int e) { return half_bits_to_f32(static_cast<uint16_t>(w.fragments[from][reg] >> (16 * e)), F16); };
  // A(r, k): lane (r % 8) * 4 + (k % 8) / 2, register r / 8 + 2 * (k / 8), element k % 2.
  auto A = [&](int r, int k) { return elem((r % 8) * 4 + (k % 8) / 2, r / 8 + 2 * (k / 8), k % 2); };
  // B(k, n): lane n * 4 + (k % 8) / 2, register 4 + k / 8, element k % 2.
  auto B = [&](int k, int n) { return elem(n * 4 + (k % 8) / 2, 4 + k / 8, k % 2); };
  float out[4];
  for (int i = 0; i < 4; i++) {
    const int r = lane / 4 + 8 * (i / 2), n = 2 * (lane % 4) + i % 2;
    float acc = d[i];
    for (int k = 0; k < 16; k++) acc = std::fma(A(r, k), B(k, n), acc);
    out[i] = acc;
  }
  w.barrier->arrive_and_wait();
  std::memcpy(d, out, sizeof out);
}

// Runs `body` as grid x block CUDA threads; returns when all are done (like a synchronized launch).
inline void launch(dim3 grid, dim3 block_dim, size_t smem, std::function<void()> body) {
  if (capture) {
    capture->push_back([=] {
      std::vector<std::function<void()>>* saved = capture;
      capture = nullptr;
      launch(grid, block_dim, smem, body);
      capture = saved;
    });
    return;
  }
  const unsigned n = block_dim.x * block_dim.y * block_dim.z;
  // Blocks run one at a time (shared variables are statics), in a shuffled order: on a GPU they run at
  // once in no set order, so a kernel that assumes one (block 0 first, the highest index last) must fail
  // here too. The seeds are a fixed sequence, so a run repeats exactly.
  static uint64_t launches = 0;
  std::vector<uint3> order;
  order.reserve(static_cast<size_t>(grid.x) * grid.y * grid.z);
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) order.push_back(uint3{bx, by, bz});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(0x9e3779b97f4a7c15ull + launches++));
  for (const uint3 b : order) {
    const unsigned bx = b.x, by = b.y, bz = b.z;
    Block blk;
    blk.barrier = std::make_unique<std::barrier<>>(n);
    blk.warps.resize((n + 31) / 32);
    for (unsigned w = 0; w < blk.warps.size(); w++) blk.warps[w].barrier = std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w));
    blk.smem.assign(smem + 16, 0xcd);  // garbage, as on a GPU
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned tid = 0; tid < n; tid++) {
      threads.emplace_back([&, tid] {
        ctx.t = uint3{tid % block_dim.x, (tid / block_dim.x) % block_dim.y, tid / (block_dim.x * block_dim.y)};
        ctx.b = uint3{bx, by, bz};
        ctx.bd = block_dim;
        ctx.gd = grid;
        ctx.block = &blk;
        body();
        // A finished thread no longer takes part in barriers.
        blk.warps[tid / 32].barrier->arrive_and_drop();
        blk.barrier->arrive_and_drop();
      });
    }
    for (auto& t : threads) t.join();
  }
}

}  // namespace emu

#define threadIdx (::emu::ctx.t)
#define blockIdx (::emu::ctx.b)
#define blockDim (::emu::ctx.bd)
#define gridDim (::emu::ctx.gd)

inline void __syncthreads() { ::emu::ctx.block->barrier->arrive_and_wait(); }
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) { return ::emu::exchange(v, ::emu::xor_src, mask); }
template <typename T>
T __shfl_up_sync(unsigned, T v, int delta) { return ::emu::exchange(v, ::emu::up_src, delta); }
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane) { return ::emu::exchange(v, ::emu::lane_src, src_lane); }
inline unsigned __ballot_sync(unsigned, int pred) {
  ::emu::Warp& w = ::emu::warp();
  const int lane = ::emu::lane_id();
  w.slots[lane] = pred ? 1 : 0;
  w.barrier->arrive_and_wait();
  unsigned bits = 0;
  for (int i = 0; i < 32; i++) bits |= (w.slots[i] & 1u) << i;
  w.barrier->arrive_and_wait();
  return bits;
}
// Lanes of a warp that exited early never write their slot: a ballot reads stale values there. The
// kernels only ballot with full warps.

inline void __syncwarp_emulated() { ::emu::warp().barrier->arrive_and_wait(); }
// Only called by whole warps (every lane of the block's warps runs it).
inline void __syncwarp(unsigned = 0xffffffffu) { __syncwarp_emulated(); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline long long __double_as_longlong(double d) { long long v; std::memcpy(&v, &d, 8); return v; }
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
template <typename T>
T __ldcs(const T* p) { return *p; }
template <typename T>
T __ldcg(const T* p) { return *p; }
inline void __threadfence() {}  // blocks run one after another
inline int atomicAdd(int* p, int v) { std::lock_guard<std::mutex> g(::emu::atomic_mutex); int o = *p; *p += v; return o; }
inline int atomicMax(int* p, int v) { std::lock_guard<std::mutex> g(::emu::atomic_mutex); int o = *p; *p = std::max(o, v); return o; }
inline unsigned atomicMin(unsigned* p, unsigned v) { std::lock_guard<std::mutex> g(::emu::atomic_mutex); unsigned o = *p; *p = std::min(o, v); return o; }
using std::fmax;
using std::isnan;
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }

#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaGetDevice(p) (*(p) = 0, cudaSuccess)
// The only attribute queried is the multiprocessor count: 1, or what a test sets to check grid choices.
namespace emu {
inline int multiprocessors = 1;
}
#define cudaDeviceGetAttribute(p, ...) (*(p) = ::emu::multiprocessors, cudaSuccess)

// WMMA, emulated: every lane holds the whole 16x16 tile (loads read all of it, mma_sync computes the
// full product in f32, stores write it once per warp). Only the shapes gemm.cu uses.
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  float x[M * N];  // element (r, c) at r * N + c, widened to f32
};
template <typename Use, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) {
      // row_major: (r, c) at p[r * ldm + c]; col_major: (r, c) at p[c * ldm + r].
      const T v = std::is_same<Layout, row_major>::value ? p[r * ldm + c] : p[c * ldm + r];
      f.x[r * 16 + c] = static_cast<float>(v);
    }
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float v) {
  for (float& e : f.x) e = v;
}
template <typename TA, typename LA, typename TB, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 16; n++) {
      float acc = c.x[r * 16 + n];
      for (int k = 0; k < 16; k++) acc = std::fma(a.x[r * 16 + k], b.x[k * 16 + n], acc);
      out[r * 16 + n] = acc;
    }
  std::memcpy(d.x, out, sizeof out);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t layout) {
  __syncwarp_emulated();
  if (::emu::lane_id() == 0)
    for (int r = 0; r < 16; r++)
      for (int c = 0; c < 16; c++) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
  __syncwarp_emulated();
}
}  // namespace wmma
}  // namespace nvcuda
