import { createRequire } from 'node:module';

/** What the native addon reports about the CUDA driver and devices. */
export interface CudaProbe {
  runtimeVersion: number;
  driverVersion: number;
  deviceCount: number;
  /** CUDA error code of `cudaGetDeviceCount` (0 on success). */
  error: number;
  /** CUDA error name, for example `cudaErrorInsufficientDriver`. */
  errorName: string;
  errorString: string;
}

interface Addon {
  probe(): CudaProbe;
}

/** Whether the CUDA backend can run here, and why not when it cannot. */
export type CudaAvailability =
  | { available: true; probe: CudaProbe }
  | { available: false; reason: string; probe?: CudaProbe };

let cached: { addon?: Addon; loadError?: string } | undefined;

function loadAddon(): { addon?: Addon; loadError?: string } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    cached = { addon: require('../build/Release/qwen2_cuda.node') as Addon };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    cached = { loadError: /Cannot find module/.test(msg) ? 'the CUDA addon was not built (nvcc was not found at install time)' : `the CUDA addon failed to load: ${msg}` };
  }
  return cached;
}

/**
 * Reports whether CUDA can be used: the addon must be built, the driver present and a device visible.
 * Never throws.
 */
export function cudaAvailability(): CudaAvailability {
  const { addon, loadError } = loadAddon();
  if (!addon) return { available: false, reason: loadError! };
  const probe = addon.probe();
  if (probe.error !== 0) return { available: false, reason: `no usable CUDA driver or device: ${probe.errorName} (${probe.errorString})`, probe };
  if (probe.deviceCount === 0) return { available: false, reason: 'no CUDA device found', probe };
  return { available: true, probe };
}
