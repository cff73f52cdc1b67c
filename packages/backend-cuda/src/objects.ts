import type { DeviceTokens, KVCache, KVCacheDtype, KVCacheSpec, Tensor, Weight, WeightFormat } from '@qwen2-ts/core';
import { BackendUsageError, kvValueBytes } from '@qwen2-ts/core';

let nextId = 1;

/** Storage shared by a root tensor and its views. */
export class TensorStorage {
  readonly id = nextId++;
  freed = false;
  constructor(readonly ptr: number, readonly bytes: number) {}
}

/** A float32 activation matrix on the device: `rows` rows of `storage` starting at `rowStart`. */
export class CudaTensor implements Tensor {
  constructor(
    readonly storage: TensorStorage,
    readonly rowStart: number,
    readonly rows: number,
    readonly cols: number,
    /** Whether this is a view (freed with its parent). */
    readonly isView: boolean,
  ) {}

  /** Device address of the first element. */
  get ptr(): number {
    return this.storage.ptr + this.rowStart * this.cols * 4;
  }

  /** Identity for CUDA graph keys: the storage, the row range and the shape. */
  get key(): string {
    return `t${this.storage.id}@${this.rowStart}[${this.rows}x${this.cols}]`;
  }

  get elements(): number {
    return this.rows * this.cols;
  }
}

/** A weight on the device (one allocation: values or quants, then scales). */
export class CudaWeight implements Weight {
  readonly id = nextId++;
  freed = false;
  constructor(
    readonly format: WeightFormat,
    readonly rows: number,
    readonly cols: number,
    readonly bytes: number,
    readonly name: string,
    readonly ptr: number,
    /** Device address of the scales, 0 for unquantized formats. */
    readonly scalesPtr: number,
    /** Format code shared with the kernels. */
    readonly code: number,
  ) {}

  /** The five numbers a native call takes for a weight. */
  args(): [number, number, number, number, number] {
    return [this.ptr, this.scalesPtr, this.code, this.rows, this.cols];
  }
}

/** Codes of the KV cache dtypes shared with the kernels (native/kernels.h KVDtypeCode). */
export const KV_DTYPE_CODE: Readonly<Record<KVCacheDtype, number>> = { f32: 0, f16: 1 };

/**
 * A per-sequence KV cache: per layer, keys then values, each `[kvHeads][maxTokens][headDim]` of the
 * spec's dtype (f32, or f16 as the kernels round it).
 */
export class CudaKVCache implements KVCache {
  readonly id = nextId++;
  freed = false;
  constructor(readonly spec: KVCacheSpec, readonly ptr: number, readonly bytes: number) {}

  /** The native code of the cache's dtype, which every native call that writes or reads it takes. */
  get dtypeCode(): number {
    return KV_DTYPE_CODE[this.spec.dtype ?? 'f32'];
  }

  /** Bytes of one layer's keys (the values follow). */
  get layerHalfBytes(): number {
    return this.spec.kvHeads * this.spec.maxTokens * this.spec.headDim * kvValueBytes(this.spec.dtype);
  }

  keysPtr(layer: number): number {
    return this.ptr + 2 * layer * this.layerHalfBytes;
  }

  valuesPtr(layer: number): number {
    return this.keysPtr(layer) + this.layerHalfBytes;
  }
}

/** Bytes of a KV cache of `spec`: keys and values of every layer, at the spec's element size. */
export function kvCacheBytes(spec: KVCacheSpec): number {
  return 2 * spec.layers * spec.kvHeads * spec.maxTokens * spec.headDim * kvValueBytes(spec.dtype);
}

/** Casts and checks a tensor handed to the CUDA backend. */
export function tensorOf(t: Tensor, what: string): CudaTensor {
  if (!(t instanceof CudaTensor)) throw new BackendUsageError(`${what}: not a tensor of the CUDA backend`);
  if (t.storage.freed) throw new BackendUsageError(`${what}: tensor used after free`);
  return t;
}

/** Casts and checks a weight handed to the CUDA backend. */
export function weightOf(w: Weight, what: string): CudaWeight {
  if (!(w instanceof CudaWeight)) throw new BackendUsageError(`${what}: not a weight of the CUDA backend`);
  if (w.freed) throw new BackendUsageError(`${what}: weight '${w.name}' used after free`);
  return w;
}

/** Casts and checks a KV cache handed to the CUDA backend. */
export function cacheOf(c: KVCache, what: string): CudaKVCache {
  if (!(c instanceof CudaKVCache)) throw new BackendUsageError(`${what}: not a KV cache of the CUDA backend`);
  if (c.freed) throw new BackendUsageError(`${what}: KV cache used after free`);
  return c;
}


/**
 * Ids an argmax kept on the device (the CUDA backend's `argmaxOnDevice`): at `ptr` until the next
 * argmax overwrites them (`generation` tells), and in readback slot `slot` until they are read.
 */
export class CudaDeviceTokens implements DeviceTokens {
  private cached: Promise<Int32Array> | undefined;
  private raw: Int32Array | undefined;
  constructor(
    readonly owner: object,
    readonly count: number,
    readonly ptr: number,
    readonly slot: number,
    readonly generation: number,
    /** Waits for the slot's copy and returns the ids as the kernel wrote them (-1: no orderable value). */
    private readonly readSlot: () => Int32Array,
    /** The ids `ids()` resolves to, or a throw for a row without a choice. */
    private readonly check: (raw: Int32Array) => Int32Array,
  ) {}
  /** Reads the ids out of their slot now, unless already read (before the slot is reused). */
  settle(): void {
    this.raw ??= this.readSlot();
  }
  ids(): Promise<Int32Array> {
    this.cached ??= Promise.resolve().then(() => {
      this.settle();
      return this.check(this.raw!);
    });
    return this.cached;
  }
}
