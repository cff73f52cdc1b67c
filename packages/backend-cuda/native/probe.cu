// Device probing: counts devices and reports driver/runtime versions. Also compiles one kernel so the
// build proves that nvcc emits code for every target architecture.
#include <cuda_runtime.h>
#include "probe.h"

__global__ void fill_kernel(float* out, float value, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = value;
}

ProbeResult probe_devices() {
  ProbeResult r{};
  cudaRuntimeGetVersion(&r.runtime_version);
  cudaDriverGetVersion(&r.driver_version);
  cudaError_t err = cudaGetDeviceCount(&r.device_count);
  r.error = err;
  r.error_name = cudaGetErrorName(err);
  r.error_string = cudaGetErrorString(err);
  if (err != cudaSuccess) r.device_count = 0;
  return r;
}
