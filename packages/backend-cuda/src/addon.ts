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

/** What `init` reports about the device it opened. */
export interface NativeDeviceInfo {
  /** Context id, the first argument of every other call. */
  ctx: number;
  name: string;
  totalBytes: number;
  freeBytes: number;
  /** `major * 10 + minor`, for example 90 for an H100/H200. */
  computeCapability: number;
  smCount: number;
}

/** Flags of the native matmul's prefill GEMM (kernels.h): round x once to 16 bits. @internal */
export const GEMM_ROUND_X16 = 1;
/** Flags of the native matmul's prefill GEMM (kernels.h): never cut K into ranges (split-K). @internal */
export const GEMM_ONE_K_RANGE = 2;

/**
 * The functions of the native addon (native/addon.cc). Device pointers travel as numbers. Ops are
 * enqueued on the context's stream; only `download`, `readKept` and `sync` wait for the device.
 * Weights are passed as five numbers: data pointer, scales pointer (0 unless quantized), format code
 * ({@link FORMAT_CODE}), rows, cols. `usePassPos = 1` makes a position relative to the pass start
 * stored on the device by `setPassPos`, so that a captured CUDA graph serves every decode step.
 * @internal
 */
export interface NativeAddon {
  probe(): CudaProbe;
  init(device: number): NativeDeviceInfo;
  /** Turns programmatic dependent launch on (1) or off; returns whether it is on (compute capability 9.0+ only). */
  setProgrammaticLaunch(ctx: number, on: number): boolean;
  destroy(ctx: number): void;
  malloc(ctx: number, bytes: number): number;
  free(ctx: number, ptr: number): void;
  memInfo(ctx: number): { freeBytes: number; totalBytes: number };
  upload(ctx: number, ptr: number, byteOffset: number, data: ArrayBufferView): void;
  download(ctx: number, ptr: number, bytes: number): ArrayBuffer;
  sync(ctx: number): void;
  setPassPos(ctx: number, pos: number): void;
  embed(ctx: number, w: number, ws: number, wf: number, wr: number, wc: number, ids: number, tokens: number, out: number): void;
  rmsNorm(ctx: number, x: number, w: number, ws: number, wf: number, wr: number, wc: number, eps: number, out: number, rows: number, cols: number): void;
  /**
   * `params`: per weight 11 numbers: weight (5), bias (5; format -1 when none), out pointer. `gemmFlags`
   * (prefill only): 1 adds {@link GEMM_ROUND_X16}, the GEMM rounds x once to an f16/bf16 weight's type
   * instead of splitting it (hi + lo); 2 adds {@link GEMM_ONE_K_RANGE}, the GEMM never cuts K into ranges.
   * `epilogue` (decode only): kind (1 residual add, 2 SwiGLU), residual pointer, output pointer; see
   * `epilogueFor` in fusion.ts. Kind 3 (q/k/v's rope and KV write) takes 11 numbers: 3, 0, 0, head size,
   * pass-relative flag, position, theta, key cache, value cache, cache capacity, cache dtype code; see
   * `ropeEpilogueFor`.
   * `prologue` (decode only): an RMSNorm of x first, as RMSNorm weight (5), eps, output pointer (x is then
   * the norm's input); see `prologueFits`.
   */
  matmul(ctx: number, x: number, tokens: number, k: number, params: Float64Array, gemmFlags: number, epilogue?: Float64Array, prologue?: Float64Array): void;
  rope(ctx: number, x: number, tokens: number, heads: number, headDim: number, usePassPos: number, pos: number, theta: number): void;
  /** rope of q and k in one launch; with `kCache` non-zero also the KV write of the rotated k and of `v` (caches of `kvDtype`). */
  ropeQK(ctx: number, q: number, qHeads: number, k: number, kHeads: number, tokens: number, headDim: number, usePassPos: number, pos: number, theta: number, v: number, kCache: number, vCache: number, maxTokens: number, kvDtype: number): void;
  /** `kvDtype`: the caches' dtype code (`KV_DTYPE_CODE` in objects.ts); f16 caches store the values rounded. */
  writeKV(ctx: number, kCache: number, vCache: number, k: number, v: number, tokens: number, kvHeads: number, headDim: number, maxTokens: number, usePassPos: number, pos: number, kvDtype: number): void;
  /**
   * `sixteenBit` 1 lets a prefill pass take the bf16 tensor-core kernel (prefillPrecision '16-bit');
   * `kvDtype`: the caches' dtype code (`KV_DTYPE_CODE` in objects.ts).
   */
  attention(ctx: number, q: number, kCache: number, vCache: number, out: number, tokens: number, heads: number, kvHeads: number, headDim: number, maxTokens: number, usePassPos: number, pos: number, scale: number, window: number, keyCapacity: number, sixteenBit: number, kvDtype: number): void;
  swiglu(ctx: number, gate: number, up: number, out: number, n: number): void;
  add(ctx: number, a: number, b: number, out: number, n: number): void;
  copy(ctx: number, src: number, dst: number, bytes: number): void;
  /**
   * Greedy ids of each row (-1: no orderable value) into the context's token buffer, which the next
   * pass's embed may read, and their copy into readback slot `slot` (0..3), not waited for.
   * @returns the device address of the ids
   */
  argmaxKeep(ctx: number, logits: number, rows: number, cols: number, slot: number): number;
  /** Waits for readback slot `slot`'s copy (not for work enqueued after it) and returns its `rows` ids. */
  readKept(ctx: number, slot: number, rows: number): Int32Array;
  /**
   * Draws one token (-1: every logit NaN) into the context's token buffer and starts its copy into
   * readback slot `slot`, as `argmaxKeep` does. `params`: temperature, topK, topP, minP, repetition,
   * presence, frequency penalties, uniform, serial history (0/1). `countPrevious`: the id the token
   * buffer holds (the latest draw or argmax) counts as one more occurrence in the history.
   * @returns the device address of the id
   */
  sampleKeep(ctx: number, logits: number, n: number, historyIds: Int32Array, historyCounts: Int32Array, params: Float64Array, slot: number, countPrevious: boolean): number;
  beginCapture(ctx: number): void;
  endCapture(ctx: number, discard?: boolean): number;
  launchGraph(ctx: number, graph: number): void;
  destroyGraph(ctx: number, graph: number): void;
  copyBandwidth(ctx: number, bytes: number, iterations: number): number;
}

/** Whether the CUDA backend can run here, and why not when it cannot. */
export type CudaAvailability =
  | { available: true; probe: CudaProbe }
  | { available: false; reason: string; probe?: CudaProbe };

let cached: { addon?: NativeAddon; loadError?: string } | undefined;

/**
 * Loads the native addon once: build/Release/qwen2_cuda.node of this package, or the file named by the
 * QWEN2_CUDA_ADDON environment variable (an absolute path; used by bundled device scripts). Never throws.
 * @internal
 */
export function loadAddon(): { addon?: NativeAddon; loadError?: string } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const path = (typeof process !== 'undefined' && process.env.QWEN2_CUDA_ADDON) || '../build/Release/qwen2_cuda.node';
  try {
    cached = { addon: require(path) as NativeAddon };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    cached = { loadError: /Cannot find module/.test(msg ?? '') ? 'the CUDA addon was not built (nvcc was not found at install time)' : `the CUDA addon failed to load: ${msg}` };
  }
  return cached;
}

/** Availability from an addon load result; separated so that it can be tested with any probe. */
export function availabilityOf(addon: Pick<NativeAddon, 'probe'> | undefined, loadError?: string): CudaAvailability {
  if (!addon) return { available: false, reason: loadError ?? 'the CUDA addon is not loaded' };
  let probe: CudaProbe;
  try {
    probe = addon.probe();
  } catch (e) {
    return { available: false, reason: `the CUDA probe failed: ${(e as Error).message}` };
  }
  if (probe.error !== 0) return { available: false, reason: `no usable CUDA driver or device: ${probe.errorName} (${probe.errorString})`, probe };
  if (probe.deviceCount === 0) return { available: false, reason: 'no CUDA device found', probe };
  return { available: true, probe };
}

/**
 * Reports whether CUDA can be used: the addon must be built, the driver present and a device visible.
 * Never throws.
 */
export function cudaAvailability(): CudaAvailability {
  const { addon, loadError } = loadAddon();
  return availabilityOf(addon, loadError);
}
