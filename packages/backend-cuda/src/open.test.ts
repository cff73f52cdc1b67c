import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { availabilityOf, cudaAvailability, loadAddon } from './addon.js';
import { CudaUnavailableError } from './errors.js';
import { fakeAddon } from './fake-addon.js';
import { cudaBackend, openCudaBackend } from './open.js';

const built = existsSync(new URL('../build/Release/qwen2_cuda.node', import.meta.url));
const usable = cudaAvailability().available;

describe('cudaBackend where CUDA is unusable', () => {
  it('throws CudaUnavailableError naming the reason when the addon is missing', () => {
    expect(() => openCudaBackend(undefined, 'the CUDA addon was not built (nvcc was not found at install time)', {})).toThrow(CudaUnavailableError);
    expect(() => openCudaBackend(undefined, 'the CUDA addon was not built (nvcc was not found at install time)', {})).toThrow(/nvcc was not found/);
  });

  it('names the CUDA error of a missing driver', () => {
    const n = fakeAddon({
      probe: () => ({ runtimeVersion: 13000, driverVersion: 0, deviceCount: 0, error: 35, errorName: 'cudaErrorInsufficientDriver', errorString: 'CUDA driver version is insufficient for CUDA runtime version' }),
    });
    let err: unknown;
    try {
      openCudaBackend(n, undefined, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CudaUnavailableError);
    expect((err as CudaUnavailableError).cudaError).toBe('cudaErrorInsufficientDriver');
    expect((err as Error).message).toMatch(/cudaErrorInsufficientDriver/);
  });

  it('turns a failing device open into CudaUnavailableError with the CUDA error name', () => {
    const n = fakeAddon({
      init: () => {
        throw Object.assign(new Error('CUDA device 3 does not exist (1 device(s) visible)'), { code: 'cudaErrorInvalidDevice' });
      },
    });
    expect(() => openCudaBackend(n, undefined, { device: 3 })).toThrow(/cannot open CUDA device 3.*does not exist/);
    expect(() => openCudaBackend(n, undefined, { device: -1 })).toThrow(RangeError);
  });

  it('rejects an unknown prefill precision before touching the addon', () => {
    expect(() => openCudaBackend(undefined, 'not built', { prefillPrecision: 'fp8' as never })).toThrow(/prefillPrecision must be 'f32' or '16-bit', got fp8/);
  });

  it('asks the addon for programmatic dependent launch only when told to, and reports what the device granted', () => {
    const n = fakeAddon();
    expect(openCudaBackend(n, undefined, {}).programmaticDependentLaunch).toBe(false);
    expect(openCudaBackend(n, undefined, { programmaticDependentLaunch: true }).programmaticDependentLaunch).toBe(true);
    expect(n.calls.filter((c) => c.fn === 'setProgrammaticLaunch').map((c) => c.args)).toEqual([[0, 1]]);
    expect(() => openCudaBackend(n, undefined, { programmaticDependentLaunch: 'yes' as never })).toThrow(/programmaticDependentLaunch must be a boolean, got yes/);
  });

  it('availability reports a throwing probe instead of throwing', () => {
    const a = availabilityOf({ probe: () => { throw new Error('boom'); } });
    expect(a).toEqual({ available: false, reason: 'the CUDA probe failed: boom' });
  });

  // The real addon on this machine: built by `pnpm build` where nvcc exists; no GPU driver here.
  it.runIf(built && !usable)('the built addon loads without a driver and cudaBackend() rejects with the CUDA error name', async () => {
    expect(loadAddon().addon).toBeDefined();
    const err = await cudaBackend().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CudaUnavailableError);
    expect((err as Error).message).toMatch(/cudaError\w+|no CUDA device found/);
  });

  it.runIf(!built)('without the addon cudaBackend() rejects and says the addon was not built', async () => {
    await expect(cudaBackend()).rejects.toThrow(/not built|failed to load/);
  });
});
