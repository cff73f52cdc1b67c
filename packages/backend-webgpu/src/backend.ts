import type {
  AttentionSpec, Backend, BackendInfo, DeviceTokens, HostWeight, KVCache, KVCacheSpec, SamplingParams, Tensor, Weight, WeightFormat,
} from '@qwen2-ts/core';
import { acquireDevice, type AcquiredDevice } from './device.js';
import { BackendUsageError, checkBeginPass, checkEndPass, checkLayer, checkTokenIds, dequantizeRow, expectShape, validateHostWeight, validateSamplingParams } from '@qwen2-ts/core';
import { WebGPUDeviceError, WebGPUDeviceLostError } from './errors.js';
import { fillRows, paddedCols, rowBytes } from './host-weights.js';
import { GpuDeviceTokens, GpuKVCache, GpuTensor, GpuWeight, type Buf, type WeightChunk } from './objects.js';
import { Runtime, USAGE } from './runtime.js';
import { planKVCache } from './kv-cache.js';
import { attentionCombineKernel, attentionPartialKernel } from './wgsl/attention.js';
import { elementwiseKernel, rmsNormKernel, ropeKernel, ropePairKernel, ropeWriteKVKernel, writeKVKernel } from './wgsl/elementwise.js';
import type { KernelDef } from './wgsl/kernel-def.js';
import { embedKernel, gemmKernel } from './wgsl/matmul.js';
import { MATVEC_MAX_T, matvecKernel, matvecLayout, matvecRowsPerWorkgroup, type MatvecShape } from './wgsl/matvec.js';
import { sampleCandidatesKernel, sampleDrawKernel, sampleLogitsKernel, sampleMaxVocab, sampleScratchFloats, SAMPLE_CHUNK } from './wgsl/sample.js';
import { argmaxKernel, NO_TOKEN } from './wgsl/select.js';

const FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];
const ACT_USAGE = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;
/** Keys per attention split before the sequence is cut into more splits. */
const ATTN_SPLIT = 256;
/** Upper bound of the attention split scratch. */
const ATTN_SCRATCH_BYTES = 64 << 20;

/** Options of {@link webgpuBackend}. */
export interface WebGPUBackendOptions {
  /**
   * The `GPU` object to use; default `navigator.gpu`. In Node pass `create([])` from npm `webgpu`: the
   * backend keeps a strong reference to it for as long as its device lives (Dawn crashes otherwise).
   */
  gpu?: GPU;
  /** Use `f16` in kernels when the adapter offers `shader-f16` (default true). */
  preferF16?: boolean;
  /** Use subgroup operations when the adapter offers `subgroups` (default true). */
  useSubgroups?: boolean;
  /**
   * Largest bytes per weight binding (default: the device's `maxStorageBufferBindingSize`). Weights
   * larger than this are split by rows across several buffers; a lower value exercises that path.
   */
  maxBindingSize?: number;
  /**
   * Most storage buffers one kernel may bind (default and upper bound: 16, or the adapter's limit when
   * lower). Decode fuses fewer ops per dispatch below 15; a lower value exercises those paths.
   */
  maxStorageBuffers?: number;
}

/**
 * Creates the WebGPU backend: requests an adapter and a device with the largest storage limits the
 * adapter offers and compiles kernels on first use (each pipeline and bind group once).
 * @param options - the GPU object and f16 preference
 * @returns a core's `Backend` whose ops record into one command buffer per pass
 * @throws WebGPUDeviceError when WebGPU, an adapter or a needed limit is missing (the message names the limit)
 */
export async function webgpuBackend(options: WebGPUBackendOptions = {}): Promise<Backend & { readonly f16: boolean }> {
  const acquired = await acquireDevice(options.gpu, options.preferF16 ?? true, options.useSubgroups ?? true, options.maxStorageBuffers ?? 16);
  return new WebGPUBackend(acquired, options.maxBindingSize);
}

/** The WebGPU implementation of core's `Backend`. Create it with {@link webgpuBackend}. */
export class WebGPUBackend implements Backend {
  readonly info: BackendInfo;
  /** Whether kernels use `f16` (shader-f16). */
  readonly f16: boolean;
  /** Whether the matvec uses subgroup sums. */
  readonly subgroups: boolean;
  // Held for the lifetime of the device: in Node, Dawn's instance dies with this object.
  private gpu: GPU | undefined;
  private readonly device: GPUDevice;
  private readonly rt: Runtime;
  private readonly maxBinding: number;
  private readonly maxBuffer: number;
  private readonly weightBinding: number;
  private readonly sampleWG: number;
  private readonly weights = new Set<GpuWeight>();
  private readonly tensors = new Set<GpuTensor>();
  private readonly caches = new Set<GpuKVCache>();
  private readonly dummy: Buf;
  private readonly defs = new Map<string, KernelDef>();
  private results: Buf;
  private resultsUsed = 0;
  /**
   * Bumped by every use of the results buffer: an argmax or sample may write where earlier device tokens
   * lie (the buffer is reused from its start when idle, and replaced when too small), so only the latest
   * ids are embeddable.
   */
  private resultsGeneration = 0;
  private attnScratch: Buf | undefined;
  private sampleScratch: Buf | undefined;
  private lost: WebGPUDeviceLostError | undefined;
  private readonly errors: string[] = [];
  private inPass = false;
  private disposed = false;

  /** Use {@link webgpuBackend} to create one. @internal */
  constructor(acquired: AcquiredDevice, maxBindingSize?: number) {
    this.gpu = acquired.gpu;
    this.device = acquired.device;
    this.f16 = acquired.f16;
    this.subgroups = acquired.subgroups;
    // Sampling runs in one workgroup over the whole vocabulary: as wide as the device allows.
    const maxWG = Math.min(this.device.limits.maxComputeInvocationsPerWorkgroup, this.device.limits.maxComputeWorkgroupSizeX);
    this.sampleWG = maxWG >= 1024 ? 1024 : maxWG >= 512 ? 512 : 256;
    this.info = { name: 'webgpu', device: acquired.description, formats: FORMATS };
    this.maxBinding = this.device.limits.maxStorageBufferBindingSize;
    this.maxBuffer = this.device.limits.maxBufferSize;
    this.weightBinding = Math.max(256, Math.min(maxBindingSize ?? Infinity, this.maxBinding));
    this.rt = new Runtime(this.device);
    this.dummy = this.rt.createBuffer(16, USAGE.STORAGE, 'qwen2-ts dummy');
    this.results = this.rt.createBuffer(4096 * 4, USAGE.STORAGE | USAGE.COPY_SRC, 'qwen2-ts results');
    void this.device.lost.then((info) => {
      if (!this.disposed) this.lost = new WebGPUDeviceLostError(String(info.reason), info.message);
    });
    this.device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      if (this.errors.length < 8) this.errors.push(e.message);
    });
  }

  // ---- memory -------------------------------------------------------------------------------------

  async uploadWeight(weight: HostWeight, name: string): Promise<Weight> {
    this.alive();
    validateHostWeight(weight, name);
    // No q4_k kernels here: core stores a GGUF file's Q4_K blocks as q4_0 for this backend (info.formats).
    if (!FORMATS.includes(weight.format)) throw new BackendUsageError(`weight '${name}': the webgpu backend does not store ${weight.format} (it stores ${FORMATS.join(', ')})`);
    const { format, rows, cols } = weight;
    const kp = paddedCols(weight);
    const rb = rowBytes(format, kp);
    const limit = Math.min(this.maxBinding, this.maxBuffer, this.weightBinding);
    if (rb > limit) {
      // Name the limit that binds: the device's binding or buffer size, or the maxBindingSize option.
      const what = limit === this.maxBinding ? "the device's maxStorageBufferBindingSize" : limit === this.maxBuffer ? "the device's maxBufferSize" : 'the maxBindingSize option';
      throw new WebGPUDeviceError(`weight '${name}': one row of ${rb} bytes exceeds ${what} of ${limit} bytes`, limit === this.maxBuffer && limit !== this.maxBinding ? 'maxBufferSize' : 'maxStorageBufferBindingSize');
    }
    const perChunk = Math.max(1, Math.floor(limit / rb));
    const chunks: WeightChunk[] = [];
    let bytes = 0;
    this.device.pushErrorScope('out-of-memory');
    try {
      for (let r0 = 0; r0 < rows; r0 += perChunk) {
        const n = Math.min(perChunk, rows - r0);
        const data = this.rt.createBuffer(n * rb, USAGE.STORAGE, `${name}[${r0}..]`, true);
        fillRows(weight, r0, n, kp, data.buffer.getMappedRange());
        data.buffer.unmap();
        bytes += data.size;
        chunks.push({ r0, rows: n, data });
      }
      let vec: Buf | undefined;
      if (rows === 1) {
        vec = this.rt.createBuffer(cols * 4, USAGE.STORAGE, `${name} f32`, true);
        dequantizeRow(weight, 0, new Float32Array(vec.buffer.getMappedRange(), 0, cols));
        vec.buffer.unmap();
        bytes += vec.size;
      }
      const w = new GpuWeight(name, format, rows, cols, kp, chunks, vec, bytes);
      const oom = await this.device.popErrorScope();
      if (oom) {
        this.destroyWeight(w);
        const held = this.memory().weights;
        throw new WebGPUDeviceError(`out of GPU memory uploading weight '${name}' (${bytes} bytes, ${held} bytes of weights already held): ${oom.message}`);
      }
      this.weights.add(w);
      return w;
    } catch (e) {
      if (e instanceof WebGPUDeviceError) throw e;
      await this.device.popErrorScope().catch(() => undefined);
      for (const c of chunks) c.data.buffer.destroy();
      throw e;
    }
  }

  alloc(rows: number, cols: number): Tensor {
    this.alive();
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new BackendUsageError(`alloc: invalid shape [${rows}, ${cols}]`);
    const bytes = rows * cols * 4;
    if (bytes > this.maxBinding) {
      throw new WebGPUDeviceError(`alloc: a [${rows}, ${cols}] f32 tensor (${bytes} bytes) exceeds the device's maxStorageBufferBindingSize of ${this.maxBinding} bytes`, 'maxStorageBufferBindingSize');
    }
    const t = new GpuTensor(rows, cols, this.rt.createBuffer(bytes, ACT_USAGE, `tensor [${rows}, ${cols}]`), 0, undefined);
    this.tensors.add(t);
    return t;
  }

  /**
   * Work recorded so far: compute dispatches and queue submissions. For benchmarks: every dispatch
   * costs host time to record, which bounds small-model decode on a fast GPU.
   */
  get recorded(): { dispatches: number; submissions: number } {
    return { dispatches: this.rt.dispatches, submissions: this.rt.submissions };
  }

  view(t: Tensor, rowStart: number, rows: number): Tensor {
    const parent = this.tensor(t, 'view');
    if (!Number.isInteger(rowStart) || !Number.isInteger(rows) || rowStart < 0 || rows < 1 || rowStart + rows > parent.rows) {
      throw new BackendUsageError(`view: rows ${rowStart}..${rowStart + rows - 1} outside a tensor of ${parent.rows} rows`);
    }
    return new GpuTensor(rows, parent.cols, parent.buf, parent.offset + rowStart * parent.cols, parent.owner);
  }

  write(t: Tensor, data: Float32Array): void {
    const x = this.tensor(t, 'write');
    if (data.length !== x.rows * x.cols) throw new BackendUsageError(`write: ${data.length} values for a [${x.rows}, ${x.cols}] tensor`);
    // queue.writeBuffer runs before any command buffer submitted later: submit what was recorded first.
    this.rt.flush();
    this.device.queue.writeBuffer(x.buf.buffer, x.offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  createKVCache(spec: KVCacheSpec): KVCache {
    this.alive();
    const { dtype, layerBytes } = planKVCache(spec, this.maxBinding);
    const keys: Buf[] = [];
    const values: Buf[] = [];
    for (let l = 0; l < spec.layers; l++) {
      keys.push(this.rt.createBuffer(layerBytes, USAGE.STORAGE, `kv keys ${l}`));
      values.push(this.rt.createBuffer(layerBytes, USAGE.STORAGE, `kv values ${l}`));
    }
    const c = new GpuKVCache({ ...spec }, dtype, keys, values, keys.reduce((s, b) => s + 2 * b.size, 0));
    this.caches.add(c);
    return c;
  }

  free(x: Tensor | Weight | KVCache): void {
    if (x instanceof GpuTensor) {
      if (x.root || x.freed) return;
      x.freed = true;
      this.tensors.delete(x);
      this.rt.release(x.buf);
    } else if (x instanceof GpuWeight) {
      if (x.freed) return;
      this.weights.delete(x);
      this.destroyWeight(x);
    } else if (x instanceof GpuKVCache) {
      if (x.freed) return;
      x.freed = true;
      this.caches.delete(x);
      for (const b of [...x.keys, ...x.values]) this.rt.release(b);
    } else {
      throw new BackendUsageError('free: not an object of this WebGPU backend');
    }
  }

  private destroyWeight(w: GpuWeight): void {
    w.freed = true;
    for (const c of w.chunks) this.rt.release(c.data);
    if (w.vec) this.rt.release(w.vec);
  }

  // ---- ops ----------------------------------------------------------------------------------------

  embed(table: Weight, ids: Int32Array, out: Tensor): void {
    const w = this.weight(table, 'embed');
    const o = this.tensor(out, 'embed');
    expectShape(o, ids.length, w.cols, 'embed out');
    checkTokenIds(ids, w.rows);
    this.recordEmbed(w, o, ids.length, this.rt.auxBuf, this.rt.pushAux(ids));
  }

  /**
   * `embed` of ids that {@link argmaxOnDevice} left in the results buffer: the embedding kernel reads them
   * there instead of from the aux arena. Ids outside the table (none from an argmax over this model's
   * logits) leave their row unwritten; their `ids()` has already failed for an all-NaN row.
   */
  embedOnDevice(table: Weight, ids: DeviceTokens, out: Tensor): void {
    const t = this.latestTokens(ids, 'embedOnDevice');
    const w = this.weight(table, 'embedOnDevice');
    const o = this.tensor(out, 'embedOnDevice');
    expectShape(o, t.count, w.cols, 'embedOnDevice out');
    this.recordEmbed(w, o, t.count, t.buf, t.offset);
  }

  /** `t` as this backend's device tokens, which must be the latest (still where they were written). */
  private latestTokens(t: DeviceTokens, what: string): GpuDeviceTokens {
    if (!(t instanceof GpuDeviceTokens) || t.owner !== this) throw new BackendUsageError(`${what}: the ids come from another backend`);
    if (t.generation !== this.resultsGeneration) throw new BackendUsageError(`${what}: a later argmaxOnDevice, argmax or sample may have overwritten these ids (only the latest are kept)`);
    return t;
  }

  /** The embedding dispatches (one per weight chunk) of `T` ids read as u32 at `idsOff` of `idsBuf`. */
  private recordEmbed(w: GpuWeight, o: GpuTensor, T: number, idsBuf: Buf, idsOff: number): void {
    const def = this.kernel(`embed:${w.format}`, () => embedKernel(w.format, this.f16));
    const units = T * (w.kp / 8);
    for (const c of w.chunks) {
      const bufs = [o.buf, c.data, idsBuf];
      this.rt.dispatchFlat(def, bufs, { T, K: w.cols, Kp: w.kp, r0: c.r0, rows: c.rows, idsOff, oOff: o.offset }, Math.ceil(units / 64));
    }
  }

  rmsNorm(x: Tensor, weight: Weight, eps: number, out: Tensor): void {
    let a = this.tensor(x, 'rmsNorm x');
    const g = this.vector(weight, 'rmsNorm weight');
    const o = this.tensor(out, 'rmsNorm out');
    expectShape(o, a.rows, a.cols, 'rmsNorm out');
    if (g.cols !== a.cols) throw new BackendUsageError(`rmsNorm: weight of ${g.cols} for rows of ${a.cols}`);
    if (a.rows > MATVEC_MAX_T) {
      this.recordNorm({ kind: 'norm', x: a, g, eps, o });
      return;
    }
    // An in-place norm of a tensor that was just copied reads the copy's source instead: the copy's
    // destination is overwritten whole, so the copy needs no dispatch (the last row before lm_head).
    if (sameRegion(a, o)) {
      const c = this.rt.takeDeferred((tag): tag is PendingCopy => isPending(tag, 'copy') && sameRegion(tag.d, a) && !overlaps(tag.s, a));
      if (c) a = c.s;
    }
    // Held back: a decode matvec that reads `o` next normalizes its input on the fly (MatvecShape.norm).
    const n: PendingNorm = { kind: 'norm', x: a, g, eps, o };
    this.rt.defer(n, () => this.recordNorm(n));
  }

  private recordNorm(n: PendingNorm): void {
    const { slots, bufs } = distinct([n.x, n.o]);
    this.rt.dispatch(this.kernel(`norm:${slots}`, () => rmsNormKernel(slots)), [...bufs, n.g.vec!], { n: n.x.cols, xOff: n.x.offset, oOff: n.o.offset, eps: n.eps }, n.x.rows);
  }

  matmul(x: Tensor, weights: readonly Weight[], biases: readonly (Weight | undefined)[], outs: readonly Tensor[]): void {
    const a = this.tensor(x, 'matmul x');
    if (weights.length === 0 || weights.length !== outs.length || biases.length !== weights.length) {
      throw new BackendUsageError(`matmul: ${weights.length} weights, ${biases.length} biases, ${outs.length} outputs`);
    }
    const T = a.rows;
    const K = a.cols;
    const ws = weights.map((w) => this.weight(w, 'matmul weight'));
    const os = outs.map((o) => this.tensor(o, 'matmul out'));
    const bs = biases.map((b) => (b ? this.vector(b, 'matmul bias') : undefined));
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i]!;
      if (w.cols !== K) throw new BackendUsageError(`matmul: weight '${w.name}' [${w.rows}, ${w.cols}] against x [${T}, ${K}]`);
      expectShape(os[i]!, T, w.rows, `matmul out of '${w.name}'`);
      if (bs[i] && bs[i]!.cols !== w.rows) throw new BackendUsageError(`matmul: bias of ${bs[i]!.cols} for '${w.name}' with ${w.rows} outputs`);
    }
    if (T > MATVEC_MAX_T) {
      for (let i = 0; i < ws.length; i++) this.recordGemm(a, ws[i]!, bs[i], os[i]!);
      return;
    }
    // The norm that produced x, held back, is fused in when nothing it writes is read by other workgroups.
    const norm = this.rt.takeDeferred((tag): tag is PendingNorm =>
      isPending(tag, 'norm') && sameRegion(tag.o, a) && !overlaps(tag.x, tag.o) && os.every((o) => !overlaps(o, tag.x) && !overlaps(o, tag.o)));
    if (ws.length === 1) {
      const m: PendingMatvec = { kind: 'matvec', x: a, o: os[0]!, w: ws[0]!, bias: bs[0], T, norm };
      // A lone matvec is held back: a residual add that follows (o_proj, down_proj) fuses into it.
      this.rt.defer(m, () => this.recordMatvec(m));
      return;
    }
    // Several weights over one input (q/k/v, gate/up): one dispatch when their bindings fit.
    let st: PendingStack = { kind: 'stack', x: a, ws, bs, os, norm };
    if (norm && !this.fitsStack(st)) {
      this.recordNorm(norm);
      st = { ...st, norm: undefined };
    }
    if (this.fitsStack(st)) {
      // Held back: the SwiGLU after gate/up, or the RoPEs and KV write after q/k/v, join it.
      this.rt.defer(st, () => this.recordStack(st));
      return;
    }
    for (let i = 0; i < ws.length; i++) this.recordMatvec({ kind: 'matvec', x: a, o: os[i]!, w: ws[i]!, bias: bs[i], T });
  }

  /** Prefill GEMM of one weight, one dispatch per weight chunk. */
  private recordGemm(a: GpuTensor, w: GpuWeight, bias: GpuWeight | undefined, o: GpuTensor): void {
    const { slots, bufs } = distinct([a, o]);
    const def = this.kernel(`mm:${w.format}:${slots}`, () => gemmKernel(w.format, this.f16, slots));
    for (const c of w.chunks) {
      const all = [...bufs, c.data, bias ? bias.vec! : this.dummy];
      const params = { T: a.rows, K: a.cols, Kp: w.kp, rows: c.rows, N: w.rows, n0: c.r0, xOff: a.offset, oOff: o.offset, hasBias: bias ? 1 : 0 };
      this.rt.dispatch(def, all, params, Math.ceil(c.rows / 64), Math.ceil(a.rows / 64));
    }
  }

  /**
   * A decode matvec of one weight, one dispatch per weight chunk, optionally with the residual add that
   * follows it (`out = res + x . W^T`, written beside the plain result `o`) and the norm before it.
   */
  private recordMatvec(m: PendingMatvec, residual?: { res: GpuTensor; out: GpuTensor }): void {
    const { x: a, o, w, bias, T, norm } = m;
    const input = norm ? norm.x : a;
    const shape: MatvecShape = { weights: 1, residual: residual !== undefined, norm: norm !== undefined };
    const { slots, bufs } = distinct([input, o, ...(residual ? [residual.res, residual.out] : []), ...(norm ? [norm.o] : [])]);
    const layout = matvecLayout(w.kp, a.cols, input.offset, slots, false, w.format);
    const def = this.kernel(`mv:${w.format}:${slots}:${layout.lanes}:${layout.steps}:${layout.vec4}:${layout.pairs}:${residual ? 'r' : ''}${norm ? 'n' : ''}`,
      () => matvecKernel(w.format, this.f16, slots, layout, this.subgroups, shape));
    for (const c of w.chunks) {
      const all = [...bufs, c.data, bias ? bias.vec! : this.dummy, ...(norm ? [norm.g.vec!] : [])];
      const params: Record<string, number> = { T, K: a.cols, Kp: w.kp, rows: c.rows, N: w.rows, n0: c.r0, xOff: input.offset, oOff: o.offset, hasBias: bias ? 1 : 0 };
      if (residual) {
        params.aOff = residual.res.offset;
        params.rOff = residual.out.offset;
      }
      if (norm) {
        params.eps = norm.eps;
        params.nOff = norm.o.offset;
      }
      this.rt.dispatchFlat(def, all, params, Math.ceil(c.rows / matvecRowsPerWorkgroup(layout)));
    }
  }

  /** The logical tensors of a stacked matvec, in the order of matvecTensorCount. */
  private stackTensors(st: PendingStack, swigluOut?: GpuTensor): GpuTensor[] {
    return [st.norm ? st.norm.x : st.x, ...st.os, ...(swigluOut ? [swigluOut] : []), ...(st.norm ? [st.norm.o] : [])];
  }

  /**
   * Whether several weights can share one matvec dispatch: one format, each in one binding, and all
   * bindings within the device's storage-buffer limit (with the SwiGLU output when `swigluOut`, with
   * the rope table and the KV cache when `kv`).
   */
  private fitsStack(st: PendingStack, swigluOut?: GpuTensor, kv = false): boolean {
    const format = st.ws[0]!.format;
    if (st.ws.length > 3 || st.ws.some((w) => w.format !== format || w.chunks.length !== 1)) return false;
    if (swigluOut && (st.ws.length !== 2 || st.ws[0]!.rows !== st.ws[1]!.rows)) return false;
    const acts = distinct(this.stackTensors(st, swigluOut)).bufs.length;
    // Each weight binds its data (q formats: quants and scales) and its bias.
    return acts + st.ws.length * 2 + (st.norm ? 1 : 0) + (kv ? 3 : 0) <= this.device.limits.maxStorageBuffersPerShaderStage;
  }

  /**
   * Several weights over one input in one matvec dispatch: their rows laid end to end; or, with
   * `swigluOut`, two weights row by row and `silu(gate) * up` written too; or, with `kv`, q/k/v in
   * rotary pairs with RoPE and the KV write in the epilogue.
   */
  private recordStack(st: PendingStack, swigluOut?: GpuTensor, kv?: { c: GpuKVCache; layer: number; startPos: number }): void {
    const { ws, bs, os, norm } = st;
    const format = ws[0]!.format;
    const shape: MatvecShape = { weights: ws.length, gated: swigluOut !== undefined, norm: norm !== undefined, rope: kv !== undefined, ...(kv ? { kv: kv.c.dtype } : {}) };
    const logical = this.stackTensors(st, swigluOut);
    const { slots, bufs } = distinct(logical);
    const layout = matvecLayout(ws[0]!.kp, st.x.cols, logical[0]!.offset, slots, kv !== undefined);
    const def = this.kernel(`mvs:${format}:${slots}:${layout.lanes}:${layout.steps}:${layout.vec4}:${ws.length}${swigluOut ? 'g' : ''}${norm ? 'n' : ''}${kv ? `p${kv.c.dtype}` : ''}`,
      () => matvecKernel(format, this.f16, slots, layout, this.subgroups, shape));
    const all: Buf[] = [...bufs];
    const params: Record<string, number> = { T: st.x.rows, K: st.x.cols, Kp: ws[0]!.kp, xOff: logical[0]!.offset };
    let rows = 0;
    ws.forEach((w, i) => {
      const c = w.chunks[0]!;
      all.push(c.data, bs[i] ? bs[i]!.vec! : this.dummy);
      params[`rows${i}`] = w.rows;
      params[`oOff${i}`] = os[i]!.offset;
      params[`hasBias${i}`] = bs[i] ? 1 : 0;
      rows += w.rows;
    });
    if (swigluOut) {
      params.sOff = swigluOut.offset;
      rows = ws[0]!.rows;
    }
    if (norm) {
      all.push(norm.g.vec!);
      params.eps = norm.eps;
      params.nOff = norm.o.offset;
    }
    if (kv) {
      const r = st.rope!;
      all.push(this.rt.auxBuf, kv.c.keys[kv.layer]!, kv.c.values[kv.layer]!);
      Object.assign(params, { half: r.half, tabOff: r.tabOff, cap: kv.c.spec.maxTokens, startPos: kv.startPos });
    }
    this.rt.dispatchFlat(def, all, params, Math.ceil(rows / matvecRowsPerWorkgroup(layout)));
  }

  rope(x: Tensor, heads: number, headDim: number, startPos: number, theta: number): void {
    const a = this.tensor(x, 'rope');
    if (a.cols !== heads * headDim || headDim % 2 !== 0) throw new BackendUsageError(`rope: [${a.rows}, ${a.cols}] is not ${heads} heads of an even ${headDim}`);
    const half = headDim / 2;
    const key = `rope:${startPos}:${a.rows}:${headDim}:${theta}`;
    let tabOff = this.rt.auxMemo.get(key);
    if (tabOff === undefined) {
      // Angles in float64 as the reference does; f32 angles are off by ~1e-3 rad at position 32k.
      const tab = new Float32Array(a.rows * half * 2);
      for (let t = 0; t < a.rows; t++) {
        for (let i = 0; i < half; i++) {
          const angle = (startPos + t) * theta ** (-(2 * i) / headDim);
          tab[(t * half + i) * 2] = Math.cos(angle);
          tab[(t * half + i) * 2 + 1] = Math.sin(angle);
        }
      }
      tabOff = this.rt.pushAux(tab);
      this.rt.auxMemo.set(key, tabOff);
    }
    // Right after the held-back q/k/v matvec: q, then k, rotate in its epilogue (see writeKV).
    const st = this.rt.takeDeferred((tag): tag is PendingStack => isPending(tag, 'stack') && tag.ws.length === 3 && (tag.rope
      ? tag.rope.kHeads === 0 && sameRegion(tag.os[1]!, a) && tag.rope.tabOff === tabOff && tag.rope.half === half
      : sameRegion(tag.os[0]!, a)));
    if (st) {
      const next: PendingStack = { ...st, rope: st.rope ? { ...st.rope, kHeads: heads } : { qHeads: heads, kHeads: 0, half, tabOff } };
      this.rt.defer(next, () => this.recordStackAndRope(next));
      return;
    }
    // q's RoPE is held back; k's, at the same positions, then joins it in one dispatch.
    const first = this.rt.takeDeferred((tag): tag is PendingRope => isPending(tag, 'rope') && tag.tabOff === tabOff && tag.half === half && tag.x.rows === a.rows && !overlaps(tag.x, a));
    if (first) {
      // Held back again: the KV write of this k (and its v) that follows joins them too.
      const pair: PendingRopePair = { kind: 'rope-pair', q: first.x, k: a, qHeads: first.heads, kHeads: heads, half, tabOff };
      this.rt.defer(pair, () => this.recordRopePair(pair));
      return;
    }
    const pending: PendingRope = { kind: 'rope', x: a, heads, half, tabOff };
    this.rt.defer(pending, () => this.recordRope(pending));
  }

  private recordRope(r: PendingRope): void {
    this.rt.dispatchFlat(this.kernel('rope', ropeKernel), [r.x.buf, this.rt.auxBuf], { T: r.x.rows, heads: r.heads, half: r.half, xOff: r.x.offset, tabOff: r.tabOff },
      Math.ceil((r.x.rows * r.heads * r.half) / 256));
  }

  private recordRopePair(pair: PendingRopePair): void {
    const { slots, bufs } = distinct([pair.q, pair.k]);
    this.rt.dispatchFlat(this.kernel(`rope2:${slots}`, () => ropePairKernel(slots)), [...bufs, this.rt.auxBuf],
      { T: pair.k.rows, headsA: pair.qHeads, headsB: pair.kHeads, half: pair.half, aOff: pair.q.offset, bOff: pair.k.offset, tabOff: pair.tabOff },
      Math.ceil((pair.k.rows * (pair.qHeads + pair.kHeads) * pair.half) / 256));
  }

  /** RoPE of q and k, and the KV write of k and v, in one dispatch. */
  private recordRopeKV(pair: PendingRopePair, vt: GpuTensor, c: GpuKVCache, layer: number, startPos: number): void {
    const kt = pair.k;
    const width = c.spec.kvHeads * c.spec.headDim;
    const { slots, bufs } = distinct([pair.q, kt, vt]);
    // Threads per token: q's and k's rotary pairs, then v's values (f16: v's words, two values each).
    const perRow = (pair.qHeads + pair.kHeads) * pair.half + (c.dtype === 'f16' ? width / 2 : width);
    this.rt.dispatchFlat(this.kernel(`ropekv:${slots}:${c.dtype}`, () => ropeWriteKVKernel(slots, c.dtype)), [...bufs, this.rt.auxBuf, c.keys[layer]!, c.values[layer]!], {
      T: kt.rows, headsA: pair.qHeads, headsB: pair.kHeads, half: pair.half, aOff: pair.q.offset, bOff: kt.offset, tabOff: pair.tabOff,
      vOff: vt.offset, width, D: c.spec.headDim, cap: c.spec.maxTokens, startPos,
    }, Math.ceil((kt.rows * perRow) / 256));
  }

  /** A held-back q/k/v matvec with its RoPE that found no KV write to join: recorded as separate dispatches. */
  private recordStackAndRope(st: PendingStack): void {
    this.recordStack(st);
    const r = st.rope!;
    if (r.kHeads > 0) this.recordRopePair({ kind: 'rope-pair', q: st.os[0]!, k: st.os[1]!, qHeads: r.qHeads, kHeads: r.kHeads, half: r.half, tabOff: r.tabOff });
    else this.recordRope({ kind: 'rope', x: st.os[0]!, heads: r.qHeads, half: r.half, tabOff: r.tabOff });
  }

  writeKV(cache: KVCache, layer: number, k: Tensor, v: Tensor, startPos: number): void {
    const c = this.cache(cache, 'writeKV');
    const kt = this.tensor(k, 'writeKV k');
    const vt = this.tensor(v, 'writeKV v');
    const width = c.spec.kvHeads * c.spec.headDim;
    expectShape(kt, kt.rows, width, 'writeKV k');
    expectShape(vt, kt.rows, width, 'writeKV v');
    checkLayer(c.spec, layer, 'writeKV');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + kt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`writeKV: positions ${startPos}..${startPos + kt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    // The q/k/v matvec with both RoPEs held back, producing exactly this k and v: one dispatch for all.
    // q, k and v must not overlap: each workgroup writes its rows of all three.
    const st = this.rt.takeDeferred((tag): tag is PendingStack => isPending(tag, 'stack') && tag.rope !== undefined && tag.rope.kHeads * 2 * tag.rope.half === width &&
      tag.rope.half * 2 === c.spec.headDim && sameRegion(tag.os[1]!, kt) && sameRegion(tag.os[2]!, vt) &&
      !overlaps(tag.os[0]!, kt) && !overlaps(tag.os[0]!, vt) && !overlaps(kt, vt));
    if (st) {
      this.recordStackRopeKV(st, c, layer, startPos);
      return;
    }
    const pair = this.rt.takeDeferred((tag): tag is PendingRopePair => isPending(tag, 'rope-pair') && sameRegion(tag.k, kt) && tag.half * 2 === c.spec.headDim &&
      !overlaps(vt, tag.q) && !overlaps(vt, tag.k));
    if (pair) {
      this.recordRopeKV(pair, vt, c, layer, startPos);
      return;
    }
    const { slots, bufs } = distinct([kt, vt]);
    // One thread per value, or per word (two values) of an f16 cache.
    const threads = kt.rows * (c.dtype === 'f16' ? width / 2 : width);
    this.rt.dispatchFlat(this.kernel(`kv:${slots}:${c.dtype}`, () => writeKVKernel(slots, c.dtype)), [...bufs, c.keys[layer]!, c.values[layer]!],
      { T: kt.rows, width, D: c.spec.headDim, cap: c.spec.maxTokens, startPos, kOff: kt.offset, vOff: vt.offset }, Math.ceil(threads / 256));
  }

  /**
   * The q/k/v matvec, RoPE of q and k and the KV write in one dispatch when its bindings fit (with the
   * norm before it when they still fit); otherwise the matvec, then RoPE and KV write in a second one.
   */
  private recordStackRopeKV(st: PendingStack, c: GpuKVCache, layer: number, startPos: number): void {
    const kv = { c, layer, startPos };
    if (this.fitsStack(st, undefined, true)) {
      this.recordStack(st, undefined, kv);
      return;
    }
    const plain = { ...st, norm: undefined };
    if (st.norm && this.fitsStack(plain, undefined, true)) {
      this.recordNorm(st.norm);
      this.recordStack(plain, undefined, kv);
      return;
    }
    this.recordStack(st);
    const r = st.rope!;
    this.recordRopeKV({ kind: 'rope-pair', q: st.os[0]!, k: st.os[1]!, qHeads: r.qHeads, kHeads: r.kHeads, half: r.half, tabOff: r.tabOff }, st.os[2]!, c, layer, startPos);
  }

  attention(q: Tensor, cache: KVCache, layer: number, startPos: number, spec: AttentionSpec, out: Tensor): void {
    const c = this.cache(cache, 'attention');
    const qt = this.tensor(q, 'attention q');
    const o = this.tensor(out, 'attention out');
    const { heads, kvHeads, headDim, scale } = spec;
    if (!(heads >= 1) || !(kvHeads >= 1) || heads % kvHeads !== 0) throw new BackendUsageError(`attention: ${heads} heads is not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== c.spec.kvHeads || headDim !== c.spec.headDim) throw new BackendUsageError(`attention: spec ${kvHeads}x${headDim} does not match the cache ${c.spec.kvHeads}x${c.spec.headDim}`);
    expectShape(qt, qt.rows, heads * headDim, 'attention q');
    expectShape(o, qt.rows, heads * headDim, 'attention out');
    checkLayer(c.spec, layer, 'attention');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + qt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`attention: positions up to ${startPos + qt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    const T = qt.rows;
    const window = spec.slidingWindow && spec.slidingWindow > 0 ? spec.slidingWindow : 0;
    const longest = window ? Math.min(window, startPos + T) : startPos + T;
    const perSplit = T * heads * (headDim + 2) * 4;
    const budget = Math.min(ATTN_SCRATCH_BYTES, this.maxBinding);
    const nSplits = Math.max(1, Math.min(Math.ceil(longest / ATTN_SPLIT), Math.floor(budget / perSplit)));
    if (perSplit > budget) throw new WebGPUDeviceError(`attention: ${T} query rows need ${perSplit} bytes of scratch, over the limit of ${budget} (split the prefill into smaller chunks)`, 'maxStorageBufferBindingSize');
    const splitLen = Math.ceil(longest / nSplits);
    const params = { T, H: heads, group: heads / kvHeads, D: headDim, cap: c.spec.maxTokens, startPos, window, nSplits, splitLen, qOff: qt.offset, oOff: o.offset, scale };
    // Key rows read 16 bytes at a time where they are whole vec4s (the caches' rows are headDim floats,
    // or headDim halves: 16 bytes are 8 of them).
    const dtype = c.dtype;
    const vec4 = headDim % (dtype === 'f16' ? 8 : 4) === 0;
    if (nSplits === 1) {
      // Short context: one split per (token, head) is already the result; no merge pass.
      const { slots, bufs } = distinct([qt, o]);
      this.rt.dispatchFlat(this.kernel(`attn:${slots}:${vec4}:${dtype}`, () => attentionPartialKernel(true, slots, vec4, dtype)), [...bufs, c.keys[layer]!, c.values[layer]!], params, T * heads);
      return;
    }
    const scratch = this.scratch('attn', nSplits * perSplit);
    this.rt.dispatchFlat(this.kernel(`attn1:${vec4}:${dtype}`, () => attentionPartialKernel(false, [0], vec4, dtype)), [qt.buf, c.keys[layer]!, c.values[layer]!, scratch], params, T * heads * nSplits);
    this.rt.dispatchFlat(this.kernel('attn2', attentionCombineKernel), [o.buf, scratch], { rows: T * heads, D: headDim, nSplits, oOff: o.offset }, T * heads);
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    const gt = this.tensor(gate, 'swiglu a');
    const ut = this.tensor(up, 'swiglu b');
    const o = this.tensor(out, 'swiglu out');
    // Right after the held-back gate/up matvec that produced both operands: one dispatch. `out` may be
    // either operand (each row is written by the thread that computed it) or memory nothing else uses.
    const st = this.rt.takeDeferred((tag): tag is PendingStack => {
      if (!isPending(tag, 'stack') || tag.ws.length !== 2 || !sameRegion(tag.os[0]!, gt) || !sameRegion(tag.os[1]!, ut) || !sameShape(gt, o)) return false;
      const free = sameRegion(o, gt) || sameRegion(o, ut) || !this.stackTensors(tag).some((t) => overlaps(o, t));
      return free && this.fitsStack(tag, o);
    });
    if (st) {
      this.recordStack(st, o);
      return;
    }
    this.binary('swiglu', gate, up, out);
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    const x = this.tensor(a, 'add a');
    const y = this.tensor(b, 'add b');
    const o = this.tensor(out, 'add out');
    // The residual add right after a held-back matvec that produced one operand: one fused dispatch.
    // Not when `out` overlaps the matvec's input (other workgroups still read it) or both operands are
    // its output.
    const m = this.rt.takeDeferred((tag): tag is PendingMatvec => {
      if (!isPending(tag, 'matvec') || sameRegion(x, y) || overlaps(o, tag.x)) return false;
      if (tag.norm && (overlaps(o, tag.norm.x) || overlaps(o, tag.norm.o))) return false;
      return (sameRegion(tag.o, y) || sameRegion(tag.o, x)) && sameShape(x, y) && sameShape(x, o);
    });
    if (m) {
      this.recordMatvec(m, { res: sameRegion(m.o, y) ? x : y, out: o });
      return;
    }
    this.binary('add', a, b, out);
  }

  copy(src: Tensor, dst: Tensor): void {
    const s = this.tensor(src, 'copy src');
    const d = this.tensor(dst, 'copy dst');
    expectShape(d, s.rows, s.cols, 'copy dst');
    // Held back: an in-place RMSNorm of `dst` that follows reads `src` instead (see rmsNorm).
    const c: PendingCopy = { kind: 'copy', s, d };
    this.rt.defer(c, () => {
      const n = s.rows * s.cols;
      const { slots, bufs } = distinct([s, d]);
      this.rt.dispatchFlat(this.kernel(`copy:${slots}`, () => elementwiseKernel('copy', slots)), bufs, { n, aOff: s.offset, bOff: 0, oOff: d.offset }, Math.ceil(n / 256));
    });
  }

  private binary(op: 'add' | 'swiglu', a: Tensor, b: Tensor, out: Tensor): void {
    const x = this.tensor(a, `${op} a`);
    const y = this.tensor(b, `${op} b`);
    const o = this.tensor(out, `${op} out`);
    expectShape(y, x.rows, x.cols, `${op} b`);
    expectShape(o, x.rows, x.cols, `${op} out`);
    const n = x.rows * x.cols;
    const { slots, bufs } = distinct([x, y, o]);
    this.rt.dispatchFlat(this.kernel(`${op}:${slots}`, () => elementwiseKernel(op, slots)), bufs, { n, aOff: x.offset, bOff: y.offset, oOff: o.offset }, Math.ceil(n / 256));
  }

  // ---- passes and results -------------------------------------------------------------------------

  beginPass(tokens: number, startPos: number): void {
    this.alive();
    checkBeginPass(this.inPass, tokens, startPos);
    this.inPass = true;
  }

  /**
   * Ends the pass: its last held-back dispatch is recorded, but nothing is submitted yet. What comes
   * next to observe the pass (argmax, sample, read, write) submits it together with its own commands, so
   * a decode step and the draw of its token are one submission.
   */
  endPass(): void {
    checkEndPass(this.inPass);
    this.inPass = false;
    this.rt.settle();
  }

  async read(t: Tensor): Promise<Float32Array> {
    const x = this.tensor(t, 'read');
    const bytes = await this.readBack(x.buf, x.offset * 4, x.rows * x.cols * 4);
    return new Float32Array(bytes);
  }

  async argmax(logits: Tensor): Promise<Int32Array> {
    return this.argmaxOnDevice(logits).ids();
  }

  /**
   * The argmax dispatch and the copy of its ids to a readback buffer, submitted with the pass before
   * them; the ids stay in the results buffer for {@link embedOnDevice} of the next pass, which can be
   * recorded and submitted before they are read.
   */
  argmaxOnDevice(logits: Tensor): DeviceTokens {
    const l = this.tensor(logits, 'argmax');
    const resOff = this.reserveResults(l.rows);
    this.rt.dispatch(this.kernel('argmax', argmaxKernel), [l.buf, this.results], { n: l.cols, off: l.offset, resOff }, l.rows);
    return this.keptTokens(resOff, l.rows, `argmax: no finite or infinite value among ${l.cols} entries`);
  }

  async sample(logits: Tensor, params: SamplingParams): Promise<number> {
    return (await this.sampleOnDevice(logits, params).ids())[0]!;
  }

  /**
   * The sampler dispatch, its id left in the results buffer like {@link argmaxOnDevice}'s. With
   * `previous` (the latest device token) the kernel reads that id there and counts it in the history.
   */
  sampleOnDevice(logits: Tensor, params: SamplingParams, previous?: DeviceTokens): DeviceTokens {
    const l = this.tensor(logits, 'sample');
    if (l.rows !== 1) throw new BackendUsageError(`sample: expected one row of logits, got ${l.rows}`);
    validateSamplingParams(params);
    const prev = previous === undefined ? undefined : this.latestTokens(previous, 'sampleOnDevice');
    if (prev && prev.count !== 1) throw new BackendUsageError(`sampleOnDevice: previous holds ${prev.count} ids, expected 1`);
    if (l.cols > sampleMaxVocab(this.sampleWG)) {
      throw new BackendUsageError(`sample: ${l.cols} logits; the device sampler takes at most ${sampleMaxVocab(this.sampleWG)} on this adapter (workgroups of ${this.sampleWG} threads)`);
    }
    const { ids, counts } = params.history;
    const hist = new Int32Array(ids.length * 2);
    hist.set(ids, 0);
    hist.set(counts, ids.length);
    const histOff = this.rt.pushAux(hist.length ? hist : new Int32Array(1));
    const resOff = this.reserveResults(1);
    // Penalized logits, candidates, their gathered list and the chunks' partials (see wgsl/sample.ts).
    const scratch = this.scratch('sample', sampleScratchFloats(l.cols) * 4);
    const bufs = [l.buf, scratch, this.results, this.rt.auxBuf];
    const fields = {
      n: l.cols, off: l.offset, resOff, histN: ids.length, histOff, serial: new Set(ids).size < ids.length ? 1 : 0, prevOff: prev?.offset ?? 0, hasPrev: prev ? 1 : 0, topK: params.topK,
      temperature: params.temperature, topP: params.topP, minP: params.minP, rep: params.repetitionPenalty, presence: params.presencePenalty,
      frequency: params.frequencyPenalty, uniform: params.uniform,
    };
    const chunks = Math.ceil(l.cols / SAMPLE_CHUNK);
    this.rt.dispatch(this.kernel('sample-logits', sampleLogitsKernel), bufs, fields, chunks);
    this.rt.dispatch(this.kernel('sample-candidates', sampleCandidatesKernel), bufs, fields, chunks);
    this.rt.dispatch(this.kernel('sample-draw', () => sampleDrawKernel(this.sampleWG)), bufs, fields, 1);
    return this.keptTokens(resOff, 1, `sampleFromLogits: all ${l.cols} logits are NaN`);
  }

  /**
   * The `rows` ids a draw just recorded at `resOff` of the results buffer, their readback started (it
   * submits what is pending); `ids()` rejects with `noToken` where a row had nothing to draw.
   */
  private keptTokens(resOff: number, rows: number, noToken: string): GpuDeviceTokens {
    const read = this.readBack(this.results, resOff * 4, rows * 4).then((bytes) => {
      const ids = new Int32Array(bytes);
      if (ids.includes(NO_TOKEN | 0)) throw new RangeError(noToken);
      return ids;
    });
    return new GpuDeviceTokens(this, rows, this.results, resOff, this.resultsGeneration, read);
  }

  memory(): { weights: number; activations: number; kvCache: number } {
    let weights = 0;
    for (const w of this.weights) weights += w.bytes;
    let activations = 0;
    for (const t of this.tensors) activations += t.buf.size;
    let kvCache = 0;
    for (const c of this.caches) kvCache += c.bytes;
    return { weights, activations, kvCache };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // A held-back dispatch is dropped, not recorded: its buffers are about to be destroyed.
    this.rt.dropDeferred();
    for (const w of this.weights) this.destroyWeight(w);
    for (const t of this.tensors) {
      t.freed = true;
      t.buf.buffer.destroy();
    }
    for (const c of this.caches) {
      c.freed = true;
      for (const b of [...c.keys, ...c.values]) b.buffer.destroy();
    }
    this.weights.clear();
    this.tensors.clear();
    this.caches.clear();
    this.rt.flush();
    for (const b of [this.dummy, this.results, this.attnScratch, this.sampleScratch]) b?.buffer.destroy();
    this.rt.destroy();
    this.device.destroy();
    // Only now may Dawn's instance go.
    this.gpu = undefined;
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** A kernel definition, generated once (WGSL strings are not rebuilt per dispatch). */
  private kernel(key: string, make: () => KernelDef): KernelDef {
    let d = this.defs.get(key);
    if (!d) {
      d = make();
      this.defs.set(key, d);
    }
    return d;
  }

  private async readBack(src: Buf, offset: number, bytes: number): Promise<ArrayBuffer> {
    this.alive();
    let out: ArrayBuffer;
    try {
      out = await this.rt.readBack(src, offset, bytes);
    } catch (e) {
      // A lost device fails the map before (or without) its lost promise settling: give it a moment.
      await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, 200))]);
      await Promise.resolve();
      if (this.lost) throw this.lost;
      throw e;
    }
    if (this.lost) throw this.lost;
    if (this.errors.length > 0) {
      const msg = this.errors.splice(0).join('\n');
      throw new WebGPUDeviceError(`WebGPU reported an error while running kernels: ${msg}`);
    }
    return out;
  }

  private reserveResults(n: number): number {
    this.resultsGeneration++;
    if (!this.rt.pending) this.resultsUsed = 0;
    if (this.resultsUsed + n > this.results.size / 4) {
      this.rt.flush();
      this.resultsUsed = 0;
      if (n > this.results.size / 4) {
        this.rt.release(this.results);
        this.results = this.rt.createBuffer(n * 4, USAGE.STORAGE | USAGE.COPY_SRC, 'qwen2-ts results');
      }
    }
    const off = this.resultsUsed;
    this.resultsUsed += n;
    return off;
  }

  private scratch(kind: 'attn' | 'sample', bytes: number): Buf {
    const cur = kind === 'attn' ? this.attnScratch : this.sampleScratch;
    if (cur && cur.size >= bytes) return cur;
    if (cur) this.rt.release(cur);
    const b = this.rt.createBuffer(Math.max(bytes, cur ? cur.size * 2 : 0, 1 << 16), USAGE.STORAGE, `qwen2-ts ${kind} scratch`);
    if (kind === 'attn') this.attnScratch = b;
    else this.sampleScratch = b;
    return b;
  }

  private alive(): void {
    if (this.disposed) throw new BackendUsageError('the WebGPU backend was disposed');
    if (this.lost) throw this.lost;
  }

  private tensor(t: Tensor, what: string): GpuTensor {
    this.alive();
    if (!(t instanceof GpuTensor)) throw new BackendUsageError(`${what}: not a tensor of this WebGPU backend`);
    if (t.owner.freed) throw new BackendUsageError(`${what}: tensor was freed`);
    return t;
  }

  private weight(w: Weight, what: string): GpuWeight {
    this.alive();
    if (!(w instanceof GpuWeight)) throw new BackendUsageError(`${what}: not a weight of this WebGPU backend`);
    if (w.freed) throw new BackendUsageError(`${what}: weight '${w.name}' was freed`);
    return w;
  }

  private vector(w: Weight, what: string): GpuWeight {
    const v = this.weight(w, what);
    if (!v.vec) throw new BackendUsageError(`weight '${v.name}' [${v.rows}, ${v.cols}] is not a vector`);
    return v;
  }

  private cache(c: KVCache, what: string): GpuKVCache {
    this.alive();
    if (!(c instanceof GpuKVCache)) throw new BackendUsageError(`${what}: not a KV cache of this WebGPU backend`);
    if (c.freed) throw new BackendUsageError(`${what}: KV cache was freed`);
    return c;
  }
}

/** A decode matvec held back by `matmul` until the next command (see Runtime.defer); `norm` fused in. */
interface PendingMatvec { kind: 'matvec'; x: GpuTensor; o: GpuTensor; w: GpuWeight; bias: GpuWeight | undefined; T: number; norm?: PendingNorm | undefined }

/** Decode matvecs of several weights over one input, held back for a SwiGLU or RoPE + KV write; `norm` fused in. */
interface PendingStack {
  kind: 'stack'; x: GpuTensor; ws: GpuWeight[]; bs: (GpuWeight | undefined)[]; os: GpuTensor[]; norm: PendingNorm | undefined;
  /** RoPE of q (and k once `kHeads` > 0) held back with a q/k/v stack, waiting for the KV write. */
  rope?: { qHeads: number; kHeads: number; half: number; tabOff: number };
}

/** An RMSNorm of at most MATVEC_MAX_T rows held back for the matvec that reads its output. */
interface PendingNorm { kind: 'norm'; x: GpuTensor; g: GpuWeight; eps: number; o: GpuTensor }

/** A copy held back for an in-place RMSNorm of its destination. */
interface PendingCopy { kind: 'copy'; s: GpuTensor; d: GpuTensor }

/** A RoPE held back by `rope` until the next command, so that the next RoPE at the same positions joins it. */
interface PendingRope { kind: 'rope'; x: GpuTensor; heads: number; half: number; tabOff: number }

/** RoPE of q and k held back by the second `rope`, so that the KV write of that k joins them. */
interface PendingRopePair { kind: 'rope-pair'; q: GpuTensor; k: GpuTensor; qHeads: number; kHeads: number; half: number; tabOff: number }

/** Every kind of dispatch held back by Runtime.defer. */
type Pending = PendingMatvec | PendingStack | PendingNorm | PendingCopy | PendingRope | PendingRopePair;

/** Whether a held-back tag is of `kind`. */
function isPending<K extends Pending['kind']>(tag: unknown, kind: K): tag is Extract<Pending, { kind: K }> {
  return (tag as Pending | undefined)?.kind === kind;
}

function sameRegion(a: GpuTensor, b: GpuTensor): boolean {
  return a.buf === b.buf && a.offset === b.offset && a.rows === b.rows && a.cols === b.cols;
}

function sameShape(a: GpuTensor, b: GpuTensor): boolean {
  return a.rows === b.rows && a.cols === b.cols;
}

function overlaps(a: GpuTensor, b: GpuTensor): boolean {
  return a.buf === b.buf && a.offset < b.offset + b.rows * b.cols && b.offset < a.offset + a.rows * a.cols;
}

/** The distinct buffers of some tensors, in first-use order, and which one each tensor uses. */
function distinct(ts: readonly GpuTensor[]): { slots: number[]; bufs: Buf[] } {
  const bufs: Buf[] = [];
  const slots = ts.map((t) => {
    const i = bufs.indexOf(t.buf);
    if (i >= 0) return i;
    bufs.push(t.buf);
    return bufs.length - 1;
  });
  return { slots, bufs };
}

