/**
 * WGSL kernels for qwen2-ts, in browsers and in Node through Dawn.
 * @packageDocumentation
 */
export { probeWebGPU } from './probe.js';
export type { WebGPUAvailability } from './probe.js';
