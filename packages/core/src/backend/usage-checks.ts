import { BackendUsageError } from '../errors.js';
import type { KVCacheDtype, KVCacheSpec, Tensor } from './types.js';

// Argument checks every backend makes before an op, with one wording, so that the conformance suite
// sees the same errors from each backend and backends do not keep copies of the reference's checks.

/** Throws unless a tensor has the expected shape. */
export function expectShape(t: Pick<Tensor, 'rows' | 'cols'>, rows: number, cols: number, what: string): void {
  if (t.rows !== rows || t.cols !== cols) throw new BackendUsageError(`${what}: expected [${rows}, ${cols}], got [${t.rows}, ${t.cols}]`);
}

/** Throws a RangeError for a token id outside an embedding table of `vocab` rows. */
export function checkTokenIds(ids: ArrayLike<number>, vocab: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new RangeError(`embed: token id ${id} outside the vocabulary of ${vocab}`);
  }
}

/** Throws unless `layer` is a layer of a cache with `spec`. */
export function checkLayer(spec: KVCacheSpec, layer: number, what: string): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= spec.layers) throw new BackendUsageError(`${what}: layer ${layer} outside a cache of ${spec.layers} layers`);
}

/**
 * The checks of `createKVCache`: positive integer sizes and a known {@link KVCacheSpec.dtype}. Returns a
 * copy of the spec (the caller's object may change later) with the dtype resolved.
 */
export function checkKVCacheSpec(spec: KVCacheSpec): KVCacheSpec & { dtype: KVCacheDtype } {
  for (const k of ['layers', 'kvHeads', 'headDim', 'maxTokens'] as const) {
    if (!Number.isInteger(spec[k]) || spec[k] < 1) throw new BackendUsageError(`createKVCache: ${k} must be a positive integer, got ${spec[k]}`);
  }
  if (spec.dtype !== undefined && spec.dtype !== 'f32' && spec.dtype !== 'f16') {
    throw new BackendUsageError(`createKVCache: dtype must be 'f32' or 'f16', got ${JSON.stringify(spec.dtype)}`);
  }
  return { layers: spec.layers, kvHeads: spec.kvHeads, headDim: spec.headDim, maxTokens: spec.maxTokens, dtype: spec.dtype ?? 'f32' };
}

/** Bytes one stored key or value takes in a cache of `dtype` (default f32). */
export function kvValueBytes(dtype: KVCacheDtype = 'f32'): 2 | 4 {
  return dtype === 'f16' ? 2 : 4;
}

/** The checks of `beginPass`: no pass open, at least one token, a position >= 0. */
export function checkBeginPass(open: boolean, tokens: number, startPos: number): void {
  if (open) throw new BackendUsageError('beginPass: a pass is already open (missing endPass)');
  if (!Number.isInteger(tokens) || tokens < 1 || !Number.isInteger(startPos) || startPos < 0) {
    throw new BackendUsageError(`beginPass: invalid pass of ${tokens} tokens at ${startPos}`);
  }
}

/** The check of `endPass`: a pass is open. */
export function checkEndPass(open: boolean): void {
  if (!open) throw new BackendUsageError('endPass: no pass is open');
}
