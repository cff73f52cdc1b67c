// Tensor-core building blocks of sm_80 and later, as PTX: asynchronous global-to-shared copies
// (cp.async), warp-wide 8x8 matrix loads from shared memory (ldmatrix) and the m16n8k16 MMA with f32
// accumulation. Under QWEN2_EMULATE each has a host emulation in emulate.h that follows the PTX ISA's
// fragment layouts, so the kernels built on them run in the emulated kernel tests.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common.cuh"

// 16-bit element types of the MMA, from and to f32.
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

// Two values rounded to bf16 and packed as one MMA register: `lo` in the low 16 bits (the lower k).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) | static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}

// The power of two a row of x whose largest |value| is `max_abs` is scaled by before it is rounded to
// f16 (whose range ends at 65504): 2^(15 - e) where max_abs < 2^e and e > 15, so the row stays below
// 2^15; 1 otherwise. Exact, and undone exactly on the results.
__device__ __forceinline__ float f16_row_scale(float max_abs) {
  int e = 0;
  frexpf(max_abs, &e);
  return e > 15 ? ldexpf(1.f, 15 - e) : 1.f;
}

// Copies 16 bytes from global to shared memory without passing through registers; with `valid` false
// nothing is read and the 16 bytes are zeros. Both addresses must be 16-byte aligned. The copy lands
// only by a later cp_async_wait of its group (and, for other threads, a barrier after that).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#ifdef QWEN2_EMULATE
  ::emu::cp_async16(smem, gmem, valid);
#else
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
#endif
}

// Closes the group of copies this thread issued since the last commit (an empty group is fine).
__device__ __forceinline__ void cp_async_commit() {
#ifdef QWEN2_EMULATE
  ::emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most `PENDING` of this thread's committed groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#ifdef QWEN2_EMULATE
  ::emu::cp_async_wait(PENDING);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

// Four 8x8 matrices of 16-bit elements from shared memory: lanes 8i..8i+7 give the addresses of
// matrix i's rows (16 contiguous bytes each); each lane receives, in r[i], the two elements of matrix
// i at row lane / 4, columns 2 * (lane % 4) and + 1.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
#ifdef QWEN2_EMULATE
  ::emu::ldmatrix_x4(r, smem_row);
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

// d += a · b for a 16x16 (row-major) A, a 16x8 (column-major) B and a 16x8 f32 accumulator, with
// PTX's fragment layouts (g = lane / 4, t = lane % 4): a holds A[g][2t..], A[g+8][2t..], A[g][2t+8..],
// A[g+8][2t+8..]; b holds B[2t..][g], B[2t+8..][g]; d holds D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1].
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef QWEN2_EMULATE
  ::emu::mma_16816<std::is_same_v<T, __half>>(d, a, b0, b1);
#else
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}
