/**
 * Errors of the CUDA backend. Every failure of the CUDA runtime reaches JavaScript as a {@link CudaError}
 * that names the CUDA error (for example `cudaErrorIllegalAddress`); nothing aborts the process.
 * @module
 */

/** The CUDA backend cannot run here: the addon was not built, or there is no usable driver or device. */
export class CudaUnavailableError extends Error {
  override name = 'CudaUnavailableError';
  /**
   * @param reason - why CUDA is unusable (names the CUDA error when the driver reported one)
   * @param cudaError - the CUDA error name, for example `cudaErrorInsufficientDriver`, when there is one
   */
  constructor(readonly reason: string, readonly cudaError?: string) {
    super(`the CUDA backend is unavailable: ${reason}`);
  }
}

/** A CUDA runtime call failed. */
export class CudaError extends Error {
  override name = 'CudaError';
  /**
   * @param message - what failed, with the CUDA error name and description
   * @param cudaError - the CUDA error name, for example `cudaErrorIllegalAddress`
   * @param code - the numeric CUDA error code, when known
   */
  constructor(message: string, readonly cudaError: string, readonly code?: number) {
    super(message);
  }
}

/** A device allocation failed; names the requested and free sizes. */
export class CudaOutOfMemoryError extends CudaError {
  override name = 'CudaOutOfMemoryError';
  constructor(message: string, readonly requestedBytes: number, readonly freeBytes: number, readonly totalBytes: number) {
    super(message, 'cudaErrorMemoryAllocation', 2);
  }
}

/** The shape of the errors the native addon throws (see native/addon.cc). */
interface NativeErrorFields {
  message: string;
  code?: unknown;
  cudaError?: unknown;
  requestedBytes?: unknown;
  freeBytes?: unknown;
  totalBytes?: unknown;
}

/**
 * Turns an error thrown by the native addon into a typed error: {@link CudaOutOfMemoryError} for failed
 * allocations, {@link CudaError} for any other CUDA error; anything else (a TypeError from argument
 * checks) is returned unchanged.
 */
export function mapNativeError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const f = e as Error & NativeErrorFields;
  if (typeof f.code !== 'string' || !f.code.startsWith('cuda')) return e;
  if (f.code === 'cudaErrorMemoryAllocation' && typeof f.requestedBytes === 'number') {
    return new CudaOutOfMemoryError(f.message, f.requestedBytes, Number(f.freeBytes ?? 0), Number(f.totalBytes ?? 0));
  }
  return new CudaError(f.message, f.code, typeof f.cudaError === 'number' ? f.cudaError : undefined);
}

/** Runs a native call and rethrows its failure as a typed error. */
export function native<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw mapNativeError(e);
  }
}
