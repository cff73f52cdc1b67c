import type { DeviceTokens, KVCache, KVCacheDtype, KVCacheSpec, Tensor, Weight, WeightFormat } from '@qwen2-ts/core';

/** A GPU buffer with a stable id (bind groups are cached by the ids of what they bind). */
export interface Buf {
  readonly id: number;
  readonly buffer: GPUBuffer;
  readonly size: number;
}

/** Rows `r0 .. r0+rows-1` of a weight in one binding-sized buffer (q formats: quants, then scales). */
export interface WeightChunk {
  readonly r0: number;
  readonly rows: number;
  readonly data: Buf;
}

/** A weight on the device: row chunks that each fit `maxStorageBufferBindingSize`. */
export class GpuWeight implements Weight {
  freed = false;
  constructor(
    readonly name: string,
    readonly format: WeightFormat,
    readonly rows: number,
    readonly cols: number,
    /** Padded columns of the stored rows. */
    readonly kp: number,
    readonly chunks: readonly WeightChunk[],
    /** rows === 1 only: the values as f32, for norms and biases. */
    readonly vec: Buf | undefined,
    readonly bytes: number,
  ) {}
}

/** An activation matrix, or a view of rows of one (`root` set, sharing its buffer). */
export class GpuTensor implements Tensor {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly buf: Buf,
    /** Offset of row 0 in f32 elements. */
    readonly offset: number,
    readonly root: GpuTensor | undefined,
  ) {}
  freed = false;
  get owner(): GpuTensor {
    return this.root ?? this;
  }
}

/**
 * A KV cache: per layer a key and a value buffer laid out `[kvHead][position][headDim]`, in f32 or in
 * halves packed two per `u32` (`dtype`, the spec's with its default; see wgsl/kv-cache.ts).
 */
export class GpuKVCache implements KVCache {
  freed = false;
  constructor(readonly spec: KVCacheSpec, readonly dtype: KVCacheDtype, readonly keys: readonly Buf[], readonly values: readonly Buf[], readonly bytes: number) {}
}

/**
 * Token ids an argmax wrote to the results buffer (`count` u32 at `offset`), read back in the background.
 * `generation` tells whether they are still there (any later use of the results buffer may overwrite them).
 */
export class GpuDeviceTokens implements DeviceTokens {
  constructor(
    readonly owner: object,
    readonly count: number,
    readonly buf: Buf,
    readonly offset: number,
    readonly generation: number,
    private readonly read: Promise<Int32Array>,
  ) {
    read.catch(() => {}); // a rejection is the reader's to see, through ids()
  }
  ids(): Promise<Int32Array> {
    return this.read;
  }
}
