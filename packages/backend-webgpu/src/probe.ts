/** Whether a WebGPU adapter can be had, and what it offers. */
export type WebGPUAvailability =
  | { available: true; adapter: GPUAdapter; features: string[]; shaderF16: boolean; maxStorageBufferBindingSize: number }
  | { available: false; reason: string };

/**
 * Asks `gpu` (default: `navigator.gpu`) for a high-performance adapter. Never throws: when WebGPU is
 * missing or offers no adapter, the result says why.
 * @param gpu - a `GPU` object, for example from npm `webgpu`'s `create()` in Node
 */
export async function probeWebGPU(gpu?: GPU): Promise<WebGPUAvailability> {
  const g = gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!g) return { available: false, reason: 'WebGPU is not available here (no navigator.gpu; in Node pass the GPU object from npm "webgpu")' };
  let adapter: GPUAdapter | null;
  try {
    adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { available: false, reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) return { available: false, reason: 'WebGPU offers no adapter (no GPU, or no driver for it)' };
  const features = [...adapter.features].map(String).sort();
  return { available: true, adapter, features, shaderF16: adapter.features.has('shader-f16'), maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize };
}
