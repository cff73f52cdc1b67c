import { describe, expect, it } from 'vitest';
import { CudaError, CudaOutOfMemoryError, mapNativeError, native } from './errors.js';

/** An error shaped like the ones native/addon.cc throws. */
function nativeError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

describe('mapNativeError', () => {
  it('turns a CUDA error into a CudaError carrying its name', () => {
    const e = mapNativeError(nativeError('attention: cudaErrorIllegalAddress (an illegal memory access was encountered)', { code: 'cudaErrorIllegalAddress', cudaError: 700 }));
    expect(e).toBeInstanceOf(CudaError);
    expect((e as CudaError).cudaError).toBe('cudaErrorIllegalAddress');
    expect((e as CudaError).code).toBe(700);
    expect((e as Error).message).toMatch(/^attention: cudaErrorIllegalAddress/);
  });
  it('turns an allocation failure into a CudaOutOfMemoryError with the sizes', () => {
    const e = mapNativeError(nativeError('cudaErrorMemoryAllocation: out of device memory allocating 1000 bytes (10 bytes free of 100)', {
      code: 'cudaErrorMemoryAllocation', cudaError: 2, requestedBytes: 1000, freeBytes: 10, totalBytes: 100,
    }));
    expect(e).toBeInstanceOf(CudaOutOfMemoryError);
    expect(e).toBeInstanceOf(CudaError);
    expect(e).toMatchObject({ requestedBytes: 1000, freeBytes: 10, totalBytes: 100, cudaError: 'cudaErrorMemoryAllocation' });
    expect((e as Error).message).toMatch(/1000 bytes.*10 bytes free/);
  });
  it('leaves other errors alone', () => {
    const t = new TypeError('qwen2_cuda: argument 1 must be a number');
    expect(mapNativeError(t)).toBe(t);
    expect(mapNativeError('x')).toBe('x');
  });
  it('native() rethrows mapped errors and passes results through', () => {
    expect(native(() => 3)).toBe(3);
    expect(() => native(() => {
      throw nativeError('m', { code: 'cudaErrorLaunchFailure', cudaError: 719 });
    })).toThrow(CudaError);
  });
});
