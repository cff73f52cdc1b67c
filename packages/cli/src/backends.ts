/**
 * Backend selection for `--backend js|wasm|webgpu|cuda`. Backends are imported dynamically so that a
 * missing or unbuilt one (the CUDA addon without nvcc or a driver, Dawn without a GPU) gives a clear
 * error, or a note and a fallback when no backend was asked for, instead of breaking every command at
 * start-up.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Backend } from '@qwen2-ts/core';
import { CliError } from './util/errors.js';

/** Backend names the CLI accepts. */
export const BACKEND_NAMES = ['js', 'wasm', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The default order: fastest first. */
const PREFERENCE: readonly BackendName[] = ['cuda', 'webgpu', 'wasm', 'js'];

/** Options every backend factory may take. */
export interface BackendOptions {
  /** CPU threads (wasm). */
  threads?: number;
  /** Allow adapters that emulate a GPU on the CPU (only when webgpu was asked for explicitly). */
  allowSoftwareAdapter?: boolean;
  /** Options of `cudaBackend()` (@qwen2-ts/backend-cuda). */
  cuda?: CudaOptions;
}

/** The options of `cudaBackend()` the command line can set (`--prefill-precision`, `--programmatic-launch`). */
export interface CudaOptions {
  prefillPrecision?: 'f32' | '16-bit';
  programmaticDependentLaunch?: boolean;
}

/** A backend that cannot be used here, with the reason. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(readonly backend: BackendName, readonly reason: string, options?: { cause?: unknown }) {
    super(`the ${backend} backend is not available: ${reason}`, options);
  }
}

/** WebGPU adapters that emulate a GPU on the CPU: never picked by default (the wasm kernels are faster). */
const SOFTWARE_ADAPTER = /lavapipe|llvmpipe|swiftshader|software|\bcpu\b/i;

function firstLine(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!;
}

/** Imports an optional package, turning "not installed / not built" into {@link BackendUnavailableError}. */
async function importOptional(backend: BackendName, specifier: string): Promise<Record<string, unknown>> {
  try {
    // A variable specifier keeps bundlers from resolving optional packages at build time.
    return (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (err) {
    const msg = firstLine(err);
    const reason = /Cannot find (package|module)|ERR_MODULE_NOT_FOUND/.test(msg) || (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
      ? `${specifier} is not installed or not built (run the build first)`
      : `${specifier} failed to load: ${msg}`;
    throw new BackendUnavailableError(backend, reason, { cause: err });
  }
}

function factory<T>(mod: Record<string, unknown>, backend: BackendName, name: string): (options: T) => Promise<Backend> {
  const f = mod[name];
  if (typeof f !== 'function') throw new BackendUnavailableError(backend, `its package has no ${name}() (version mismatch?)`);
  return f as (options: T) => Promise<Backend>;
}

/** core's reference backend: a class or a factory, whichever core exports. */
async function createReference(): Promise<Backend> {
  const core = (await import('@qwen2-ts/core')) as unknown as Record<string, unknown>;
  for (const name of ['createReferenceBackend', 'referenceBackend']) {
    if (typeof core[name] === 'function') return (await (core[name] as () => Promise<Backend> | Backend)()) as Backend;
  }
  if (typeof core.ReferenceBackend === 'function') return new (core.ReferenceBackend as new () => Backend)();
  throw new BackendUnavailableError('js', '@qwen2-ts/core exports no reference backend (version mismatch?)');
}

/** On Linux a hardware GPU shows up as a device node; without one, WebGPU could only emulate it. */
function linuxHasGpuDevice(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    if (readdirSync('/dev/dri').some((f) => f.startsWith('renderD') || f.startsWith('card'))) return true;
  } catch {
    // no /dev/dri
  }
  return existsSync('/dev/nvidia0') || existsSync('/dev/dxg');
}

async function createWebGPU(options: BackendOptions): Promise<Backend> {
  if (!options.allowSoftwareAdapter && !linuxHasGpuDevice()) throw new BackendUnavailableError('webgpu', 'no GPU device (/dev/dri, /dev/nvidia*)');
  const mod = await importOptional('webgpu', '@qwen2-ts/backend-webgpu');
  let gpu: unknown = (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu;
  if (!gpu) {
    // Node: Dawn through npm "webgpu". The backend keeps the object alive as long as its device.
    const dawn = await importOptional('webgpu', 'webgpu');
    try {
      gpu = (dawn.create as (flags: string[]) => unknown)([]);
    } catch (err) {
      throw new BackendUnavailableError('webgpu', `Dawn could not start: ${firstLine(err)}`, { cause: err });
    }
  }
  let backend: Backend;
  try {
    backend = await factory<{ gpu: unknown }>(mod, 'webgpu', 'webgpuBackend')({ gpu });
  } catch (err) {
    if (err instanceof BackendUnavailableError) throw err;
    throw new BackendUnavailableError('webgpu', firstLine(err), { cause: err });
  }
  if (!options.allowSoftwareAdapter && SOFTWARE_ADAPTER.test(backend.info.device)) {
    await backend.dispose().catch(() => {});
    throw new BackendUnavailableError('webgpu', `only a software adapter (${backend.info.device})`);
  }
  return backend;
}

async function createCuda(options: BackendOptions): Promise<Backend> {
  const mod = await importOptional('cuda', '@qwen2-ts/backend-cuda');
  if (typeof mod.cudaAvailability === 'function') {
    const a = (mod.cudaAvailability as () => { available: boolean; reason?: string })();
    if (!a.available) throw new BackendUnavailableError('cuda', a.reason ?? 'unavailable');
  }
  try {
    return await factory<CudaOptions>(mod, 'cuda', 'cudaBackend')(options.cuda ?? {});
  } catch (err) {
    if (err instanceof BackendUnavailableError) throw err;
    throw new BackendUnavailableError('cuda', firstLine(err), { cause: err });
  }
}

async function createWasm(options: BackendOptions): Promise<Backend> {
  const mod = await importOptional('wasm', '@qwen2-ts/backend-wasm');
  try {
    return await factory<{ threads?: number }>(mod, 'wasm', 'wasmBackend')(options.threads !== undefined ? { threads: options.threads } : {});
  } catch (err) {
    if (err instanceof BackendUnavailableError) throw err;
    throw new BackendUnavailableError('wasm', firstLine(err), { cause: err });
  }
}

/**
 * Creates one named backend.
 * @throws {@link BackendUnavailableError} when its package is missing, unbuilt or cannot run here
 */
export async function createBackend(name: BackendName, options: BackendOptions = {}): Promise<Backend> {
  switch (name) {
    case 'js': return createReference();
    case 'wasm': return createWasm(options);
    case 'webgpu': return createWebGPU(options);
    case 'cuda': return createCuda(options);
  }
}

/**
 * Picks a backend: the one asked for (an error if it cannot run), or the fastest that can run here,
 * with a note saying which faster ones were skipped and why.
 * @param requested - the `--backend` value, if any
 * @param note - receives the fallback note
 */
export async function selectBackend(requested: BackendName | undefined, options: BackendOptions, note: (message: string) => void): Promise<Backend> {
  if (requested) {
    try {
      return await createBackend(requested, { ...options, allowSoftwareAdapter: true });
    } catch (err) {
      if (err instanceof BackendUnavailableError) {
        throw new CliError(`${err.message}${requested === 'js' ? '' : ' (try --backend wasm or --backend js)'}`, 1, { cause: err });
      }
      throw err;
    }
  }
  const skipped: string[] = [];
  for (const name of PREFERENCE) {
    try {
      const backend = await createBackend(name, options);
      if (skipped.length > 0) note(`using the ${name} backend (${skipped.join('; ')})`);
      return backend;
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      skipped.push(`${name}: ${err.reason}`);
    }
  }
  throw new CliError(`no backend could be started: ${skipped.join('; ')}`);
}
