/**
 * A Node-API addon with hand-written CUDA kernels for qwen2-ts (optional build).
 * @packageDocumentation
 */
export { cudaAvailability } from './addon.js';
export type { CudaAvailability, CudaProbe } from './addon.js';
export { cudaBackend } from './open.js';
export type { CudaBackendOptions } from './open.js';
export { CudaBackend, attentionKeyCapacity } from './backend.js';
export type { PrefillPrecision } from './backend.js';
export type { PassStats } from './pass.js';
export { CudaError, CudaOutOfMemoryError, CudaUnavailableError } from './errors.js';
export { deviceWeightLayout } from './weights.js';
export type { CudaFormat, DeviceWeightLayout } from './weights.js';
