/**
 * A Node-API addon with hand-written CUDA kernels for qwen2-ts (optional build).
 * @packageDocumentation
 */
export { cudaAvailability } from './addon.js';
export type { CudaAvailability, CudaProbe } from './addon.js';
