/**
 * Backend selection for `--backend js|wasm|webgpu|cuda`. Backends are imported dynamically so that a
 * missing or unbuilt one (the CUDA addon without nvcc, Dawn without a GPU) gives a clear error, or a
 * note and a fallback when no backend was asked for, instead of breaking every command at start-up.
 */
import type { Backend } from '@qwen2-ts/core';
import { CliError } from './util/errors.js';

/** Backend names the CLI accepts. */
export const BACKEND_NAMES = ['js', 'wasm', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The default order: fastest first. */
const PREFERENCE: readonly BackendName[] = ['cuda', 'webgpu', 'wasm', 'js'];

/** Where each backend lives. `js` is core's reference backend. */
const PACKAGES: Record<BackendName, string> = {
  js: '@qwen2-ts/core',
  wasm: '@qwen2-ts/backend-wasm',
  webgpu: '@qwen2-ts/backend-webgpu',
  cuda: '@qwen2-ts/backend-cuda',
};

/** Options every backend factory may take. */
export interface BackendOptions {
  threads?: number;
  /** Allow adapters that emulate a GPU on the CPU (only when webgpu was asked for explicitly). */
  allowSoftwareAdapter?: boolean;
}

/** A backend that cannot be used here, with the reason. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(readonly backend: BackendName, readonly reason: string, options?: { cause?: unknown }) {
    super(`the ${backend} backend is not available: ${reason}`, options);
  }
}

type Factory = (options: BackendOptions) => Promise<Backend>;

async function importPackage(name: BackendName): Promise<Record<string, unknown>> {
  const specifier = PACKAGES[name];
  try {
    // A variable specifier keeps bundlers from resolving optional backends at build time.
    return (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? '';
    const reason = /Cannot find (package|module)/.test(msg) ? `${specifier} is not installed or not built (run the build first)` : `${specifier} failed to load: ${msg}`;
    throw new BackendUnavailableError(name, reason, { cause: err });
  }
}

function isClass(f: unknown): f is new (...args: unknown[]) => unknown {
  return typeof f === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(f));
}

/**
 * Finds a package's backend factory: `create*Backend(options)` (async or not), or a `*Backend` class
 * with a static `create(options)` or a constructor.
 */
function findFactory(mod: Record<string, unknown>, name: BackendName, preferred: readonly string[]): Factory {
  const names = [...preferred, ...Object.keys(mod).filter((k) => /^create\w*Backend$/.test(k)), ...Object.keys(mod).filter((k) => /^\w+Backend$/.test(k))];
  for (const key of names) {
    const f = mod[key];
    if (typeof f !== 'function') continue;
    if (isClass(f)) {
      const create = (f as unknown as { create?: unknown }).create;
      if (typeof create === 'function') return async (o) => (await (create as (o: BackendOptions) => Promise<Backend>).call(f, o)) as Backend;
      return async (o) => new (f as new (o: BackendOptions) => Backend)(o);
    }
    return async (o) => (await (f as (o: BackendOptions) => Promise<Backend> | Backend)(o)) as Backend;
  }
  throw new BackendUnavailableError(name, `${PACKAGES[name]} exports no backend factory`);
}

/** Asks a backend package whether it can run here, when it has a cheap probe; undefined = no probe. */
async function probe(name: BackendName, mod: Record<string, unknown>, options: BackendOptions): Promise<string | undefined> {
  if (name === 'cuda' && typeof mod.cudaAvailability === 'function') {
    const a = (mod.cudaAvailability as () => { available: boolean; reason?: string })();
    return a.available ? undefined : a.reason ?? 'unavailable';
  }
  if (name === 'webgpu' && typeof mod.probeWebGPU === 'function' && !options.allowSoftwareAdapter) {
    // Without an explicit --backend webgpu, an adapter that runs on the CPU (lavapipe, SwiftShader) is
    // slower than the wasm kernels, so it does not count as available.
    if (typeof mod.webgpuAvailability === 'function') {
      const a = (await (mod.webgpuAvailability as () => Promise<{ available: boolean; reason?: string; software?: boolean }>)());
      if (!a.available) return a.reason ?? 'no adapter';
      if (a.software) return 'only a software (CPU) adapter';
    }
  }
  return undefined;
}

/**
 * Creates one named backend.
 * @throws {@link BackendUnavailableError} when its package is missing, unbuilt or cannot run here
 */
export async function createBackend(name: BackendName, options: BackendOptions = {}): Promise<Backend> {
  const mod = await importPackage(name);
  const reason = await probe(name, mod, options);
  if (reason) throw new BackendUnavailableError(name, reason);
  const preferred = {
    js: ['createReferenceBackend', 'ReferenceBackend'],
    wasm: ['createWasmBackend', 'WasmBackend'],
    webgpu: ['createWebGPUBackend', 'createWebGpuBackend', 'WebGPUBackend'],
    cuda: ['createCudaBackend', 'createCUDABackend', 'CudaBackend'],
  }[name];
  const factory = findFactory(mod, name, preferred);
  let backend: Backend;
  try {
    backend = await factory(options);
  } catch (err) {
    if (err instanceof BackendUnavailableError) throw err;
    throw new BackendUnavailableError(name, (err as Error).message?.split('\n')[0] ?? String(err), { cause: err });
  }
  if (name === 'webgpu' && !options.allowSoftwareAdapter && SOFTWARE_ADAPTER.test(backend.info.device)) {
    await backend.dispose().catch(() => {});
    throw new BackendUnavailableError(name, `only a software adapter (${backend.info.device}), slower than the CPU kernels`);
  }
  return backend;
}

/** WebGPU adapters that emulate a GPU on the CPU: never picked by default. */
const SOFTWARE_ADAPTER = /lavapipe|llvmpipe|swiftshader|software|\bcpu\b/i;

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
      if (err instanceof BackendUnavailableError) throw new CliError(`${err.message} (try --backend wasm or --backend js)`, 1, { cause: err });
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
