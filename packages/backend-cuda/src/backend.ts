import type {
  AttentionSpec, Backend, BackendInfo, DeviceTokens, HostWeight, KVCache, KVCacheSpec, SamplingParams, Tensor, Weight,
} from '@qwen2-ts/core';
import { GEMM_ONE_K_RANGE, GEMM_ROUND_X16, type NativeAddon, type NativeDeviceInfo } from './addon.js';
import { BackendUsageError, checkKVCacheSpec, checkLayer, checkTokenIds, expectShape } from '@qwen2-ts/core';
import { native } from './errors.js';
import { epilogueFor, kvWriteFor, normOfCopy, prologueFits, ropeEpilogueFor, ropePairFor, ropeStartsAt, type MatmulOp, type RopeOp, type WeightArgs } from './fusion.js';
import { cacheOf, CudaDeviceTokens, CudaKVCache, CudaTensor, CudaWeight, kvCacheBytes, TensorStorage, tensorOf, weightOf } from './objects.js';
import { PassScheduler, type FusedWork, type PassStats, type RecordedOp } from './pass.js';
import { deviceHistory, packSamplingParams, validateSamplingParams } from './sampling.js';
import { CUDA_FORMATS, deviceWeightLayout, FORMAT_CODE, validateHostWeight, weightParts } from './weights.js';

/**
 * How prefill passes treat their f32 activations:
 * - `'f32'` (default): in the GEMM (passes of more than 8 tokens) against f16/bf16 weights each activation
 *   is split into two 16-bit parts (hi + lo) multiplied separately, so results keep f32-grade precision
 *   (relative errors near 1e-6), at two tensor-core MMAs per tile; attention runs in f32 on the CUDA cores;
 * - `'16-bit'`: in the GEMM each activation is rounded once to the weight's type, one MMA per tile; and
 *   attention over passes of 16 tokens or more (head_dim 64 or 128) may run on the tensor cores with
 *   queries, keys, values and probabilities rounded to bf16 (about 3 significant digits, as running the
 *   checkpoint in bf16/f16 with PyTorch gives).
 *
 * Decode steps (up to 8 tokens) and q8_0/q4_0/f32 weights' GEMMs are the same in both.
 */
export type PrefillPrecision = 'f32' | '16-bit';

/** Token ids the embed staging buffer holds before it must grow. */
const INITIAL_ID_SLOTS = 4096;
/** Readback slots of argmaxOnDevice's ids: matches native/context.h Context::kTokenSlots. */
const TOKEN_SLOTS = 4;
/** Matches native/kernels.h MATMUL_MAX_FUSED. */
const MAX_FUSED = 4;
const NO_BIAS = [0, 0, -1, 0, 0] as const;

/**
 * The CUDA backend: weights, activations and KV caches in device memory, every op a hand-written kernel
 * (native/*.cu), single-token passes captured into CUDA graphs and replayed (see `PassScheduler` in src/pass.ts).
 * Create it with `cudaBackend()`.
 */
export class CudaBackend implements Backend {
  readonly info: BackendInfo;
  /** How passes ran so far (eager, captured, replayed). */
  get passStats(): Readonly<PassStats> {
    return this.passes.stats;
  }

  /**
   * The precision of prefill GEMMs and attention (see {@link PrefillPrecision}); may be changed between passes.
   * @throws RangeError for any other value
   */
  get prefillPrecision(): PrefillPrecision {
    return this.precision;
  }
  /** Sets the precision of prefill GEMMs and attention for the passes that follow. */
  set prefillPrecision(value: PrefillPrecision) {
    if (value !== 'f32' && value !== '16-bit') throw new RangeError(`prefillPrecision must be 'f32' or '16-bit', got ${String(value)}`);
    this.precision = value;
  }

  /**
   * Whether a prefill GEMM of 16-bit or quantized weights may cut K into ranges (split-K), summed in a
   * second kernel, where its output tiles alone would leave multiprocessors idle (a 7B `o_proj` or
   * `down_proj` at 512 tokens). On by default; results differ from one range's in the last bits only.
   * Benchmarks turn it off to compare.
   * @throws RangeError (setter) for a value that is not a boolean
   */
  get prefillSplitK(): boolean {
    return this.splitK;
  }
  /** Allows split-K (true) or keeps every prefill GEMM in one k-range (false) for the passes that follow. */
  set prefillSplitK(on: boolean) {
    if (typeof on !== 'boolean') throw new RangeError(`prefillSplitK must be a boolean, got ${String(on)}`);
    this.splitK = on;
  }

  /**
   * Whether kernels are launched with programmatic dependent launch: each kernel may be launched while
   * the one before it runs and waits on the device for it, so that launch latency overlaps work (same
   * results). Off by default; only GPUs of compute capability 9.0 or later (H100, H200) have it.
   */
  get programmaticDependentLaunch(): boolean {
    return this.pdl;
  }
  /**
   * Asks for programmatic dependent launch (or turns it off) for the ops that follow; it stays off where
   * the GPU lacks it, which the getter then reports. Drops the captured CUDA graphs (their launches keep
   * the mode they were captured with).
   * @throws RangeError for a value that is not a boolean
   */
  set programmaticDependentLaunch(on: boolean) {
    if (typeof on !== 'boolean') throw new RangeError(`programmaticDependentLaunch must be a boolean, got ${String(on)}`);
    this.alive();
    this.pdl = native(() => this.n.setProgrammaticLaunch(this.ctx, on ? 1 : 0));
    this.passes.invalidate();
  }

  private readonly ctx: number;
  private readonly passes: PassScheduler;
  private readonly weights = new Set<CudaWeight>();
  private readonly tensors = new Set<TensorStorage>();
  private readonly caches = new Set<CudaKVCache>();
  private ids: { ptr: number; slots: number } | undefined;
  private precision: PrefillPrecision = 'f32';
  private pdl = false;
  private splitK = true;
  /** Id slots used by embeds recorded in the open pass (each gets its own, so replays can fill all). */
  private idsUsed = 0;
  /** The readback slot the next argmaxOnDevice takes, and what each slot holds (see argmaxOnDevice). */
  private tokenSlot = 0;
  private readonly slotTokens = new Array<CudaDeviceTokens | undefined>(TOKEN_SLOTS).fill(undefined);
  /** Counts argmaxOnDevice calls: only the latest one's ids are still in the token buffer. */
  private tokenGeneration = 0;
  private disposed = false;

  /**
   * Use {@link cudaBackend} to create one; the constructor takes the loaded addon.
   * @internal
   * @param n - the native addon
   * @param device - what the addon's `init` returned for the opened device
   * @param deviceIndex - the CUDA device ordinal
   * @param prefillPrecision - the initial {@link CudaBackend.prefillPrecision}
   */
  constructor(private readonly n: NativeAddon, device: NativeDeviceInfo, deviceIndex: number, prefillPrecision: PrefillPrecision = 'f32') {
    this.prefillPrecision = prefillPrecision;
    this.ctx = device.ctx;
    const gib = (device.totalBytes / 2 ** 30).toFixed(1);
    this.info = { name: 'cuda', device: `${device.name} (cuda:${deviceIndex}, sm_${device.computeCapability}, ${gib} GiB)`, formats: CUDA_FORMATS };
    const ctx = this.ctx;
    this.passes = new PassScheduler({
      setPassPos: (pos) => n.setPassPos(ctx, pos),
      beginCapture: () => n.beginCapture(ctx),
      endCapture: (discard) => n.endCapture(ctx, discard),
      launchGraph: (id) => n.launchGraph(ctx, id),
      destroyGraph: (id) => n.destroyGraph(ctx, id),
    });
  }

  // ---- memory -------------------------------------------------------------------------------------

  async uploadWeight(weight: HostWeight, name: string): Promise<Weight> {
    this.alive();
    validateHostWeight(weight, name);
    const layout = deviceWeightLayout(weight.format, weight.rows, weight.cols);
    const ptr = native(() => this.n.malloc(this.ctx, layout.totalBytes));
    try {
      const parts = weightParts(weight);
      native(() => this.n.upload(this.ctx, ptr, 0, parts.data));
      if (parts.scales) native(() => this.n.upload(this.ctx, ptr, layout.scalesOffset, parts.scales!));
      // The pageable copies are staged before upload returns; syncing here surfaces copy errors now.
      native(() => this.n.sync(this.ctx));
    } catch (e) {
      native(() => this.n.free(this.ctx, ptr));
      throw e;
    }
    const scalesPtr = layout.scalesOffset >= 0 ? ptr + layout.scalesOffset : 0;
    const w = new CudaWeight(weight.format, weight.rows, weight.cols, layout.totalBytes, name, ptr, scalesPtr, FORMAT_CODE[weight.format]);
    this.weights.add(w);
    return w;
  }

  alloc(rows: number, cols: number): Tensor {
    this.alive();
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new BackendUsageError(`alloc: invalid shape [${rows}, ${cols}]`);
    const bytes = rows * cols * 4;
    const storage = new TensorStorage(native(() => this.n.malloc(this.ctx, bytes)), bytes);
    this.tensors.add(storage);
    return new CudaTensor(storage, 0, rows, cols, false);
  }

  view(t: Tensor, rowStart: number, rows: number): Tensor {
    const p = tensorOf(t, 'view');
    if (!Number.isInteger(rowStart) || !Number.isInteger(rows) || rowStart < 0 || rows < 1 || rowStart + rows > p.rows) {
      throw new BackendUsageError(`view: rows ${rowStart}..${rowStart + rows - 1} outside a tensor of ${p.rows} rows`);
    }
    return new CudaTensor(p.storage, p.rowStart + rowStart, rows, p.cols, true);
  }

  write(t: Tensor, data: Float32Array): void {
    const x = tensorOf(t, 'write');
    if (!(data instanceof Float32Array) || data.length !== x.elements) throw new BackendUsageError(`write: ${data?.length} values for a [${x.rows}, ${x.cols}] tensor`);
    // Inside a pass the copy runs later, in order with the ops: keep a snapshot of the caller's data.
    const snapshot = this.passes.inPass ? data.slice() : data;
    this.submit({ key: 'write', capturable: false, prepare: () => this.n.upload(this.ctx, x.ptr, 0, snapshot), run: () => {} });
  }

  createKVCache(spec: KVCacheSpec): KVCache {
    this.alive();
    const copy = checkKVCacheSpec(spec);
    const bytes = kvCacheBytes(copy);
    const c = new CudaKVCache(copy, native(() => this.n.malloc(this.ctx, bytes)), bytes);
    this.caches.add(c);
    return c;
  }

  free(x: Tensor | Weight | KVCache): void {
    if (x instanceof CudaTensor) {
      if (x.isView || x.storage.freed) return; // views go with their parent
      this.release(x.storage.ptr);
      x.storage.freed = true;
      this.tensors.delete(x.storage);
    } else if (x instanceof CudaWeight) {
      if (x.freed) return;
      this.release(x.ptr);
      x.freed = true;
      this.weights.delete(x);
    } else if (x instanceof CudaKVCache) {
      if (x.freed) return;
      this.release(x.ptr);
      x.freed = true;
      this.caches.delete(x);
    } else {
      throw new BackendUsageError('free: not an object of the CUDA backend');
    }
  }

  // ---- ops ----------------------------------------------------------------------------------------

  embed(table: Weight, ids: Int32Array, out: Tensor): void {
    const w = weightOf(table, 'embed');
    const o = tensorOf(out, 'embed out');
    expectShape(o, ids.length, w.cols, 'embed out');
    checkTokenIds(ids, w.rows);
    const tokens = ids.length;
    const slot = this.passes.inPass ? this.idsUsed : 0;
    this.ensureIdSlots(slot + tokens);
    if (this.passes.inPass) this.idsUsed += tokens;
    const copy = ids.slice();
    const wa = w.args();
    // The staging buffer's address is read when the op runs: it may have grown since recording.
    this.submit({
      key: `embed(w${w.id},${tokens},${o.key},${slot})`,
      capturable: true,
      prepare: () => this.n.upload(this.ctx, this.ids!.ptr, slot * 4, copy),
      run: () => this.n.embed(this.ctx, ...wa, this.ids!.ptr + slot * 4, tokens, o.ptr),
    });
  }

  rmsNorm(x: Tensor, weight: Weight, eps: number, out: Tensor): void {
    const a = tensorOf(x, 'rmsNorm x');
    const g = weightOf(weight, 'rmsNorm weight');
    const o = tensorOf(out, 'rmsNorm out');
    expectShape(o, a.rows, a.cols, 'rmsNorm out');
    if (g.rows !== 1 || g.cols !== a.cols) throw new BackendUsageError(`rmsNorm: weight '${g.name}' [${g.rows}, ${g.cols}] for rows of ${a.cols}`);
    if (!(eps >= 0) || !Number.isFinite(eps)) throw new BackendUsageError(`rmsNorm: eps must be a finite number >= 0, got ${eps}`);
    const ga = g.args();
    this.submit({
      key: `rmsNorm(${a.key},w${g.id},${eps},${o.key})`,
      capturable: true,
      run: () => this.n.rmsNorm(this.ctx, a.ptr, ...ga, eps, o.ptr, a.rows, a.cols),
      fusable: { kind: 'rmsNorm', x: a, out: o, weight: ga, eps },
      absorb: (next) => this.normThenMatmul(a, o, ga, eps, next),
    });
  }

  matmul(x: Tensor, weights: readonly Weight[], biases: readonly (Weight | undefined)[], outs: readonly Tensor[]): void {
    const a = tensorOf(x, 'matmul x');
    if (weights.length === 0 || weights.length !== outs.length || biases.length !== weights.length) {
      throw new BackendUsageError(`matmul: ${weights.length} weights, ${biases.length} biases, ${outs.length} outputs`);
    }
    const K = a.cols;
    const entries: number[] = [];
    const ws: CudaWeight[] = [];
    const os: CudaTensor[] = [];
    let key = `matmul(${a.key}`;
    for (let i = 0; i < weights.length; i++) {
      const w = weightOf(weights[i]!, 'matmul weight');
      const o = tensorOf(outs[i]!, 'matmul out');
      ws.push(w);
      os.push(o);
      if (w.cols !== K) throw new BackendUsageError(`matmul: weight '${w.name}' [${w.rows}, ${w.cols}] against x [${a.rows}, ${K}]`);
      expectShape(o, a.rows, w.rows, `matmul out of '${w.name}'`);
      if (o.storage === a.storage) throw new BackendUsageError(`matmul: the output of '${w.name}' shares storage with x`);
      const b = biases[i] ? weightOf(biases[i]!, 'matmul bias') : undefined;
      if (b && (b.rows !== 1 || b.cols !== w.rows)) throw new BackendUsageError(`matmul: bias '${b.name}' [${b.rows}, ${b.cols}] for '${w.name}' with ${w.rows} outputs`);
      entries.push(...w.args(), ...(b ? b.args() : NO_BIAS), o.ptr);
      key += `,w${w.id}${b ? `+b${b.id}` : ''}>${o.key}`;
    }
    key += ')';
    // The kernels fuse up to MAX_FUSED weights per launch (same input, one pass over x).
    const launches: Float64Array[] = [];
    for (let i = 0; i < weights.length; i += MAX_FUSED) launches.push(Float64Array.from(entries.slice(i * 11, (i + MAX_FUSED) * 11)));
    const sameFormat = ws.every((w) => w.code === ws[0]!.code);
    const uniform = sameFormat && ws.every((w) => w.rows === ws[0]!.rows);
    const self: MatmulOp = {
      kind: 'matmul', x: a, outs: os, uniform, sameFormat, single: launches.length === 1,
      launch: (xPtr, epilogue, prologue) => () => this.n.matmul(this.ctx, xPtr, a.rows, K, launches[0]!, this.gemmFlags, epilogue, prologue),
    };
    this.submit({
      key,
      capturable: true,
      run: () => {
        for (const p of launches) this.n.matmul(this.ctx, a.ptr, a.rows, K, p, this.gemmFlags);
      },
      fusable: self,
      // A decode step's residual add, SwiGLU, or rope and KV write right after this matmul runs in its
      // epilogue (see fusion.ts).
      absorb: (next) => {
        const epilogue = next.fusable && epilogueFor(a, os, uniform, next.fusable);
        return epilogue ? { run: self.launch(a.ptr, epilogue) } : this.matmulThenRope(self, (e) => self.launch(a.ptr, e), next);
      },
    });
  }

  rope(x: Tensor, heads: number, headDim: number, startPos: number, theta: number): void {
    const a = tensorOf(x, 'rope');
    if (!Number.isInteger(heads) || !Number.isInteger(headDim) || heads < 1 || headDim < 2 || headDim % 2 !== 0 || a.cols !== heads * headDim) {
      throw new BackendUsageError(`rope: [${a.rows}, ${a.cols}] is not ${heads} heads of an even ${headDim}`);
    }
    if (!(theta > 0) || !Number.isFinite(theta)) throw new BackendUsageError(`rope: theta must be a positive number, got ${theta}`);
    const [rel, pos] = this.position(startPos, 'rope');
    const self: RopeOp = { kind: 'rope', x: a, heads, headDim, at: [rel, pos], theta };
    this.submit({
      key: `rope(${a.key},${heads},${headDim},${rel ? `+${pos}` : pos},${theta})`,
      capturable: true,
      run: () => this.n.rope(this.ctx, a.ptr, a.rows, heads, headDim, rel, pos, theta),
      fusable: self,
      // rope(q), rope(k) and the KV write of k and v, as core records them, in one launch.
      absorb: (next) => {
        const k = next.fusable;
        if (!k || !ropePairFor(self, k)) return undefined;
        const both = (v = 0, kc = 0, vc = 0, maxTokens = 0, kvDtype = 0) => () =>
          this.n.ropeQK(this.ctx, a.ptr, heads, k.x.ptr, k.heads, a.rows, headDim, rel, pos, theta, v, kc, vc, maxTokens, kvDtype);
        return {
          run: both(),
          absorb: (after) => {
            const w = after.fusable;
            if (!w || w.kind !== 'writeKV' || !kvWriteFor(self, k, w)) return undefined;
            return { run: both(w.v.ptr, w.keys, w.values, w.maxTokens, w.dtypeCode) };
          },
        };
      },
    });
  }

  writeKV(cache: KVCache, layer: number, k: Tensor, v: Tensor, startPos: number): void {
    const c = cacheOf(cache, 'writeKV');
    const kt = tensorOf(k, 'writeKV k');
    const vt = tensorOf(v, 'writeKV v');
    const width = c.spec.kvHeads * c.spec.headDim;
    expectShape(kt, kt.rows, width, 'writeKV k');
    expectShape(vt, kt.rows, width, 'writeKV v');
    checkLayer(c.spec, layer, 'writeKV');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + kt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`writeKV: positions ${startPos}..${startPos + kt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    const [rel, pos] = this.position(startPos, 'writeKV');
    const { kvHeads, headDim, maxTokens } = c.spec;
    const dtypeCode = c.dtypeCode;
    this.submit({
      key: `writeKV(c${c.id},${layer},${kt.key},${vt.key},${rel ? `+${pos}` : pos})`,
      capturable: true,
      run: () => this.n.writeKV(this.ctx, c.keysPtr(layer), c.valuesPtr(layer), kt.ptr, vt.ptr, kt.rows, kvHeads, headDim, maxTokens, rel, pos, dtypeCode),
      fusable: { kind: 'writeKV', k: kt, v: vt, kvHeads, headDim, at: [rel, pos], keys: c.keysPtr(layer), values: c.valuesPtr(layer), maxTokens, dtypeCode },
    });
  }

  attention(q: Tensor, cache: KVCache, layer: number, startPos: number, spec: AttentionSpec, out: Tensor): void {
    const c = cacheOf(cache, 'attention');
    const qt = tensorOf(q, 'attention q');
    const o = tensorOf(out, 'attention out');
    const { heads, kvHeads, headDim, scale } = spec;
    if (!Number.isInteger(heads) || !Number.isInteger(kvHeads) || kvHeads < 1 || heads % kvHeads !== 0) throw new BackendUsageError(`attention: ${heads} heads is not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== c.spec.kvHeads || headDim !== c.spec.headDim) throw new BackendUsageError(`attention: spec ${kvHeads}x${headDim} does not match the cache ${c.spec.kvHeads}x${c.spec.headDim}`);
    if (heads / kvHeads > 32) throw new BackendUsageError(`attention: ${heads / kvHeads} query heads per kv head; the CUDA kernels take at most 32`);
    if (headDim > 256) throw new BackendUsageError(`attention: head_dim ${headDim} > 256 is not supported by the CUDA kernels`);
    if (!Number.isFinite(scale)) throw new BackendUsageError(`attention: scale must be finite, got ${scale}`);
    const window = spec.slidingWindow ?? 0;
    if (!Number.isInteger(window) || window < 0) throw new BackendUsageError(`attention: slidingWindow must be a positive integer, got ${spec.slidingWindow}`);
    expectShape(qt, qt.rows, heads * headDim, 'attention q');
    expectShape(o, qt.rows, heads * headDim, 'attention out');
    if (o.storage === qt.storage) throw new BackendUsageError('attention: out shares storage with q');
    checkLayer(c.spec, layer, 'attention');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + qt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`attention: positions up to ${startPos + qt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    const [rel, pos] = this.position(startPos, 'attention');
    const capacity = attentionKeyCapacity(this.passes.inPass ? this.passes.passTokens : 0, qt.rows, startPos, c.spec.maxTokens);
    this.submit({
      key: `attention(${qt.key},c${c.id},${layer},${rel ? `+${pos}` : pos},${heads},${scale},${window},${o.key},${capacity})`,
      capturable: true,
      run: () =>
        this.n.attention(this.ctx, qt.ptr, c.keysPtr(layer), c.valuesPtr(layer), o.ptr, qt.rows, heads, kvHeads, headDim, c.spec.maxTokens, rel, pos, scale, window, capacity, this.sixteenBit, c.dtypeCode),
    });
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    const g = tensorOf(gate, 'swiglu gate');
    const u = tensorOf(up, 'swiglu up');
    const o = tensorOf(out, 'swiglu out');
    expectShape(u, g.rows, g.cols, 'swiglu up');
    expectShape(o, g.rows, g.cols, 'swiglu out');
    this.submit({
      key: `swiglu(${g.key},${u.key},${o.key})`,
      capturable: true,
      run: () => this.n.swiglu(this.ctx, g.ptr, u.ptr, o.ptr, g.elements),
      fusable: { kind: 'swiglu', gate: g, up: u, out: o },
    });
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    const x = tensorOf(a, 'add a');
    const y = tensorOf(b, 'add b');
    const o = tensorOf(out, 'add out');
    expectShape(y, x.rows, x.cols, 'add b');
    expectShape(o, x.rows, x.cols, 'add out');
    this.submit({
      key: `add(${x.key},${y.key},${o.key})`,
      capturable: true,
      run: () => this.n.add(this.ctx, x.ptr, y.ptr, o.ptr, x.elements),
      fusable: { kind: 'add', a: x, b: y, out: o },
    });
  }

  copy(src: Tensor, dst: Tensor): void {
    const s = tensorOf(src, 'copy src');
    const d = tensorOf(dst, 'copy dst');
    expectShape(d, s.rows, s.cols, 'copy dst');
    this.submit({
      key: `copy(${s.key},${d.key})`,
      capturable: true,
      run: () => this.n.copy(this.ctx, s.ptr, d.ptr, s.elements * 4),
      // copy then an in-place RMSNorm of the copy (core's last row before lm_head): one RMSNorm from the
      // source, which the matmul after it may take as its prologue in turn.
      absorb: (next) => {
        const norm = next.fusable;
        if (!norm || !normOfCopy(s, d, norm)) return undefined;
        return {
          run: () => this.n.rmsNorm(this.ctx, s.ptr, ...norm.weight, norm.eps, d.ptr, s.rows, s.cols),
          absorb: (after) => this.normThenMatmul(s, d, norm.weight, norm.eps, after),
        };
      },
    });
  }

  // ---- passes and results -------------------------------------------------------------------------

  beginPass(tokens: number, startPos: number): void {
    this.alive();
    this.passes.begin(tokens, startPos);
    this.idsUsed = 0;
  }

  endPass(): void {
    native(() => this.passes.end());
  }

  async read(t: Tensor): Promise<Float32Array> {
    const x = tensorOf(t, 'read');
    this.flush();
    const buf = native(() => this.n.download(this.ctx, x.ptr, x.elements * 4));
    return new Float32Array(buf);
  }

  async argmax(logits: Tensor): Promise<Int32Array> {
    return this.argmaxOnDevice(logits).ids();
  }

  /**
   * Runs what is pending, then the argmax kernel into the context's token buffer and the ids' copy into
   * one of `TOKEN_SLOTS` (4) pinned readback slots, without waiting: the next pass (its embed reading that buffer) can
   * be launched before `ids()` waits for this copy alone.
   */
  argmaxOnDevice(logits: Tensor): DeviceTokens {
    const l = tensorOf(logits, 'argmax');
    this.flush();
    return this.keepTokens(l.rows, (slot) => this.n.argmaxKeep(this.ctx, l.ptr, l.rows, l.cols, slot), (raw) => {
      const bad = raw.indexOf(-1);
      if (bad >= 0) throw new RangeError(`argmax: no finite or infinite value among ${l.cols} entries of row ${bad}`);
      return raw;
    });
  }

  /**
   * `embed` of the ids the latest {@link argmaxOnDevice} or {@link sampleOnDevice} left in the token
   * buffer (an earlier call's are overwritten there). The embedding kernel reads them when the pass
   * runs: in a captured decode graph too, since the buffer's address is part of the pass's key.
   */
  embedOnDevice(table: Weight, ids: DeviceTokens, out: Tensor): void {
    this.latest(ids, 'embedOnDevice');
    const w = weightOf(table, 'embedOnDevice');
    const o = tensorOf(out, 'embedOnDevice out');
    expectShape(o, ids.count, w.cols, 'embedOnDevice out');
    const wa = w.args();
    this.submit({
      key: `embed(w${w.id},${ids.count},${o.key},device ${ids.ptr})`,
      capturable: true,
      run: () => this.n.embed(this.ctx, ...wa, ids.ptr, ids.count, o.ptr),
    });
  }

  async sample(logits: Tensor, params: SamplingParams): Promise<number> {
    return (await this.sampleOnDevice(logits, params).ids())[0]!;
  }

  /**
   * Runs what is pending, then the sampling kernel into the token buffer (where
   * {@link embedOnDevice} reads it) and the id's copy into a readback slot, without waiting, as
   * {@link argmaxOnDevice} does. `previous`, the latest device token, is read by the kernel from the
   * token buffer before it writes its own and counts as one more occurrence in `params.history`.
   */
  sampleOnDevice(logits: Tensor, params: SamplingParams, previous?: DeviceTokens): DeviceTokens {
    const l = tensorOf(logits, 'sample');
    if (l.rows !== 1) throw new BackendUsageError(`sample: expected one row of logits, got ${l.rows}`);
    validateSamplingParams(params);
    if (previous) {
      this.latest(previous, 'sampleOnDevice');
      if (previous.count !== 1) throw new BackendUsageError(`sampleOnDevice: previous holds ${previous.count} ids, expected 1`);
    }
    const h = deviceHistory(params.history, l.cols);
    this.flush();
    const packed = packSamplingParams(params, h.serial);
    return this.keepTokens(1, (slot) => this.n.sampleKeep(this.ctx, l.ptr, l.cols, h.ids, h.counts, packed, slot, previous !== undefined), (raw) => {
      if (raw[0]! < 0) throw new RangeError(`sampleFromLogits: all ${l.cols} logits are NaN`);
      return raw;
    });
  }

  /**
   * Runs `keep(slot)` (a native call that leaves `rows` ids in the token buffer and starts their copy
   * into readback slot `slot`) and returns them as the latest device tokens. The slot's previous ids are
   * read out first: the slot is about to be overwritten.
   */
  private keepTokens(rows: number, keep: (slot: number) => number, check: (raw: Int32Array) => Int32Array): CudaDeviceTokens {
    const slot = this.tokenSlot;
    this.slotTokens[slot]?.settle();
    const ptr = native(() => keep(slot));
    this.tokenSlot = (slot + 1) % this.slotTokens.length;
    const t = new CudaDeviceTokens(this, rows, ptr, slot, ++this.tokenGeneration, () => native(() => this.n.readKept(this.ctx, slot, rows)), check);
    this.slotTokens[slot] = t;
    return t;
  }

  /** Throws unless `t` is this backend's latest device tokens (a later draw overwrote older ones). */
  private latest(t: DeviceTokens, what: string): asserts t is CudaDeviceTokens {
    if (!(t instanceof CudaDeviceTokens) || t.owner !== this) throw new BackendUsageError(`${what}: the ids come from another backend`);
    if (t.generation !== this.tokenGeneration) throw new BackendUsageError(`${what}: a later argmaxOnDevice or sampleOnDevice overwrote these ids on the device (only the latest are kept)`);
  }

  /**
   * Measures the device's achievable memory bandwidth with a 128-bit copy kernel (the bound the decode
   * kernels are compared with).
   * @param bytes - size of the buffer copied (two such buffers are allocated)
   * @param iterations - copies timed with CUDA events
   * @returns bytes moved per second, reads plus writes
   */
  measureCopyBandwidth(bytes = 2 ** 30, iterations = 20): number {
    this.alive();
    this.flush();
    return native(() => this.n.copyBandwidth(this.ctx, bytes, iterations));
  }

  memory(): { weights: number; activations: number; kvCache: number } {
    let weights = 0;
    for (const w of this.weights) weights += w.bytes;
    let activations = 0;
    for (const t of this.tensors) activations += t.bytes;
    let kvCache = 0;
    for (const c of this.caches) kvCache += c.bytes;
    return { weights, activations, kvCache };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.passes.abandon();
    for (const w of this.weights) w.freed = true;
    for (const t of this.tensors) t.freed = true;
    for (const c of this.caches) c.freed = true;
    const ptrs = [...[...this.weights].map((w) => w.ptr), ...[...this.tensors].map((t) => t.ptr), ...[...this.caches].map((c) => c.ptr)];
    if (this.ids) ptrs.push(this.ids.ptr);
    this.weights.clear();
    this.tensors.clear();
    this.caches.clear();
    this.ids = undefined;
    // destroy() waits for work in flight and frees the context's graphs and scratch buffers.
    native(() => {
      this.passes.invalidate();
      for (const p of ptrs) this.n.free(this.ctx, p);
      this.n.destroy(this.ctx);
    });
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /**
   * `rmsNorm(input) -> out` and the decode matmul `next` reading `out` as one GEMV with the norm as its
   * prologue (see fusion.ts), which may then take the matmul's own epilogue as well.
   */
  private normThenMatmul(input: CudaTensor, out: CudaTensor, weight: WeightArgs, eps: number, next: RecordedOp): FusedWork | undefined {
    const m = next.fusable;
    if (!m || m.kind !== 'matmul' || !prologueFits(input, out, m)) return undefined;
    const prologue = Float64Array.of(...weight, eps, out.ptr);
    return {
      run: m.launch(input.ptr, undefined, prologue),
      absorb: (after) => {
        const epilogue = after.fusable && epilogueFor(m.x, m.outs, m.uniform, after.fusable, [m.x, input]);
        return epilogue ? { run: m.launch(input.ptr, epilogue, prologue) } : this.matmulThenRope(m, (e) => m.launch(input.ptr, e, prologue), after);
      },
    };
  }

  /**
   * A decode matmul of q/k/v (launched by `launch`, with the epilogue given) followed by `ropeQ`: the
   * chain that takes rope(k) and the KV write as core records them, and then runs all of it as one GEMV
   * with the rope epilogue (see {@link ropeEpilogueFor}). Until the chain is whole, the recorded ops run
   * as they would have: the matmul, then rope(q) alone or rope(q) + rope(k) (+ KV write) in one launch.
   */
  private matmulThenRope(m: MatmulOp, launch: (epilogue?: Float64Array) => () => void, ropeQ: RecordedOp): FusedWork | undefined {
    const q = ropeQ.fusable;
    if (!q || !ropeStartsAt(m, q)) return undefined;
    const matmul = launch();
    // The matmul, then the launch of what follows it.
    const afterMatmul = (work: { run: () => void }) => () => {
      matmul();
      work.run();
    };
    return {
      run: afterMatmul(ropeQ),
      absorb: (ropeK) => {
        const k = ropeK.fusable;
        const qk = ropeQ.absorb?.(ropeK);
        if (!qk || !k || k.kind !== 'rope') return undefined;
        return {
          run: afterMatmul(qk),
          absorb: (write) => {
            const w = write.fusable;
            const epilogue = w?.kind === 'writeKV' ? ropeEpilogueFor(m, q, k, w) : undefined;
            if (epilogue) return { run: launch(epilogue) };
            const rest = qk.absorb?.(write);
            return rest && { run: afterMatmul(rest) };
          },
        };
      },
    };
  }

  /** The native matmul's and attention's prefill-precision flag (1 for '16-bit'), read when an op runs. */
  private get sixteenBit(): 0 | 1 {
    return this.precision === '16-bit' ? 1 : 0;
  }

  /** The native matmul's GEMM flags (precision and split-K), read when an op runs. */
  private get gemmFlags(): number {
    return (this.precision === '16-bit' ? GEMM_ROUND_X16 : 0) | (this.splitK ? 0 : GEMM_ONE_K_RANGE);
  }

  private submit(op: RecordedOp): void {
    this.alive();
    native(() => this.passes.submit(op));
  }

  /** Runs what the open pass recorded so far, so that a read sees it. */
  private flush(): void {
    this.alive();
    native(() => this.passes.flush());
  }

  /**
   * How an op passes a position: inside a pass, relative to the pass start stored on the device (so a
   * captured graph serves later steps); outside, absolute.
   */
  private position(startPos: number, what: string): [usePassPos: 0 | 1, value: number] {
    if (!Number.isInteger(startPos) || startPos < 0) throw new BackendUsageError(`${what}: invalid startPos ${startPos}`);
    return this.passes.inPass ? [1, startPos - this.passes.passStart] : [0, startPos];
  }

  /** Frees a device allocation after the pending work that may use it, and drops graphs that point at it. */
  private release(ptr: number): void {
    this.alive();
    native(() => {
      this.passes.flush();
      this.passes.invalidate();
      this.n.free(this.ctx, ptr);
    });
  }

  private ensureIdSlots(slots: number): void {
    if (this.ids && this.ids.slots >= slots) return;
    const grown = Math.max(slots, INITIAL_ID_SLOTS, (this.ids?.slots ?? 0) * 2);
    const ptr = native(() => this.n.malloc(this.ctx, grown * 4));
    if (this.ids) {
      // Ops recorded in the open pass read the new address when they run; graphs keep the old one.
      const old = this.ids.ptr;
      native(() => {
        this.passes.invalidate();
        this.n.free(this.ctx, old);
      });
    }
    this.ids = { ptr, slots: grown };
  }

  private alive(): void {
    if (this.disposed) throw new BackendUsageError('the CUDA backend was disposed');
  }
}

/**
 * Positions the attention kernels must be launched for. A single-token pass may be captured and
 * replayed at any later position, so it covers the whole cache (blocks past the current position exit
 * at once); otherwise exactly the positions this call reaches.
 */
export function attentionKeyCapacity(passTokens: number, rows: number, startPos: number, maxTokens: number): number {
  return passTokens === 1 && rows === 1 ? maxTokens : startPos + rows;
}

