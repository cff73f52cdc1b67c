import { WebGPUDeviceError } from './errors.js';

/** What the backend asks of a device, and what it got. */
export interface AcquiredDevice {
  /** The `GPU` object the adapter came from; held so that Dawn's native instance stays alive. */
  readonly gpu: GPU;
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  /** Whether kernels may use `f16` (the adapter offers `shader-f16` and it was not declined). */
  readonly f16: boolean;
  /** Whether kernels may use subgroup operations (the adapter offers `subgroups`). */
  readonly subgroups: boolean;
  readonly description: string;
}

/** Limits below these values are not worth running a model with; each is the WebGPU default or less. */
const MINIMUM_LIMITS: Record<string, number> = {
  maxStorageBuffersPerShaderStage: 6,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxStorageBufferBindingSize: 16 << 20,
};

/**
 * Requests an adapter and a device with the largest buffer limits the adapter offers (model weights are
 * big) and `shader-f16` when offered and wanted.
 * @throws WebGPUDeviceError when there is no WebGPU, no adapter, or a limit is below what the kernels need
 */
export async function acquireDevice(gpu: GPU | undefined, preferF16: boolean, useSubgroups = true, maxStorageBuffers = 16): Promise<AcquiredDevice> {
  const g = gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!g) throw new WebGPUDeviceError('WebGPU is not available here (no navigator.gpu; in Node pass `gpu: create([])` from npm "webgpu")');
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new WebGPUDeviceError('WebGPU offers no adapter (no GPU, or no driver for it)');
  for (const [name, min] of Object.entries(MINIMUM_LIMITS)) {
    const have = (adapter.limits as unknown as Record<string, number>)[name] ?? 0;
    if (have < min) throw new WebGPUDeviceError(`the WebGPU adapter's ${name} is ${have}; qwen2-ts needs at least ${min}`, name);
  }
  const features: GPUFeatureName[] = [];
  const f16 = preferF16 && adapter.features.has('shader-f16');
  if (f16) features.push('shader-f16');
  const subgroups = useSubgroups && adapter.features.has('subgroups' as GPUFeatureName);
  if (subgroups) features.push('subgroups' as GPUFeatureName);
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      // More than 8 lets q/k/v and gate/up share one decode dispatch (with the ops around them at 15).
      maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, maxStorageBuffers),
      maxComputeInvocationsPerWorkgroup: Math.min(limits.maxComputeInvocationsPerWorkgroup, 1024),
      maxComputeWorkgroupSizeX: Math.min(limits.maxComputeWorkgroupSizeX, 1024),
    },
  });
  const info = adapter.info as GPUAdapterInfo | undefined;
  const name = [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s && s.length > 0).join(' ') || 'unknown adapter';
  return { gpu: g, adapter, device, f16, subgroups, description: `${name}${f16 ? ' (shader-f16)' : ''}${subgroups ? ' (subgroups)' : ''}` };
}
