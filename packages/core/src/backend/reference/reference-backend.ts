import type {
  AttentionSpec, Backend, BackendInfo, DeviceTokens, HostWeight, KVCache, KVCacheSpec, SamplingParams, Tensor, Weight, WeightFormat,
} from '../types.js';
import { BackendUsageError } from '../../errors.js';
import { dequantizeRow, hostWeightBytes, rowDot, validateHostWeight } from '../../quant/host-weight.js';
import { sampleFromLogits, validateSamplingParams } from '../../sampling/sample.js';
import { withOccurrence } from '../../sampling/history.js';
import { argmax } from '../../argmax.js';
import { cacheOf, RefKVCache, RefTensor, RefWeight, tensorOf, weightOf } from './objects.js';
import { checkBeginPass, checkEndPass, checkKVCacheSpec, checkLayer, checkTokenIds, expectShape } from '../usage-checks.js';
import { roundToF16KV } from '../../numeric/half.js';

const FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'];

/**
 * The reference backend: plain TypeScript loops, float64 accumulation, f32 storage. It is the
 * executable specification of every op of {@link Backend}; other backends are tested against it.
 * Weights stay in their canonical host layout (so bf16 weights take 2 bytes per value) and each row is
 * widened to f32 when an op reads it.
 */
export class ReferenceBackend implements Backend {
  /** Counts argmaxOnDevice calls: as on a device, only the latest ids can be embedded (see Backend.embedOnDevice). */
  private tokenGeneration = 0;
  readonly info: BackendInfo = { name: 'js', device: 'reference (TypeScript, single thread)', formats: FORMATS, threads: 1 };
  private readonly weights = new Set<RefWeight>();
  private readonly tensors = new Set<RefTensor>();
  private readonly caches = new Set<RefKVCache>();
  private inPass = false;
  private disposed = false;

  // ---- memory -------------------------------------------------------------------------------------

  /**
   * Keeps the host arrays of `weight` (no copy) when they own their whole buffer, else copies them, so
   * that the backend's byte count is what it really keeps alive. Callers must not mutate them afterwards.
   */
  async uploadWeight(weight: HostWeight, name: string): Promise<Weight> {
    this.alive();
    validateHostWeight(weight, name);
    const host = ownBuffers(weight);
    const w = new RefWeight(host, name, hostWeightBytes(host));
    this.weights.add(w);
    return w;
  }

  alloc(rows: number, cols: number): Tensor {
    this.alive();
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new BackendUsageError(`alloc: invalid shape [${rows}, ${cols}]`);
    const t = new RefTensor(rows, cols, new Float32Array(rows * cols), undefined);
    this.tensors.add(t);
    return t;
  }

  view(t: Tensor, rowStart: number, rows: number): Tensor {
    const parent = tensorOf(t, 'view');
    if (!Number.isInteger(rowStart) || !Number.isInteger(rows) || rowStart < 0 || rows < 1 || rowStart + rows > parent.rows) {
      throw new BackendUsageError(`view: rows ${rowStart}..${rowStart + rows - 1} outside a tensor of ${parent.rows} rows`);
    }
    const data = parent.data.subarray(rowStart * parent.cols, (rowStart + rows) * parent.cols);
    return new RefTensor(rows, parent.cols, data, parent.owner);
  }

  write(t: Tensor, data: Float32Array): void {
    const x = tensorOf(t, 'write');
    if (data.length !== x.rows * x.cols) throw new BackendUsageError(`write: ${data.length} values for a [${x.rows}, ${x.cols}] tensor`);
    x.data.set(data);
  }

  createKVCache(spec: KVCacheSpec): KVCache {
    this.alive();
    const c = new RefKVCache(checkKVCacheSpec(spec));
    this.caches.add(c);
    return c;
  }

  free(x: Tensor | Weight | KVCache): void {
    if (x instanceof RefTensor) {
      if (x.root) return; // views go with their parent
      x.freed = true;
      this.tensors.delete(x);
    } else if (x instanceof RefWeight) {
      x.freed = true;
      this.weights.delete(x);
    } else if (x instanceof RefKVCache) {
      x.freed = true;
      this.caches.delete(x);
    } else {
      throw new BackendUsageError('free: not an object of the reference backend');
    }
  }

  // ---- ops ----------------------------------------------------------------------------------------

  embed(table: Weight, ids: Int32Array, out: Tensor): void {
    const w = weightOf(table, 'embed');
    const o = tensorOf(out, 'embed');
    expectShape(o, ids.length, w.cols, 'embed out');
    checkTokenIds(ids, w.rows);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      dequantizeRow(w.host, id, o.data.subarray(t * w.cols, (t + 1) * w.cols));
    }
  }

  rmsNorm(x: Tensor, weight: Weight, eps: number, out: Tensor): void {
    const a = tensorOf(x, 'rmsNorm x');
    const g = rowOf(weightOf(weight, 'rmsNorm weight'));
    const o = tensorOf(out, 'rmsNorm out');
    expectShape(o, a.rows, a.cols, 'rmsNorm out');
    if (g.length !== a.cols) throw new BackendUsageError(`rmsNorm: weight of ${g.length} for rows of ${a.cols}`);
    const n = a.cols;
    for (let r = 0; r < a.rows; r++) {
      let ss = 0;
      for (let i = 0; i < n; i++) ss += a.data[r * n + i]! ** 2;
      const inv = 1 / Math.sqrt(ss / n + eps);
      for (let i = 0; i < n; i++) o.data[r * n + i] = a.data[r * n + i]! * inv * g[i]!;
    }
  }

  matmul(x: Tensor, weights: readonly Weight[], biases: readonly (Weight | undefined)[], outs: readonly Tensor[]): void {
    const a = tensorOf(x, 'matmul x');
    if (weights.length === 0 || weights.length !== outs.length || biases.length !== weights.length) {
      throw new BackendUsageError(`matmul: ${weights.length} weights, ${biases.length} biases, ${outs.length} outputs`);
    }
    const K = a.cols;
    const row = new Float32Array(K);
    for (let i = 0; i < weights.length; i++) {
      const w = weightOf(weights[i]!, 'matmul weight');
      const o = tensorOf(outs[i]!, 'matmul out');
      if (w.cols !== K) throw new BackendUsageError(`matmul: weight '${w.name}' [${w.rows}, ${w.cols}] against x [${a.rows}, ${K}]`);
      expectShape(o, a.rows, w.rows, `matmul out of '${w.name}'`);
      const bias = biases[i] ? rowOf(weightOf(biases[i]!, 'matmul bias')) : undefined;
      if (bias && bias.length !== w.rows) throw new BackendUsageError(`matmul: bias of ${bias.length} for '${w.name}' with ${w.rows} outputs`);
      const N = w.rows;
      const T = a.rows;
      const xd = a.data;
      const od = o.data;
      if (T === 1) {
        // One token: widen each weight value as it is used (one pass over the weights).
        for (let n = 0; n < N; n++) od[n] = rowDot(w.host, n, xd, 0) + (bias ? bias[n]! : 0);
        continue;
      }
      // Several tokens: widen one weight row at a time and reuse it for every token.
      for (let n = 0; n < N; n++) {
        dequantizeRow(w.host, n, row);
        const b = bias ? bias[n]! : 0;
        for (let t = 0; t < T; t++) od[t * N + n] = dot(xd, t * K, row, K) + b;
      }
    }
  }

  rope(x: Tensor, heads: number, headDim: number, startPos: number, theta: number): void {
    const a = tensorOf(x, 'rope');
    if (a.cols !== heads * headDim || headDim % 2 !== 0) throw new BackendUsageError(`rope: [${a.rows}, ${a.cols}] is not ${heads} heads of an even ${headDim}`);
    const half = headDim / 2;
    for (let t = 0; t < a.rows; t++) {
      const pos = startPos + t;
      for (let i = 0; i < half; i++) {
        const angle = pos * theta ** (-(2 * i) / headDim);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        for (let h = 0; h < heads; h++) {
          const base = t * a.cols + h * headDim;
          const x1 = a.data[base + i]!;
          const x2 = a.data[base + i + half]!;
          a.data[base + i] = x1 * cos - x2 * sin;
          a.data[base + i + half] = x2 * cos + x1 * sin;
        }
      }
    }
  }

  writeKV(cache: KVCache, layer: number, k: Tensor, v: Tensor, startPos: number): void {
    const c = cacheOf(cache, 'writeKV');
    const kt = tensorOf(k, 'writeKV k');
    const vt = tensorOf(v, 'writeKV v');
    const width = c.spec.kvHeads * c.spec.headDim;
    expectShape(kt, kt.rows, width, 'writeKV k');
    expectShape(vt, kt.rows, width, 'writeKV v');
    checkLayer(c.spec, layer, 'writeKV');
    if (startPos < 0 || startPos + kt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`writeKV: positions ${startPos}..${startPos + kt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    c.keys[layer]!.set(kt.data, startPos * width);
    c.values[layer]!.set(vt.data, startPos * width);
    if (c.spec.dtype === 'f16') {
      const end = (startPos + kt.rows) * width;
      for (const stored of [c.keys[layer]!, c.values[layer]!]) {
        for (let i = startPos * width; i < end; i++) stored[i] = roundToF16KV(stored[i]!);
      }
    }
  }

  attention(q: Tensor, cache: KVCache, layer: number, startPos: number, spec: AttentionSpec, out: Tensor): void {
    const c = cacheOf(cache, 'attention');
    const qt = tensorOf(q, 'attention q');
    const o = tensorOf(out, 'attention out');
    const { heads, kvHeads, headDim, scale } = spec;
    if (heads % kvHeads !== 0) throw new BackendUsageError(`attention: ${heads} heads is not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== c.spec.kvHeads || headDim !== c.spec.headDim) throw new BackendUsageError(`attention: spec ${kvHeads}x${headDim} does not match the cache ${c.spec.kvHeads}x${c.spec.headDim}`);
    expectShape(qt, qt.rows, heads * headDim, 'attention q');
    expectShape(o, qt.rows, heads * headDim, 'attention out');
    checkLayer(c.spec, layer, 'attention');
    if (startPos < 0 || startPos + qt.rows > c.spec.maxTokens) throw new BackendUsageError(`attention: positions up to ${startPos + qt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    const keys = c.keys[layer]!;
    const values = c.values[layer]!;
    const width = kvHeads * headDim;
    const group = heads / kvHeads;
    const scores = new Float64Array(startPos + qt.rows);
    const acc = new Float64Array(headDim);
    for (let t = 0; t < qt.rows; t++) {
      const pos = startPos + t;
      const first = spec.slidingWindow ? Math.max(0, pos - spec.slidingWindow + 1) : 0;
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / group);
        const qBase = t * qt.cols + h * headDim;
        let max = -Infinity;
        for (let j = first; j <= pos; j++) {
          const kBase = j * width + g * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += qt.data[qBase + d]! * keys[kBase + d]!;
          scores[j] = dot * scale;
          if (scores[j]! > max) max = scores[j]!;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = first; j <= pos; j++) {
          const p = Math.exp(scores[j]! - max);
          sum += p;
          const vBase = j * width + g * headDim;
          for (let d = 0; d < headDim; d++) acc[d]! += p * values[vBase + d]!;
        }
        for (let d = 0; d < headDim; d++) o.data[qBase + d] = acc[d]! / sum;
      }
    }
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    const g = tensorOf(gate, 'swiglu gate');
    const u = tensorOf(up, 'swiglu up');
    const o = tensorOf(out, 'swiglu out');
    expectShape(u, g.rows, g.cols, 'swiglu up');
    expectShape(o, g.rows, g.cols, 'swiglu out');
    for (let i = 0; i < g.data.length; i++) {
      const x = g.data[i]!;
      o.data[i] = (x / (1 + Math.exp(-x))) * u.data[i]!;
    }
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    const x = tensorOf(a, 'add a');
    const y = tensorOf(b, 'add b');
    const o = tensorOf(out, 'add out');
    expectShape(y, x.rows, x.cols, 'add b');
    expectShape(o, x.rows, x.cols, 'add out');
    for (let i = 0; i < x.data.length; i++) o.data[i] = x.data[i]! + y.data[i]!;
  }

  copy(src: Tensor, dst: Tensor): void {
    const s = tensorOf(src, 'copy src');
    const d = tensorOf(dst, 'copy dst');
    expectShape(d, s.rows, s.cols, 'copy dst');
    d.data.set(s.data);
  }

  // ---- passes and results -------------------------------------------------------------------------

  beginPass(tokens: number, startPos: number): void {
    this.alive();
    checkBeginPass(this.inPass, tokens, startPos);
    this.inPass = true;
  }

  endPass(): void {
    checkEndPass(this.inPass);
    this.inPass = false;
  }

  async read(t: Tensor): Promise<Float32Array> {
    return tensorOf(t, 'read').data.slice();
  }

  async argmax(logits: Tensor): Promise<Int32Array> {
    const { ids, failure } = rowArgmax(tensorOf(logits, 'argmax'));
    if (failure !== undefined) throw failure;
    return ids;
  }

  /** The ids are picked at once (there is no device to wait for); an all-NaN row rejects `ids()`. */
  argmaxOnDevice(logits: Tensor): DeviceTokens {
    const l = tensorOf(logits, 'argmax');
    const { ids, failure } = rowArgmax(l);
    return new RefDeviceTokens(this, l.rows, ++this.tokenGeneration, failure === undefined ? ids : undefined, failure);
  }

  embedOnDevice(table: Weight, ids: DeviceTokens, out: Tensor): void {
    this.embed(table, this.latestIds(ids, 'embedOnDevice'), out);
  }

  sampleOnDevice(logits: Tensor, params: SamplingParams, previous?: DeviceTokens): DeviceTokens {
    const l = tensorOf(logits, 'sample');
    if (l.rows !== 1) throw new BackendUsageError(`sample: expected one row of logits, got ${l.rows}`);
    validateSamplingParams(params);
    let history = params.history;
    if (previous) {
      const ids = this.latestIds(previous, 'sampleOnDevice');
      if (ids.length !== 1) throw new BackendUsageError(`sampleOnDevice: previous holds ${ids.length} ids, expected 1`);
      history = withOccurrence(history, ids[0]!);
    }
    let picked: Int32Array | undefined;
    let failure: unknown;
    try {
      picked = Int32Array.of(sampleFromLogits(l.data, { ...params, history }));
    } catch (e) {
      failure = e;
    }
    return new RefDeviceTokens(this, 1, ++this.tokenGeneration, picked, failure);
  }

  /** The ids of `t`, which must be this backend's latest device tokens, with a value for every row. */
  private latestIds(t: DeviceTokens, what: string): Int32Array {
    if (!(t instanceof RefDeviceTokens) || t.owner !== this) throw new BackendUsageError(`${what}: the ids come from another backend`);
    if (t.generation !== this.tokenGeneration) throw new BackendUsageError(`${what}: a later argmaxOnDevice or sampleOnDevice replaced these ids (only the latest are kept)`);
    if (!t.known) throw new BackendUsageError(`${what}: a row of the logits had no value to pick (all NaN)`);
    return t.known;
  }

  async sample(logits: Tensor, params: SamplingParams): Promise<number> {
    const l = tensorOf(logits, 'sample');
    if (l.rows !== 1) throw new BackendUsageError(`sample: expected one row of logits, got ${l.rows}`);
    return sampleFromLogits(l.data, params);
  }

  memory(): { weights: number; activations: number; kvCache: number } {
    let weights = 0;
    for (const w of this.weights) weights += w.bytes;
    let activations = 0;
    for (const t of this.tensors) activations += t.data.byteLength;
    let kvCache = 0;
    for (const c of this.caches) kvCache += c.bytes;
    return { weights, activations, kvCache };
  }

  async dispose(): Promise<void> {
    for (const w of this.weights) w.freed = true;
    for (const t of this.tensors) t.freed = true;
    for (const c of this.caches) c.freed = true;
    this.weights.clear();
    this.tensors.clear();
    this.caches.clear();
    this.disposed = true;
  }

  private alive(): void {
    if (this.disposed) throw new BackendUsageError('the reference backend was disposed');
  }
}

/** `sum(x[base + k] * row[k])` over k < K, accumulated in float64. */
function dot(x: Float32Array, base: number, row: Float32Array, K: number): number {
  let acc = 0;
  for (let k = 0; k < K; k++) acc += x[base + k]! * row[k]!;
  return acc;
}

/** A vector weight (norm or bias) as f32 values. */
function rowOf(w: RefWeight): Float32Array {
  if (w.rows !== 1) throw new BackendUsageError(`weight '${w.name}' [${w.rows}, ${w.cols}] is not a vector`);
  if (w.host.format === 'f32') return w.host.data;
  const out = new Float32Array(w.cols);
  dequantizeRow(w.host, 0, out);
  return out;
}

/** The weight itself when each of its arrays owns its whole buffer; otherwise a compact copy. */
function ownBuffers(w: HostWeight): HostWeight {
  const whole = (a: ArrayBufferView): boolean => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
  switch (w.format) {
    case 'f32':
      return whole(w.data) ? w : { ...w, data: w.data.slice() };
    case 'f16':
    case 'bf16':
      return whole(w.data) ? w : { ...w, data: w.data.slice() };
    case 'q8_0':
      return whole(w.scales) && whole(w.quants) ? w : { ...w, scales: w.scales.slice(), quants: w.quants.slice() };
    case 'q4_0':
      return whole(w.scales) && whole(w.quants) ? w : { ...w, scales: w.scales.slice(), quants: w.quants.slice() };
    case 'q4_k':
      return whole(w.blocks) ? w : { ...w, blocks: w.blocks.slice() };
  }
}

/** The argmax of each row of `l`, and the error of the first row without one (all NaN). */
function rowArgmax(l: RefTensor): { ids: Int32Array; failure: unknown } {
  const ids = new Int32Array(l.rows);
  let failure: unknown;
  for (let r = 0; r < l.rows; r++) {
    try {
      ids[r] = argmax(l.data.subarray(r * l.cols, (r + 1) * l.cols));
    } catch (e) {
      failure ??= e;
    }
  }
  return { ids, failure };
}

/** The reference backend's {@link DeviceTokens}: host ids, known when they are made (or the error). */
class RefDeviceTokens implements DeviceTokens {
  private readonly picked: Promise<Int32Array>;
  constructor(readonly owner: ReferenceBackend, readonly count: number, readonly generation: number, readonly known: Int32Array | undefined, failure: unknown) {
    this.picked = known ? Promise.resolve(known) : Promise.reject(failure);
    this.picked.catch(() => {}); // observed through ids()
  }
  ids(): Promise<Int32Array> {
    return this.picked;
  }
}
