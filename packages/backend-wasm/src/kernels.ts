import { KERNELS_WASM_BASE64 } from './generated/kernels-wasm.js';

/** The exports of the compiled kernel module. */
export interface KernelExports {
  dot_f32(a: number, b: number, n: number): number;
}

/** An instantiated kernel module with its memory. */
export interface WasmKernels {
  memory: WebAssembly.Memory;
  exports: KernelExports;
}

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/**
 * Compiles and instantiates the SIMD kernels over a fresh memory.
 * @param initialPages - initial memory size in 64 KiB pages
 * @throws when the engine lacks WebAssembly SIMD128
 */
export async function instantiateKernels(initialPages = 16): Promise<WasmKernels> {
  const memory = new WebAssembly.Memory({ initial: initialPages, maximum: 65536 });
  const module = await WebAssembly.compile(decodeBase64(KERNELS_WASM_BASE64));
  const instance = await WebAssembly.instantiate(module, { env: { memory, abort() { throw new Error('wasm kernel abort'); } } });
  return { memory, exports: instance.exports as unknown as KernelExports };
}
