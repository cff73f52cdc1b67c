/**
 * WGSL kernels for qwen2-ts, in browsers and in Node through Dawn.
 * @packageDocumentation
 */
export { probeWebGPU } from './probe.js';
export type { WebGPUAvailability } from './probe.js';
export { webgpuBackend, WebGPUBackend } from './backend.js';
export type { WebGPUBackendOptions } from './backend.js';
export { WebGPUDeviceError, WebGPUDeviceLostError } from './errors.js';
