import type { HostWeight, KVCache, KVCacheSpec, Tensor, Weight, WeightFormat } from '../types.js';
import { BackendUsageError } from '../../errors.js';
import { kvValueBytes } from '../usage-checks.js';

/** A float32 activation matrix of the reference backend: a (sub)array of a parent's storage. */
export class RefTensor implements Tensor {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly data: Float32Array,
    /** The tensor that owns the storage; itself for a root tensor. */
    readonly root: RefTensor | undefined,
  ) {}
  freed = false;

  /** @internal */
  get owner(): RefTensor {
    return this.root ?? this;
  }
}

/** A weight of the reference backend: it keeps the canonical host layout and dequantizes on use. */
export class RefWeight implements Weight {
  readonly format: WeightFormat;
  readonly rows: number;
  readonly cols: number;
  freed = false;
  constructor(readonly host: HostWeight, readonly name: string, readonly bytes: number) {
    this.format = host.format;
    this.rows = host.rows;
    this.cols = host.cols;
  }
}

/**
 * A KV cache of the reference backend: per layer, keys and values `[maxTokens, kvHeads * headDim]`. An
 * f16 cache holds the values `writeKV` rounded (in f32 arrays: the rounding is the semantics; `bytes`
 * counts what the halves would take).
 */
export class RefKVCache implements KVCache {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  readonly bytes: number;
  freed = false;
  constructor(readonly spec: KVCacheSpec) {
    const width = spec.kvHeads * spec.headDim;
    this.keys = [];
    this.values = [];
    for (let l = 0; l < spec.layers; l++) {
      this.keys.push(new Float32Array(spec.maxTokens * width));
      this.values.push(new Float32Array(spec.maxTokens * width));
    }
    this.bytes = 2 * spec.layers * spec.maxTokens * width * kvValueBytes(spec.dtype);
  }
}

/** Casts and checks a tensor handed to the reference backend. */
export function tensorOf(t: Tensor, what: string): RefTensor {
  if (!(t instanceof RefTensor)) throw new BackendUsageError(`${what}: not a tensor of the reference backend`);
  if (t.owner.freed) throw new BackendUsageError(`${what}: tensor used after free`);
  return t;
}

/** Casts and checks a weight handed to the reference backend. */
export function weightOf(w: Weight, what: string): RefWeight {
  if (!(w instanceof RefWeight)) throw new BackendUsageError(`${what}: not a weight of the reference backend`);
  if (w.freed) throw new BackendUsageError(`${what}: weight '${w.name}' used after free`);
  return w;
}

/** Casts and checks a KV cache handed to the reference backend. */
export function cacheOf(c: KVCache, what: string): RefKVCache {
  if (!(c instanceof RefKVCache)) throw new BackendUsageError(`${what}: not a KV cache of the reference backend`);
  if (c.freed) throw new BackendUsageError(`${what}: KV cache used after free`);
  return c;
}

