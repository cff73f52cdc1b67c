import type { Backend, HostWeight, Weight, WeightFormat } from '../backend/types.js';
import { ModelWeightsError, WeightFormatError } from '../errors.js';
import { nativeFormat } from '../weights/convert.js';
import { allocateHostWeight, readHostWeight, tensorReads } from '../weights/read-host-weight.js';
import { storeQuantizedLayer, type BlockWeight, type QuantizedLayer } from '../weights/from-quantized.js';
import { storeGgmlBlocks } from '../weights/from-ggml-blocks.js';
import type { Q4_KWeight } from '../quant/q4_k.js';
import { ggmlTypeNamed } from '@qwen2-ts/loader';
import { READ_AHEAD_BYTES, ReadAhead } from '../weights/read-ahead.js';
import { QUANT_BLOCK } from '../backend/types.js';
import { tensorNames, type Qwen2ModelConfig } from './config.js';

/** Where weights are read from: `@qwen2-ts/loader`'s `Checkpoint` satisfies it. */
export interface TensorSource {
  /**
   * The tensors by name. `quantized` marks a weight the source dequantized from a pre-quantized (AWQ or
   * GPTQ) checkpoint or a GGUF file's blocks; `'auto'` then stores it as q4_0 up to 4 bits, else q8_0.
   * `integers: false` says `readQuantized` cannot give it (GGUF block types with minimums or sub-block
   * scales): it is then quantized from its values.
   */
  readonly tensors: ReadonlyMap<string, { readonly dtype: string; readonly shape: readonly number[]; readonly quantized?: { readonly bits: number; readonly integers?: boolean; readonly format?: string } }>;
  /** Raw little-endian bytes of the tensor `name`. */
  read(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /** Optional: bytes of a range of the tensor, so large tensors convert slice by slice. */
  readRange?(name: string, byteOffset: number, byteLength: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Optional: the integers of a `quantized` tensor, so that storing it as q4_0 / q8_0 keeps its values
   * exactly where the format can (`@qwen2-ts/loader`'s dequantizing checkpoint offers it).
   */
  readQuantized?(name: string, options?: { signal?: AbortSignal }): Promise<QuantizedLayer>;
  /**
   * Optional: the raw ggml blocks of a tensor whose `quantized.format` is 'Q4_0' or 'Q8_0' (a GGUF
   * file's), stored as q4_0 / q8_0 by copying them (`@qwen2-ts/loader`'s GGUF checkpoint offers it).
   */
  readGgmlBlocks?(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

/** One decoder layer's weights on a backend. */
export interface LayerWeights {
  inputNorm: Weight;
  q: Weight; k: Weight; v: Weight;
  qBias: Weight; kBias: Weight; vBias: Weight;
  o: Weight;
  postNorm: Weight;
  gate: Weight; up: Weight; down: Weight;
}

/** A whole model's weights on a backend. `lmHead` is `embed` itself when the embeddings are tied. */
export interface ModelWeights {
  embed: Weight;
  layers: LayerWeights[];
  norm: Weight;
  lmHead: Weight;
  /** Bytes all weights take on the backend (a tied head counted once). */
  bytes: number;
  /** Tensors that could not take the requested format and were stored in another, with why. */
  fallbacks: { tensor: string; format: WeightFormat; reason: string }[];
}

/** Progress of weight preparation, in checkpoint bytes. */
export interface WeightLoadProgress {
  tensor: string;
  loaded: number;
  total: number;
}

/** Options of {@link loadModelWeights}. */
export interface LoadWeightsOptions {
  /**
   * Storage format of the matrices; 'auto' keeps the checkpoint dtype, except in a pre-quantized (AWQ,
   * GPTQ or block-quantized GGUF) checkpoint: a GGUF Q4_K tensor is stored as q4_k (its blocks as they
   * are) where the backend stores q4_k, any other weight dequantized from a layer of up to 4 bits as
   * q4_0 and of more (GGUF's Q5_x, Q6_K, Q8_0) as q8_0, the other matrices (embedding, lm_head) as q8_0
   * (f16 or the checkpoint's dtype where the backend or the column count does not allow that). 'q4_k'
   * is 'auto' that insists on q4_k: it needs Q4_K tensors to keep (float checkpoints cannot be quantized
   * to q4_k here). Norms and biases are always f32.
   */
  format?: WeightFormat | 'auto';
  signal?: AbortSignal;
  /** Called after each tensor is uploaded, with tensors done and total. */
  onProgress?: (p: WeightLoadProgress) => void;
  /**
   * Most checkpoint bytes read ahead of the tensor being converted, so reading overlaps converting and
   * uploading (default 128 MiB; 0 reads one tensor at a time). It adds at most this much to the load's
   * peak memory.
   */
  readAheadBytes?: number;
  /** @internal Checkpoint bytes above which a converted tensor is read slice by slice (default 64 MiB; tests use less). */
  sliceBytes?: number;
}

/**
 * Reads, converts and uploads every weight of a Qwen2 checkpoint, one tensor at a time so the host
 * keeps at most one tensor's bytes beside what the backend holds.
 *
 * A matrix whose column count is not a multiple of 32 cannot be stored as q8_0/q4_0; it is stored in
 * the checkpoint's own float format (or f32 if the backend lacks it) and listed in `fallbacks`.
 * @throws {@link ModelWeightsError} naming a missing tensor or one of the wrong shape
 * @throws {@link WeightFormatError} when the backend cannot store the requested format
 */
export async function loadModelWeights(source: TensorSource, config: Qwen2ModelConfig, backend: Backend, options: LoadWeightsOptions = {}): Promise<ModelWeights> {
  const format = options.format ?? 'auto';
  if (format !== 'auto' && !backend.info.formats.includes(format)) {
    throw new WeightFormatError(`backend '${backend.info.name}' cannot store ${format} weights (it supports ${backend.info.formats.join(', ')})`);
  }
  const { hiddenSize: H, intermediateSize: I, vocabSize: V, headDim: D } = config;
  const qOut = config.numAttentionHeads * D;
  const kvOut = config.numKeyValueHeads * D;

  const plan: { name: string; shape: number[]; kind: 'matrix' | 'vector' }[] = [];
  const matrix = (name: string, rows: number, cols: number) => plan.push({ name, shape: [rows, cols], kind: 'matrix' });
  const vector = (name: string, n: number) => plan.push({ name, shape: [n], kind: 'vector' });
  matrix(tensorNames.embed, V, H);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const n = tensorNames.layer(i);
    vector(n.inputNorm, H);
    matrix(n.q, qOut, H); matrix(n.k, kvOut, H); matrix(n.v, kvOut, H);
    vector(n.qBias, qOut); vector(n.kBias, kvOut); vector(n.vBias, kvOut);
    matrix(n.o, H, qOut);
    vector(n.postNorm, H);
    matrix(n.gate, I, H); matrix(n.up, I, H); matrix(n.down, H, I);
  }
  vector(tensorNames.norm, H);
  const tied = config.tieWordEmbeddings;
  if (!tied) matrix(tensorNames.lmHead, V, H);

  // Check everything and choose every tensor's format before reading anything, so a bad checkpoint
  // fails fast with a precise message and the reads can be planned (and fetched ahead) up front.
  let total = 0;
  const fallbacks: ModelWeights['fallbacks'] = [];
  const quantizedCheckpoint = plan.some((p) => source.tensors.get(p.name)?.quantized !== undefined);
  const isQ4_K = (name: string) => source.tensors.get(name)?.quantized?.format === 'Q4_K' && source.readGgmlBlocks !== undefined;
  if (format === 'q4_k' && !plan.some((p) => isQ4_K(p.name))) {
    throw new WeightFormatError(`q4_k weights are GGUF Q4_K tensors kept as they are, and this checkpoint has none; quantizing to q4_k is not supported (pass q4_0 or q8_0)`);
  }
  const targets: (WeightFormat | 'auto')[] = [];
  for (const p of plan) {
    const info = source.tensors.get(p.name);
    if (!info) throw new ModelWeightsError(p.name, 'missing from the checkpoint');
    const ok = info.shape.length === p.shape.length && info.shape.every((d, i) => d === p.shape[i]);
    if (!ok) throw new ModelWeightsError(p.name, `shape [${info.shape.join(', ')}] does not match the config's [${p.shape.join(', ')}]`);
    // A dequantized weight's values come from 16-bit scales: f16 keeps them as the quantizers' own
    // dequantization does, where its quantized format cannot be had.
    const native = info.quantized && backend.info.formats.includes('f16') ? 'f16' : nativeFormat(info.dtype, p.name);
    total += checkpointBytes(info.dtype, p.shape);
    let target: WeightFormat | 'auto' = p.kind === 'vector' ? 'f32' : format === 'q4_k' ? 'auto' : format;
    if (target === 'auto' && isQ4_K(p.name) && backend.info.formats.includes('q4_k')) {
      // ggml's own Q4_K blocks: kept, not quantized a second time (Q4_K tensors are whole 256-value rows).
      target = 'q4_k';
    } else if (target === 'auto' && info.quantized) {
      const wanted = info.quantized.bits <= 4 ? 'q4_0' : 'q8_0';
      target = backend.info.formats.includes(wanted) ? wanted : native;
    } else if (target === 'auto' && quantizedCheckpoint && backend.info.formats.includes('q8_0')) {
      // The float matrices of a pre-quantized checkpoint (embedding, lm_head): kept in f16, the lm_head
      // read on every token made 0.5B decode 2.4x slower than all-q4_0; q8_0 is within 0.4% of each
      // block's largest value at about half the bytes.
      target = 'q8_0';
    }
    if ((target === 'q8_0' || target === 'q4_0') && p.shape[1]! % QUANT_BLOCK !== 0) {
      const fallback = backend.info.formats.includes(native) ? native : 'f32';
      fallbacks.push({ tensor: p.name, format: fallback, reason: `${p.shape[1]} columns are not whole ${QUANT_BLOCK}-value blocks` });
      target = fallback;
    }
    if (target === 'auto' && !backend.info.formats.includes(native)) {
      throw new WeightFormatError(`backend '${backend.info.name}' cannot store ${native} weights (checkpoint dtype of '${p.name}'); pass a dtype it supports: ${backend.info.formats.join(', ')}`);
    }
    targets.push(target);
  }

  const uploaded = new Map<string, Weight>();
  let loaded = 0;
  // Sliced tensors are filled straight into backend storage where the backend offers it; `pending` is
  // such a buffer not yet uploaded.
  let pending: HostWeight | undefined;
  const buffers = backend.weightBuffer !== undefined && backend.discardWeightBuffer !== undefined;
  const quantize = backend.quantizeBlocks?.bind(backend);
  const allocator = (name: string) => buffers ? async (f: WeightFormat, rows: number, cols: number) => (pending = await backend.weightBuffer!(f, rows, cols, name)) : undefined;
  // A dequantized weight bound for q4_0 / q8_0 is built from its integers rather than its float values;
  // ggml's own Q4_0 / Q8_0 blocks bound for the same format are copied.
  const fromBlocks = plan.map((p, i) => {
    const format = source.tensors.get(p.name)!.quantized?.format;
    return source.readGgmlBlocks !== undefined && ((format === 'Q4_0' && targets[i] === 'q4_0') || (format === 'Q8_0' && targets[i] === 'q8_0') || (format === 'Q4_K' && targets[i] === 'q4_k'));
  });
  const fromIntegers = plan.map((p, i) => {
    const quantized = source.tensors.get(p.name)!.quantized;
    return !fromBlocks[i] && source.readQuantized !== undefined && quantized !== undefined && quantized.integers !== false && (targets[i] === 'q4_0' || targets[i] === 'q8_0');
  });
  // GGUF blocks are read ahead like float tensors; AWQ / GPTQ integers one layer at a time when converted.
  const reads = plan.flatMap((p, i) => fromBlocks[i] ? [{ name: p.name, byteLength: ggmlBlockBytes(source.tensors.get(p.name)!.quantized!.format!, p.shape), blocks: true }] : fromIntegers[i] ? [] : tensorReads(p.name, source.tensors.get(p.name)!.dtype, p.shape, targets[i]!, source.readRange !== undefined, { sliceBytes: options.sliceBytes, allocate: allocator(p.name) }));
  const ahead = new ReadAhead(source, reads, options.readAheadBytes ?? READ_AHEAD_BYTES, options.signal);
  try {
    for (const [i, p] of plan.entries()) {
      options.signal?.throwIfAborted();
      const info = source.tensors.get(p.name)!;
      let host: HostWeight;
      if (fromBlocks[i] || fromIntegers[i]) {
        // Read first: a bad layer fails before its backend buffer is taken.
        const blocks = fromBlocks[i] ? await ahead.readGgmlBlocks(p.name, { signal: options.signal }) : undefined;
        const layer = blocks ? undefined : await source.readQuantized!(p.name, { signal: options.signal });
        if (layer && (layer.rows !== p.shape[0] || layer.cols !== p.shape[1])) throw new ModelWeightsError(p.name, `quantized integers of shape [${layer.rows}, ${layer.cols}] do not match the config's [${p.shape.join(', ')}]`);
        const format = targets[i] as (BlockWeight | Q4_KWeight)['format'];
        const allocate = allocator(p.name);
        host = allocate ? await allocate(format, p.shape[0]!, p.shape[1]!) : allocateHostWeight(format, p.shape[0]!, p.shape[1]!);
        if (blocks) storeGgmlBlocks(blocks, host as BlockWeight | Q4_KWeight, p.name);
        else storeQuantizedLayer(layer!, host as BlockWeight);
      } else {
        host = await readHostWeight(ahead, p.name, info.dtype, p.shape, targets[i]!, { signal: options.signal, sliceBytes: options.sliceBytes, allocate: allocator(p.name), quantize });
      }
      uploaded.set(p.name, await backend.uploadWeight(host, p.name));
      pending = undefined;
      loaded += checkpointBytes(info.dtype, p.shape);
      options.onProgress?.({ tensor: p.name, loaded, total });
    }
  } catch (e) {
    if (pending) backend.discardWeightBuffer!(pending);
    for (const w of uploaded.values()) backend.free(w);
    throw e;
  } finally {
    ahead.dispose();
  }

  const get = (name: string): Weight => uploaded.get(name)!;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const n = tensorNames.layer(i);
    layers.push({
      inputNorm: get(n.inputNorm), q: get(n.q), k: get(n.k), v: get(n.v),
      qBias: get(n.qBias), kBias: get(n.kBias), vBias: get(n.vBias), o: get(n.o),
      postNorm: get(n.postNorm), gate: get(n.gate), up: get(n.up), down: get(n.down),
    });
  }
  let bytes = 0;
  for (const w of uploaded.values()) bytes += w.bytes;
  const embed = get(tensorNames.embed);
  return { embed, layers, norm: get(tensorNames.norm), lmHead: tied ? embed : get(tensorNames.lmHead), bytes, fallbacks };
}

/** Bytes of a tensor of `shape` in ggml blocks of type `format` (for the read-ahead budget). */
function ggmlBlockBytes(format: string, shape: readonly number[]): number {
  const type = ggmlTypeNamed(format)!;
  return (shape.reduce((a, b) => a * b, 1) / type.blockSize) * type.typeSize;
}

/** Frees every weight of a model (a tied head once). */
export function freeModelWeights(backend: Backend, weights: ModelWeights): void {
  const all = new Set<Weight>([weights.embed, weights.norm, weights.lmHead]);
  for (const l of weights.layers) for (const w of Object.values(l)) all.add(w);
  for (const w of all) backend.free(w);
}

/** Bytes a float tensor of `shape` takes in a checkpoint of `dtype`. */
function checkpointBytes(dtype: string, shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : dtype === 'F64' ? 8 : 2);
}
