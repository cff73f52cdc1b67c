/**
 * WebAssembly SIMD kernels for qwen2-ts, multi-threaded with workers: the default CPU backend.
 *
 * ```ts
 * import { wasmBackend } from '@qwen2-ts/backend-wasm';
 * const backend = await wasmBackend({ threads: 2 });
 * ```
 * @packageDocumentation
 */
export { wasmBackend, WasmBackend } from './backend.js';
export type { WasmBackendOptions } from './backend.js';
export { hasSimd } from './kernels.js';
