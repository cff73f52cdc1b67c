// How kernels store and read KV cache values (kernels.h KVDtypeCode): the kernels that write or read
// the cache are templates on its element type, float or __half, and go through these helpers, so that
// their float instances are the plain loads and stores they were before f16 caches existed.
#pragma once
#include <cfloat>
#include "common.cuh"

// A value as the cache stores it. __half: rounded to the nearest half (ties to even), finite values
// beyond the half range saturating to ±65504 instead of becoming infinite; ±inf and NaN stay what they
// are (core's roundToF16KV).
template <typename KV> __device__ __forceinline__ KV kv_from_f32(float v);
template <> __device__ __forceinline__ float kv_from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half kv_from_f32<__half>(float v) {
  const uint16_t h = __half_as_ushort(__float2half_rn(v));
  // Exponent 31 with a zero mantissa is infinity: from a finite v it is an overflow (NaN never rounds to
  // infinity, and fabsf(NaN) <= FLT_MAX is false anyway).
  const bool overflow = (h & 0x7fff) == 0x7c00 && fabsf(v) <= FLT_MAX;
  return __ushort_as_half(overflow ? static_cast<uint16_t>((h & 0x8000) | 0x7bff) : h);
}

// A stored value widened to f32 (exactly).
__device__ __forceinline__ float kv_to_f32(float v) { return v; }
__device__ __forceinline__ float kv_to_f32(__half v) { return __half2float(v); }

// Stored values 4 * i4 .. 4 * i4 + 3 of `row`, widened: one 16-byte load of floats, one 8-byte load of
// halves (row aligned to that size). The float instance is the plain float4 load.
__device__ __forceinline__ float4 kv_load4(const float* row, int i4) { return reinterpret_cast<const float4*>(row)[i4]; }
__device__ __forceinline__ float4 kv_load4(const __half* row, int i4) {
  const uint2 u = reinterpret_cast<const uint2*>(row)[i4];
  return make_float4(f16_to_f32(static_cast<uint16_t>(u.x & 0xffffu)), f16_to_f32(static_cast<uint16_t>(u.x >> 16)),
                     f16_to_f32(static_cast<uint16_t>(u.y & 0xffffu)), f16_to_f32(static_cast<uint16_t>(u.y >> 16)));
}

// Element i of a cache of either type given as `void*` with its code (for the GEMV's rope epilogue,
// which takes the code at run time rather than doubling its instances): stored as kv_from_f32 stores it.
__device__ __forceinline__ void kv_store_as(void* cache, int kv_dtype, size_t i, float v) {
  if (kv_dtype == KV_F16) static_cast<__half*>(cache)[i] = kv_from_f32<__half>(v);
  else static_cast<float*>(cache)[i] = v;
}
