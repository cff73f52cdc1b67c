/**
 * WebAssembly SIMD kernels for qwen2-ts: the default CPU backend.
 * @packageDocumentation
 */
export { instantiateKernels } from './kernels.js';
export type { KernelExports, WasmKernels } from './kernels.js';
