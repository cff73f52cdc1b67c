import type { AttentionSpec, Backend, DeviceTokens, KVCacheDtype, Tensor } from '../backend/types.js';
import { BackendUsageError } from '../errors.js';
import { layerWindow, type Qwen2ModelConfig } from './config.js';
import { KVSequence } from './sequence.js';
import type { LayerWeights, ModelWeights } from './weights.js';
import { freeModelWeights } from './weights.js';

/** Largest number of tokens in one forward pass; a longer prompt is prefilled in chunks of this size. */
export const DEFAULT_MAX_CHUNK = 256;
/** Rows of logits computed at once when every position's logits are asked for. */
const LOGIT_ROWS = 16;

/**
 * Points of the forward pass a debugger can look at (the names of the fixtures' `debug` field):
 * `embed` (the token embeddings), per layer `attn_out` (o_proj output), `mlp_out` (down_proj output)
 * and `hidden_out` (the residual stream after the layer), and `final_norm` (the last position after
 * model.norm; one row).
 */
export type InspectPoint = 'embed' | 'attn_out' | 'mlp_out' | 'hidden_out' | 'final_norm';

/**
 * Called synchronously inside a pass with a tensor that is overwritten later in the pass: copy what
 * you need (`backend.copy` into your own tensor) and read it after the pass.
 */
export type InspectHook = (point: InspectPoint, layer: number | undefined, tensor: Tensor) => void;

/** A pass's scratch activations besides the residual stream. */
type Activations = Record<'xn' | 'q' | 'k' | 'v' | 'attn' | 'o' | 'gate' | 'up', Tensor>;

/** Scratch activations for passes of up to `rows` tokens, reused by every pass (views for fewer). */
interface Workspace {
  rows: number;
  x: Tensor; xn: Tensor; q: Tensor; k: Tensor; v: Tensor; attn: Tensor; o: Tensor; gate: Tensor; up: Tensor;
  last: Tensor; logits: Tensor; logitRows?: Tensor;
}

/**
 * Qwen2ForCausalLM as Hugging Face defines it, written once against the {@link Backend} interface:
 *
 *     h = embed(ids)
 *     for each layer:  h = h + o_proj(attention(rope(q(norm(h))), rope(k(norm(h))), v(norm(h))))
 *                      h = h + down(silu(gate(norm(h))) * up(norm(h)))
 *     logits = lm_head(norm(h))
 *
 * with RMSNorm, q/k/v biases, rotate-half RoPE, grouped-query attention over a KV cache, and a sliding
 * window on the layers the config selects. Prompts are prefilled in chunks of at most `maxChunk` tokens.
 */
export class Qwen2Model {
  readonly maxChunk: number;
  /** Debugging hook, see {@link InspectHook}; unset in normal use. */
  inspect: InspectHook | undefined;
  private ws: Workspace | undefined;
  /**
   * A batched pass's last hidden state and logits of each sequence, as wide as the widest batch so far (a
   * logits row is vocab x 4 bytes: 600 KB for Qwen2). Kept apart from the workspace, which other passes
   * may regrow while the batch's generations still read their rows.
   */
  private batch: { last: Tensor; logits: Tensor } | undefined;

  /**
   * @param backend - where weights live and ops run
   * @param config - the model's geometry
   * @param weights - weights uploaded by `loadModelWeights`
   * @param options.maxChunk - largest prefill chunk (default 256)
   */
  constructor(readonly backend: Backend, readonly config: Qwen2ModelConfig, readonly weights: ModelWeights, options: { maxChunk?: number } = {}) {
    this.maxChunk = options.maxChunk ?? DEFAULT_MAX_CHUNK;
    if (!Number.isInteger(this.maxChunk) || this.maxChunk < 1) throw new RangeError(`maxChunk must be a positive integer, got ${this.maxChunk}`);
  }

  /**
   * A new sequence with a KV cache of `maxTokens` positions, preallocated on the backend, storing keys
   * and values as `dtype` (default f32; see {@link KVCacheDtype}).
   * @throws RangeError when `maxTokens` exceeds the model's `maxPositionEmbeddings`
   */
  createSequence(maxTokens: number, dtype: KVCacheDtype = 'f32'): KVSequence {
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`context size must be a positive integer, got ${maxTokens}`);
    if (maxTokens > this.config.maxPositionEmbeddings) {
      throw new RangeError(`context of ${maxTokens} tokens exceeds the model's max_position_embeddings ${this.config.maxPositionEmbeddings}`);
    }
    const { numHiddenLayers: layers, numKeyValueHeads: kvHeads, headDim } = this.config;
    return new KVSequence(this.backend, this.backend.createKVCache({ layers, kvHeads, headDim, maxTokens, dtype }));
  }

  /**
   * Appends `ids` to `seq` and returns the logits of the last one, `[1, vocab]` on the backend. The
   * tensor belongs to the model and is overwritten by the next call.
   * @throws {@link ContextOverflowError} when the tokens do not fit in the sequence's cache
   * @throws RangeError on an empty `ids` or a token id outside the vocabulary
   */
  forward(seq: KVSequence, ids: ArrayLike<number>): Tensor {
    const all = this.checkIds(seq, ids);
    let logits: Tensor | undefined;
    for (let start = 0; start < all.length; start += this.maxChunk) {
      const chunk = all.subarray(start, Math.min(all.length, start + this.maxChunk));
      const isLast = start + chunk.length === all.length;
      logits = this.pass(seq, chunk, isLast ? 'last' : 'none');
    }
    return logits!;
  }

  /**
   * {@link forward} of tokens that the backend holds on its device: ids that its
   * {@link Backend.argmaxOnDevice} picked from this model's logits, which the host need not have read
   * yet (so they are in the vocabulary by construction, and not checked here). Greedy decoding records
   * the next step this way while the device still computes the current one.
   * @throws BackendUsageError when the backend cannot embed ids on its device, or there are more than a
   * pass holds
   * @throws {@link ContextOverflowError} when the tokens do not fit in the sequence's cache
   */
  forwardOnDevice(seq: KVSequence, ids: DeviceTokens): Tensor {
    if (!this.backend.embedOnDevice) throw new BackendUsageError(`forwardOnDevice: backend ${this.backend.info.name} has no embedOnDevice`);
    if (ids.count < 1 || ids.count > this.maxChunk) throw new BackendUsageError(`forwardOnDevice: ${ids.count} tokens, expected 1 to ${this.maxChunk}`);
    seq.ensureRoom(ids.count);
    return this.pass(seq, ids, 'last');
  }

  /**
   * One pass over several sequences (continuous batching): appends `ids[i]` (a token, or several: a
   * prompt's chunk) to `seqs[i]` and returns the logits of the last token of each, `[seqs.length, vocab]`
   * on the backend (row i for sequence i), overwritten by the next batched pass. The matrix products run
   * on all the pass's tokens at once, reading every weight once, which is where a decoding step's time
   * goes; RoPE, the KV write and attention run per sequence, at its own positions and over its own cache.
   * Each row equals what {@link forward} of that sequence's tokens alone would give.
   * @throws RangeError when the lengths differ, there are no sequences or more than `maxChunk` tokens in
   *   all, a sequence appears twice or gets no token, or an id is outside the vocabulary
   * @throws {@link ContextOverflowError} when a sequence's tokens do not fit in its cache
   */
  forwardBatch(seqs: readonly KVSequence[], ids: ArrayLike<number | ArrayLike<number>>): Tensor {
    const B = seqs.length;
    if (B === 0 || B !== ids.length) throw new RangeError(`forwardBatch: ${B} sequences and ${ids.length} entries of ids; expected one entry per sequence and at least one`);
    if (new Set(seqs).size !== B) throw new RangeError('forwardBatch: a sequence appears twice (its tokens belong in one entry)');
    const parts = Array.from({ length: B }, (_, i) => {
      const entry = ids[i]!;
      const tokens = this.checkTokenIds(typeof entry === 'number' ? [entry] : entry);
      if (tokens.length === 0) throw new RangeError(`forwardBatch: no tokens for sequence ${i}`);
      return tokens;
    });
    const T = parts.reduce((n, p) => n + p.length, 0);
    if (T > this.maxChunk) throw new RangeError(`forwardBatch: ${T} tokens in all exceed maxChunk ${this.maxChunk}`);
    seqs.forEach((seq, i) => seq.ensureRoom(parts[i]!.length));
    const b = this.backend;
    // The pass is as wide as all its tokens; its positions are each sequence's own, so it names the lowest.
    b.beginPass(T, Math.min(...seqs.map((s) => s.length)));
    try {
      const ws = this.workspace(T);
      const x = T === ws.rows ? ws.x : b.view(ws.x, 0, T);
      const act = this.activations(ws, T);
      const all = new Int32Array(T);
      let row = 0;
      const rows = seqs.map((seq, i) => {
        const n = parts[i]!.length;
        all.set(parts[i]!, row);
        const r = { seq, startPos: seq.length, first: row, n, q: b.view(act.q, row, n), k: b.view(act.k, row, n), v: b.view(act.v, row, n), attn: b.view(act.attn, row, n) };
        row += n;
        return r;
      });
      b.embed(this.weights.embed, all, x);
      this.weights.layers.forEach((w, l) => this.decoderLayer(l, w, x, act, () => {
        for (const r of rows) this.attend(l, r.seq, r.startPos, r.q, r.k, r.v, r.attn);
      }));
      rows.forEach((r) => (r.seq.length += r.n));
      const out = this.batchOutputs(B);
      // Each sequence's last token, normalized, through lm_head (the rows are those tokens already when
      // every sequence has one).
      let last = x;
      if (T > B) {
        last = out.last;
        rows.forEach((r, i) => b.copy(b.view(x, r.first + r.n - 1, 1), b.view(last, i, 1)));
      }
      b.rmsNorm(last, this.weights.norm, this.config.rmsNormEps, last);
      b.matmul(last, [this.weights.lmHead], [undefined], [out.logits]);
      return out.logits;
    } finally {
      b.endPass();
    }
  }

  /**
   * Appends `ids` to `seq` and returns the logits of every one of them, read back to the host.
   * @throws {@link ContextOverflowError} when the tokens do not fit in the sequence's cache
   */
  async forwardAll(seq: KVSequence, ids: ArrayLike<number>): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    await this.forwardRows(seq, ids, (row) => out.push(row));
    return out;
  }

  /**
   * As {@link forwardAll}, handing each position's logits to `onRow` as its chunk is done, so that a
   * caller reducing them (to log-probabilities) never holds a long prompt's rows (600 KB each) at once.
   */
  async forwardRows(seq: KVSequence, ids: ArrayLike<number>, onRow: (row: Float32Array, position: number) => void): Promise<void> {
    const V = this.config.vocabSize;
    await this.everyPosition(seq, ids, async (logits, first, n) => {
      const flat = await this.backend.read(logits);
      for (let i = 0; i < n; i++) onRow(flat.slice(i * V, (i + 1) * V), first + i);
    });
  }

  /**
   * Appends `ids` to `seq` and returns the argmax of every position's logits, taken by the backend:
   * only the ids come back (speculative decoding checks greedy guesses this way).
   * @throws {@link ContextOverflowError} when the tokens do not fit in the sequence's cache
   */
  async forwardArgmax(seq: KVSequence, ids: ArrayLike<number>): Promise<Int32Array> {
    const out = new Int32Array(ids.length);
    await this.everyPosition(seq, ids, async (logits, first) => out.set(await this.backend.argmax(logits), first));
    return out;
  }

  /** Frees the weights and scratch activations. */
  dispose(): void {
    this.freeWorkspace();
    if (this.batch) {
      this.backend.free(this.batch.last);
      this.backend.free(this.batch.logits);
    }
    this.batch = undefined;
    freeModelWeights(this.backend, this.weights);
  }

  // ---- one pass -----------------------------------------------------------------------------------

  /** Runs one chunk through every layer; leaves the final hidden states (pre-norm) in `ws.x`. */
  private layers(seq: KVSequence, ids: Int32Array | DeviceTokens): { x: Tensor; ws: Workspace } {
    const b = this.backend;
    const T = tokenCount(ids);
    const ws = this.workspace(T);
    const at = <X extends Tensor>(t: X): Tensor => (T === ws.rows ? t : b.view(t, 0, T));
    const x = at(ws.x);
    const act = this.activations(ws, T);
    const startPos = seq.length;
    if (ids instanceof Int32Array) b.embed(this.weights.embed, ids, x);
    else b.embedOnDevice!(this.weights.embed, ids, x);
    this.inspect?.('embed', undefined, x);
    this.weights.layers.forEach((w, l) => this.decoderLayer(l, w, x, act, () => this.attend(l, seq, startPos, act.q, act.k, act.v, act.attn)));
    seq.length += T;
    return { x, ws };
  }

  /** One decoder layer on the rows of `x`; `selfAttention` fills `a.attn` from `a.q`, `a.k`, `a.v`. */
  private decoderLayer(l: number, w: LayerWeights, x: Tensor, a: Activations, selfAttention: () => void): void {
    const b = this.backend;
    const c = this.config;
    // Self-attention block.
    b.rmsNorm(x, w.inputNorm, c.rmsNormEps, a.xn);
    b.matmul(a.xn, [w.q, w.k, w.v], [w.qBias, w.kBias, w.vBias], [a.q, a.k, a.v]);
    selfAttention();
    b.matmul(a.attn, [w.o], [undefined], [a.o]);
    this.inspect?.('attn_out', l, a.o);
    b.add(x, a.o, x);
    // MLP block (SwiGLU).
    b.rmsNorm(x, w.postNorm, c.rmsNormEps, a.xn);
    b.matmul(a.xn, [w.gate, w.up], [undefined, undefined], [a.gate, a.up]);
    b.swiglu(a.gate, a.up, a.gate);
    b.matmul(a.gate, [w.down], [undefined], [a.o]);
    this.inspect?.('mlp_out', l, a.o);
    b.add(x, a.o, x);
    this.inspect?.('hidden_out', l, x);
  }

  /**
   * The part of layer `l` that belongs to one sequence: RoPE at its positions from `startPos`, its keys
   * and values into its cache, and attention over that cache.
   */
  private attend(l: number, seq: KVSequence, startPos: number, q: Tensor, k: Tensor, v: Tensor, out: Tensor): void {
    const b = this.backend;
    const c = this.config;
    b.rope(q, c.numAttentionHeads, c.headDim, startPos, c.ropeTheta);
    b.rope(k, c.numKeyValueHeads, c.headDim, startPos, c.ropeTheta);
    b.writeKV(seq.cache, l, k, v, startPos);
    b.attention(q, seq.cache, l, startPos, this.attentionSpec(l), out);
  }

  private attentionSpec(layer: number): AttentionSpec {
    const c = this.config;
    const spec: AttentionSpec = { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim) };
    const window = layerWindow(c, layer);
    if (window !== undefined) spec.slidingWindow = window;
    return spec;
  }

  /** One pass; with 'last', the logits of the chunk's last token land in `ws.logits`. */
  private pass(seq: KVSequence, ids: Int32Array | DeviceTokens, logits: 'last' | 'none'): Tensor {
    const b = this.backend;
    const T = tokenCount(ids);
    b.beginPass(T, seq.length);
    try {
      const { x, ws } = this.layers(seq, ids);
      if (logits === 'last') {
        // Only the last position's logits are needed: normalize that row alone.
        b.copy(T === 1 ? x : b.view(x, T - 1, 1), ws.last);
        b.rmsNorm(ws.last, this.weights.norm, this.config.rmsNormEps, ws.last);
        this.inspect?.('final_norm', undefined, ws.last);
        b.matmul(ws.last, [this.weights.lmHead], [undefined], [ws.logits]);
      }
      return ws.logits;
    } finally {
      // Also when an op threw, so that the backend is not left inside a pass.
      b.endPass();
    }
  }

  /**
   * Appends `ids` in chunks of at most `maxChunk` and hands the logits of every position to `take`, a
   * block of positions `first` to `first + n - 1` (of `ids`) at a time, before the block is overwritten.
   */
  private async everyPosition(seq: KVSequence, ids: ArrayLike<number>, take: (logits: Tensor, first: number, n: number) => Promise<void>): Promise<void> {
    const all = this.checkIds(seq, ids);
    for (let start = 0; start < all.length; start += this.maxChunk) {
      const chunk = all.subarray(start, Math.min(all.length, start + this.maxChunk));
      await this.passAll(seq, chunk, (logits, first, n) => take(logits, start + first, n));
    }
  }

  /**
   * One pass that computes the logits of every position of the chunk, `LOGIT_ROWS` rows at a time, and
   * hands each block to `take` (rows `first` to `first + n - 1` of the chunk) before it is overwritten.
   */
  private async passAll(seq: KVSequence, ids: Int32Array, take: (logits: Tensor, first: number, n: number) => Promise<void>): Promise<void> {
    const b = this.backend;
    const T = ids.length;
    b.beginPass(T, seq.length);
    let x: Tensor;
    let ws: Workspace;
    try {
      ({ x, ws } = this.layers(seq, ids));
      b.rmsNorm(x, this.weights.norm, this.config.rmsNormEps, x);
    } finally {
      b.endPass();
    }
    ws.logitRows ??= b.alloc(Math.min(LOGIT_ROWS, ws.rows), this.config.vocabSize);
    for (let r = 0; r < T; r += ws.logitRows.rows) {
      const n = Math.min(ws.logitRows.rows, T - r);
      const dst = n === ws.logitRows.rows ? ws.logitRows : b.view(ws.logitRows, 0, n);
      b.beginPass(n, seq.length);
      try {
        b.matmul(b.view(x, r, n), [this.weights.lmHead], [undefined], [dst]);
      } finally {
        b.endPass();
      }
      await take(dst, r, n);
    }
  }

  /** {@link batch} for `B` sequences: views of its first rows when it holds more. */
  private batchOutputs(B: number): { last: Tensor; logits: Tensor } {
    const b = this.backend;
    if (!this.batch || this.batch.last.rows < B) {
      if (this.batch) {
        b.free(this.batch.last);
        b.free(this.batch.logits);
      }
      this.batch = { last: b.alloc(B, this.config.hiddenSize), logits: b.alloc(B, this.config.vocabSize) };
    }
    const { last, logits } = this.batch;
    return last.rows === B ? this.batch : { last: b.view(last, 0, B), logits: b.view(logits, 0, B) };
  }

  /** The workspace's activations for a pass of `T` tokens (views of its first rows when it holds more). */
  private activations(ws: Workspace, T: number): Activations {
    const at = (t: Tensor): Tensor => (T === ws.rows ? t : this.backend.view(t, 0, T));
    return { xn: at(ws.xn), q: at(ws.q), k: at(ws.k), v: at(ws.v), attn: at(ws.attn), o: at(ws.o), gate: at(ws.gate), up: at(ws.up) };
  }

  private checkIds(seq: KVSequence, ids: ArrayLike<number>): Int32Array {
    if (ids.length === 0) throw new RangeError('forward: no tokens to run');
    const all = this.checkTokenIds(ids);
    seq.ensureRoom(all.length);
    return all;
  }

  /** `ids` as an Int32Array, each checked to be in the vocabulary. */
  private checkTokenIds(ids: ArrayLike<number>): Int32Array {
    const V = this.config.vocabSize;
    const all = Int32Array.from(ids as ArrayLike<number>);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} at index ${i} is outside the vocabulary of ${V}`);
    }
    return all;
  }

  private workspace(T: number): Workspace {
    const need = Math.min(this.maxChunk, Math.max(T, 1));
    if (this.ws && this.ws.rows >= need) return this.ws;
    this.freeWorkspace();
    // Grow to the full chunk size at the first multi-token pass; decode alone needs a single row.
    const rows = need === 1 ? 1 : this.maxChunk;
    const c = this.config;
    const b = this.backend;
    const qw = c.numAttentionHeads * c.headDim;
    const kvw = c.numKeyValueHeads * c.headDim;
    this.ws = {
      rows,
      x: b.alloc(rows, c.hiddenSize), xn: b.alloc(rows, c.hiddenSize),
      q: b.alloc(rows, qw), k: b.alloc(rows, kvw), v: b.alloc(rows, kvw), attn: b.alloc(rows, qw),
      o: b.alloc(rows, c.hiddenSize), gate: b.alloc(rows, c.intermediateSize), up: b.alloc(rows, c.intermediateSize),
      last: b.alloc(1, c.hiddenSize), logits: b.alloc(1, c.vocabSize),
    };
    return this.ws;
  }

  private freeWorkspace(): void {
    if (!this.ws) return;
    const { rows: _rows, ...tensors } = this.ws;
    for (const t of Object.values(tensors)) if (t) this.backend.free(t as Tensor);
    this.ws = undefined;
  }
}

/** Tokens of a pass, given on the host or held on the device. */
function tokenCount(ids: Int32Array | DeviceTokens): number {
  return ids instanceof Int32Array ? ids.length : ids.count;
}
