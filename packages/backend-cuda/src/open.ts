import { availabilityOf, loadAddon, type NativeAddon } from './addon.js';
import { CudaBackend, type PrefillPrecision } from './backend.js';
import { CudaUnavailableError, mapNativeError } from './errors.js';

/** Options of {@link cudaBackend}. */
export interface CudaBackendOptions {
  /** CUDA device ordinal (default 0). */
  device?: number;
  /** Precision of prefill GEMMs with f16/bf16 weights and of prefill attention (default `'f32'`); see {@link PrefillPrecision}. */
  prefillPrecision?: PrefillPrecision;
  /**
   * Launch kernels with programmatic dependent launch where the GPU has it (compute capability 9.0 or
   * later: H100, H200): each kernel may be launched while the one before it runs, and waits on the
   * device for that one to finish, so that launch latency overlaps work. Results are the same bits.
   * Default `false` until it has been measured on a GPU; {@link CudaBackend.programmaticDependentLaunch}
   * says whether it is in use and can change it later.
   */
  programmaticDependentLaunch?: boolean;
}

/**
 * Opens the CUDA backend on a device.
 *
 * @param options - which device to use, the prefill precision (GEMMs and attention), programmatic dependent launch
 * @returns a {@link CudaBackend} (core's `Backend`) whose ops run as CUDA kernels on the device
 * @throws {@link CudaUnavailableError} when the addon was not built, the driver is missing or too old
 *   (the message names the CUDA error, for example `cudaErrorInsufficientDriver`), or the device does
 *   not exist; RangeError for an invalid device ordinal, prefillPrecision or programmaticDependentLaunch
 */
export async function cudaBackend(options: CudaBackendOptions = {}): Promise<CudaBackend> {
  const { addon, loadError } = loadAddon();
  return openCudaBackend(addon, loadError, options);
}

/**
 * {@link cudaBackend} over a given addon load result (tests pass a stand-in addon).
 * @internal
 */
export function openCudaBackend(addon: NativeAddon | undefined, loadError: string | undefined, options: CudaBackendOptions): CudaBackend {
  const device = options.device ?? 0;
  if (!Number.isInteger(device) || device < 0) throw new RangeError(`cudaBackend: device must be an integer >= 0, got ${device}`);
  const precision = options.prefillPrecision ?? 'f32';
  if (precision !== 'f32' && precision !== '16-bit') throw new RangeError(`cudaBackend: prefillPrecision must be 'f32' or '16-bit', got ${String(precision)}`);
  const pdl = options.programmaticDependentLaunch ?? false;
  if (typeof pdl !== 'boolean') throw new RangeError(`cudaBackend: programmaticDependentLaunch must be a boolean, got ${String(pdl)}`);
  const availability = availabilityOf(addon, loadError);
  if (!availability.available) throw new CudaUnavailableError(availability.reason, availability.probe?.errorName);
  let info;
  try {
    info = addon!.init(device);
  } catch (e) {
    const mapped = mapNativeError(e);
    const code = (mapped as { cudaError?: string }).cudaError ?? (e as { code?: string }).code;
    throw new CudaUnavailableError(`cannot open CUDA device ${device}: ${(e as Error).message}`, typeof code === 'string' ? code : undefined);
  }
  const backend = new CudaBackend(addon!, info, device, precision);
  if (pdl) backend.programmaticDependentLaunch = true;
  return backend;
}
