/**
 * The kernel interface every qwen2-ts backend implements.
 *
 * Model: the graph (core) owns the schedule; a backend owns memory and kernels. Activations are 2-D
 * float32 matrices `[rows, cols]` living on the backend ("device"); one row per token. Weights are
 * uploaded once in one of the {@link WeightFormat}s and never come back. Ops are *enqueued*: a CPU
 * backend may run each op as it is called, a GPU backend records them and submits when a pass ends or
 * when something is read back. Only {@link Backend.read}, {@link Backend.argmax} and
 * {@link Backend.sample} return data, and they are the only async ops.
 *
 * Shapes follow Hugging Face: a linear layer's weight is `[out, in]` row-major, so
 * `matmul(x[T, in], W[out, in]) = x · Wᵀ → [T, out]`. Prefill calls the same ops with `T > 1` (a backend
 * should use a GEMM there) and decode with `T = 1` (a matvec).
 *
 * @module
 */

/** How a weight matrix is stored on a backend. Compute always accumulates in f32. */
export type WeightFormat = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k';

/** Number of values per quantization block in `q8_0` and `q4_0` (one scale per block). */
export const QUANT_BLOCK = 32;

/** Number of values per `q4_k` super-block (eight sub-blocks of 32). */
export const QK_K = 256;

/** Bytes of one `q4_k` super-block: f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles. */
export const Q4_K_BLOCK_BYTES = 144;

/**
 * A weight matrix `[rows, cols]` in host memory, in the canonical layout of its format. Backends copy or
 * repack it at upload; the graph drops it afterwards. Vectors (biases, norm weights) are `rows = 1`.
 *
 * - `f32`: `data` row-major.
 * - `f16` / `bf16`: `data` holds the raw 16-bit patterns, row-major.
 * - `q8_0`: each row is cut into blocks of 32 values (`cols % 32 === 0`); block `b` of row `r` has
 *   scale `scales[r * cols/32 + b]` (an f16 bit pattern) and 32 signed values
 *   `quants[(r * cols/32 + b) * 32 + i]`; value = scale * quant.
 * - `q4_0`: same blocks; each block is 16 bytes in `quants` at `(r * cols/32 + b) * 16`; byte `j` holds
 *   value `j` in its low nibble and value `j + 16` in its high nibble; value = scale * (nibble - 8).
 *   (The block layout of ggml's Q4_0 with scales stored apart.)
 * - `q4_k`: ggml's Q4_K, byte for byte (`cols % 256 === 0`): row `r`'s super-block `s` (values
 *   `256s..256s+255`) is the {@link Q4_K_BLOCK_BYTES} bytes at `(r * cols/256 + s) * 144` of `blocks`:
 *   f16 `d` (bytes 0-1, little-endian), f16 `dmin` (2-3), `scales[12]` (4-15), `qs[128]` (16-143).
 *   Sub-block `j` (values `32j..32j+31`) has a 6-bit scale `sc` and 6-bit min `m`: for `j < 4`
 *   `sc = scales[j] & 63`, `m = scales[j+4] & 63`; otherwise `sc = (scales[j+4] & 15) | ((scales[j-4] >> 6) << 4)`,
 *   `m = (scales[j+4] >> 4) | ((scales[j] >> 6) << 4)`. Value `i` of sub-block `j` is
 *   `(d * sc) * q - (dmin * m)` (each product in f32), where `q` is the low nibble of `qs[32(j>>1) + i]`
 *   for even `j` and its high nibble for odd `j`. This is the layout llama.cpp's Q4_K_M files hold, so
 *   a GGUF file's Q4_K tensors upload without being quantized again.
 */
export type HostWeight =
  | { format: 'f32'; rows: number; cols: number; data: Float32Array }
  | { format: 'f16' | 'bf16'; rows: number; cols: number; data: Uint16Array }
  | { format: 'q8_0'; rows: number; cols: number; scales: Uint16Array; quants: Int8Array }
  | { format: 'q4_0'; rows: number; cols: number; scales: Uint16Array; quants: Uint8Array }
  | { format: 'q4_k'; rows: number; cols: number; blocks: Uint8Array };

/** A weight uploaded to a backend. Opaque apart from its shape and format. */
export interface Weight {
  readonly format: WeightFormat;
  readonly rows: number;
  readonly cols: number;
  /** Bytes this weight occupies on the backend. */
  readonly bytes: number;
}

/** A float32 activation matrix `[rows, cols]` on a backend. Views share their parent's storage. */
export interface Tensor {
  readonly rows: number;
  readonly cols: number;
}

/** Shape of a per-sequence KV cache. */
export interface KVCacheSpec {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Capacity in tokens; preallocated, never grown. */
  maxTokens: number;
  /** How keys and values are stored (default `'f32'`); see {@link KVCacheDtype}. */
  dtype?: KVCacheDtype;
}

/**
 * Storage of a KV cache's keys and values. `'f32'` keeps what the projections computed. `'f16'` takes
 * half the memory and half the bytes attention reads per token: `writeKV` rounds every value to the
 * nearest IEEE half (ties to even; core's `roundToF16KV`), finite values beyond the half range saturate
 * to ±65504 instead of becoming infinite, ±Infinity and NaN stay what they are, and `attention` reads the
 * stored halves widened exactly to f32. Attention arithmetic stays f32 either way.
 */
export type KVCacheDtype = 'f32' | 'f16';

/** A preallocated KV cache for one sequence. Opaque apart from its spec. */
export interface KVCache {
  readonly spec: KVCacheSpec;
  /** Bytes this cache occupies on the backend. */
  readonly bytes: number;
}

/** Attention geometry, shared by every layer of a model. */
export interface AttentionSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Softmax scale, normally `1 / sqrt(headDim)`. */
  scale: number;
  /**
   * When set, a query at position p sees keys at positions `p - slidingWindow + 1 .. p` only
   * (Hugging Face's Qwen2 sliding-window semantics); unset means full causal attention.
   */
  slidingWindow?: number;
}

/**
 * Sampling parameters, in the order they apply: penalties on the raw logits, then temperature, then the
 * top-k / top-p / min-p filters, then a draw with `uniform`. `temperature === 0` means greedy (argmax
 * after penalties). The reference semantics are core's `sampleFromLogits`.
 */
export interface SamplingParams {
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 disables. */
  topP: number;
  /** Drop tokens whose probability is below minP times the top probability; 0 disables. */
  minP: number;
  /** Hugging Face's repetition penalty (divide positive / multiply negative logits); 1 disables. */
  repetitionPenalty: number;
  /** OpenAI's presence penalty (subtract once per seen token); 0 disables. */
  presencePenalty: number;
  /** OpenAI's frequency penalty (subtract per occurrence); 0 disables. */
  frequencyPenalty: number;
  /** Distinct token ids seen so far (prompt and generated) with their counts, for the penalties. */
  history: { ids: Int32Array; counts: Int32Array };
  /** A uniform random number in [0, 1) drawn by the caller's seeded generator. */
  uniform: number;
}

/**
 * Token ids a backend keeps on its device ({@link Backend.argmaxOnDevice}), one per row of the logits
 * they were picked from. Only the backend that made them can embed them.
 */
export interface DeviceTokens {
  /** How many ids: the rows of the logits. */
  readonly count: number;
  /**
   * The ids, once the device has computed them; every call returns the same promise.
   * @throws RangeError when a row had no orderable value (all NaN), as `argmax` does
   */
  ids(): Promise<Int32Array>;
}

/** What a backend says about itself. */
export interface BackendInfo {
  /** Short name: `js`, `wasm`, `webgpu`, `cuda`. */
  name: string;
  /** Human-readable device description, for example the adapter or CPU thread count. */
  device: string;
  /** Weight formats this backend can store. */
  formats: readonly WeightFormat[];
  /** Threads used, when meaningful. */
  threads?: number;
}

/**
 * The kernel interface. Every op writes into a caller-provided output tensor (no hidden allocation on
 * the hot path); in-place use is allowed where an op says so.
 */
export interface Backend {
  readonly info: BackendInfo;

  // ---- memory -------------------------------------------------------------------------------------

  /** Uploads a weight. May repack it; the host copy can be dropped once the promise resolves. */
  uploadWeight(weight: HostWeight, name: string): Promise<Weight>;
  /**
   * Optional: an empty host weight whose arrays already live where {@link Backend.uploadWeight} would
   * copy them. The loader fills it slice by slice and then uploads it, which adopts the storage without
   * a copy, so loading a large tensor never holds a second, host-side copy of it. Fill and upload (or
   * discard) one buffer before asking for the next; a buffer that is not uploaded must be given back
   * with {@link Backend.discardWeightBuffer}.
   */
  weightBuffer?(format: WeightFormat, rows: number, cols: number, name: string): Promise<HostWeight>;
  /** Releases a buffer from {@link Backend.weightBuffer} that will not be uploaded. */
  discardWeightBuffer?(weight: HostWeight): void;
  /**
   * Optional: quantizes the `values.length / 32` blocks of `values` to `format` into `scales` and
   * `quants` from block `firstBlock` on (`quants` an Int8Array for q8_0, a Uint8Array for q4_0), with
   * exactly the bits of core's `quantizeQ8_0` / `quantizeQ4_0` (ggml's reference formulas) applied to
   * the values as f32; a block that holds a NaN may get a NaN scale of either sign. `values` is f32, or a
   * Uint16Array of bf16 bit patterns (a bf16 checkpoint's bytes as they are, so that loading makes no f32
   * copy). Loading a model into q8_0 or q4_0 quantizes every matrix through it where offered: SIMD and
   * threads do it several times faster than JavaScript.
   */
  quantizeBlocks?(format: 'q8_0' | 'q4_0', values: Float32Array | Uint16Array, scales: Uint16Array, quants: Int8Array | Uint8Array, firstBlock: number): void;
  /** Allocates a float32 activation matrix (contents undefined). */
  alloc(rows: number, cols: number): Tensor;
  /** A view of `rows` consecutive rows of `t` starting at `rowStart`, sharing storage. */
  view(t: Tensor, rowStart: number, rows: number): Tensor;
  /** Copies host data into a tensor (`data.length === rows * cols`). */
  write(t: Tensor, data: Float32Array): void;
  /** Allocates a KV cache. */
  createKVCache(spec: KVCacheSpec): KVCache;
  /** Frees a tensor, weight or cache; using it afterwards is an error. Views are freed with their parent. */
  free(x: Tensor | Weight | KVCache): void;

  // ---- ops (enqueued) -----------------------------------------------------------------------------

  /** `out[t] = table[ids[t]]` dequantized to f32. `out.rows === ids.length`, `out.cols === table.cols`. */
  embed(table: Weight, ids: Int32Array, out: Tensor): void;
  /** Row-wise RMSNorm in f32: `out = x / sqrt(mean(x²) + eps) * weight`. `out` may be `x`. */
  rmsNorm(x: Tensor, weight: Weight, eps: number, out: Tensor): void;
  /**
   * `out = x · Wᵀ (+ bias)`: `x[T, K]`, `W[N, K]`, `bias[1, N]`, `out[T, N]`. Several weights that read
   * the same input (q/k/v, gate/up) come in one call so that a backend can fuse them into one kernel;
   * `weights[i]` writes `outs[i]`.
   */
  matmul(x: Tensor, weights: readonly Weight[], biases: readonly (Weight | undefined)[], outs: readonly Tensor[]): void;
  /**
   * Rotary embedding, rotate-half convention (pairs `i` and `i + headDim/2`), in place on `x[T, heads *
   * headDim]`; row t has position `startPos + t`; frequencies `theta^(-2i/headDim)`.
   */
  rope(x: Tensor, heads: number, headDim: number, startPos: number, theta: number): void;
  /** Stores `k[T, kvHeads*headDim]` and `v` (same shape) at positions `startPos .. startPos+T-1` of `layer`. */
  writeKV(cache: KVCache, layer: number, k: Tensor, v: Tensor, startPos: number): void;
  /**
   * Causal grouped-query attention of `q[T, heads*headDim]` (row t at position `startPos + t`) over the
   * cache's positions `0 .. startPos + t` of `layer` (written by `writeKV` before this
   * call); query head h reads kv head `floor(h / (heads / kvHeads))`. `out[T, heads*headDim]`.
   */
  attention(q: Tensor, cache: KVCache, layer: number, startPos: number, spec: AttentionSpec, out: Tensor): void;
  /** `out = silu(gate) * up`, element-wise. `out` may be `gate`. */
  swiglu(gate: Tensor, up: Tensor, out: Tensor): void;
  /** `out = a + b`, element-wise. `out` may be `a` or `b`. */
  add(a: Tensor, b: Tensor, out: Tensor): void;
  /** Copies `src` into `dst` (same shape); with views this selects rows (for example the last position). */
  copy(src: Tensor, dst: Tensor): void;

  // ---- passes and results -------------------------------------------------------------------------

  /**
   * Brackets one forward pass of `tokens` tokens starting at `startPos` (a prefill chunk or one decode
   * step). GPU backends record everything until `endPass` into one submission.
   */
  beginPass(tokens: number, startPos: number): void;
  /** Ends the pass begun by `beginPass`; work may still be in flight afterwards. */
  endPass(): void;
  /** Reads a tensor back (row-major), after all enqueued work. */
  read(t: Tensor): Promise<Float32Array>;
  /** Index of the largest value of each row of `logits` (first on ties), computed on the device. */
  argmax(logits: Tensor): Promise<Int32Array>;
  /** Samples one token from a one-row `logits` with `SamplingParams`, on the device where possible. */
  sample(logits: Tensor, params: SamplingParams): Promise<number>;
  /**
   * Optional (with {@link Backend.embedOnDevice}): `argmax` whose ids stay where they were computed, so
   * that the next pass can embed them before the host has them. Their readback starts at once;
   * {@link DeviceTokens.ids} awaits it. Greedy decoding then records step n+1 while the device still runs
   * step n, instead of leaving the device idle while the host reads a token and records the next step.
   */
  argmaxOnDevice?(logits: Tensor): DeviceTokens;
  /**
   * Optional: `embed` of the ids that this backend's latest {@link Backend.argmaxOnDevice} returned. A
   * backend may keep only those (a later `argmaxOnDevice`, `argmax` or `sample` may overwrite them), so
   * older ids, or another backend's, throw a `BackendUsageError`.
   */
  embedOnDevice?(table: Weight, ids: DeviceTokens, out: Tensor): void;
  /**
   * Optional (with the two above): `sample` whose token stays on the device like
   * {@link Backend.argmaxOnDevice}'s. `previous` (one id, from this backend's latest `argmaxOnDevice` or
   * `sampleOnDevice`) is the token drawn last that the host has not read yet: it counts as one more
   * occurrence in `params.history`. So sampled decoding, penalties included, can record step n+1 before
   * it reads token n, as greedy decoding does.
   */
  sampleOnDevice?(logits: Tensor, params: SamplingParams, previous?: DeviceTokens): DeviceTokens;

  /** Bytes held now, by kind (weights, activations, KV caches). */
  memory(): { weights: number; activations: number; kvCache: number };

  /** Frees everything this backend holds. The backend is unusable afterwards. */
  dispose(): Promise<void>;
}
