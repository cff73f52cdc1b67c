import { BackendUsageError, kvValueBytes, Q4_K_BLOCK_BYTES, QK_K } from '@qwen2-ts/core';
import type { HostWeight, KVCache, KVCacheSpec, Tensor, Weight, WeightFormat } from '@qwen2-ts/core';
import type { Arena } from './arena.js';

export { BackendUsageError };

/** An f32 activation matrix in the first memory. */
export class WasmTensor implements Tensor {
  freed = false;
  /**
   * @param ptr - byte offset in memory 0
   * @param root - the allocated tensor this is a view of (undefined for an allocation)
   */
  constructor(readonly owner: object, readonly rows: number, readonly cols: number, readonly ptr: number, readonly root: WasmTensor | undefined) {}

  get bytes(): number {
    return this.rows * this.cols * 4;
  }

  /** Whether this tensor (or the allocation it views) was freed. */
  get dead(): boolean {
    return this.freed || (this.root?.freed ?? false);
  }
}

/**
 * A weight in one arena: `ptr` is the data (quants for q8_0/q4_0; for q4_k everything, its scales and
 * mins included: assembly/q4_k_layout.ts), `scales` the f16 scales (0 if none).
 */
export class WasmWeight implements Weight {
  freed = false;
  constructor(
    readonly owner: object,
    readonly name: string,
    readonly format: WeightFormat,
    readonly rows: number,
    readonly cols: number,
    readonly bytes: number,
    readonly arena: Arena,
    readonly ptr: number,
    readonly scales: number,
  ) {}
}

/**
 * A per-sequence KV cache in memory 0, f32 or f16. Layout: for each layer, keys then values, each
 * `[kvHeads][maxTokens][headDim]`, so that attention reads one head's history contiguously.
 */
export class WasmKVCache implements KVCache {
  freed = false;
  /** Whether an infinity or NaN was ever stored in this f16 cache (attention then widens exponent 31). */
  heldNonFinite = false;
  constructor(readonly owner: object, readonly spec: KVCacheSpec, readonly ptr: number) {}

  /** Bytes a cache of `spec` occupies. */
  static bytesOf(spec: KVCacheSpec): number {
    return spec.layers * 2 * WasmKVCache.halfBytesOf(spec);
  }

  /** Bytes of the keys (or values) of one layer of a cache of `spec`. */
  private static halfBytesOf(spec: KVCacheSpec): number {
    return spec.kvHeads * spec.maxTokens * spec.headDim * kvValueBytes(spec.dtype);
  }

  get bytes(): number {
    return WasmKVCache.bytesOf(this.spec);
  }

  /** Bytes of the keys (or values) of one layer. */
  get halfBytes(): number {
    return WasmKVCache.halfBytesOf(this.spec);
  }

  /** Offset of the keys of `layer`; the values follow at + halfBytes. */
  keys(layer: number): number {
    return this.ptr + layer * 2 * this.halfBytes;
  }
}

/** Bytes of each part a weight of this format and shape occupies in its own format: [data], or [quants, scales]. */
export function storedParts(format: WeightFormat, rows: number, cols: number): number[] {
  const n = rows * cols;
  switch (format) {
    case 'f32':
      return [n * 4];
    case 'f16':
    case 'bf16':
      return [n * 2];
    case 'q8_0':
      return [n, (n / 32) * 2];
    case 'q4_0':
      return [n / 2, (n / 32) * 2];
    case 'q4_k':
      // One part: per 256 values 128 bytes of nibbles and 24 of scales, mins, d and dmin (the 144 bytes
      // of ggml's block, repacked in place: assembly/q4_k_layout.ts).
      return [(n / QK_K) * Q4_K_STORED_BYTES];
  }
}

/** Bytes this backend stores per q4_k super-block (ggml's 144 repacked: assembly/q4_k_layout.ts). */
export const Q4_K_STORED_BYTES = 152;

/**
 * Bytes from a q4_k weight's storage to where its host blocks go before the in-place repack
 * (repack_q4_k): 8 per super-block, so that they end where the storage ends.
 */
export function q4kHostOffset(rows: number, cols: number): number {
  return ((rows * cols) / QK_K) * (Q4_K_STORED_BYTES - Q4_K_BLOCK_BYTES);
}

/** Bytes a host weight occupies in its own format (data, or quants + scales). */
export function storedBytes(w: HostWeight): number {
  return storedParts(w.format, w.rows, w.cols).reduce((a, b) => a + b, 0);
}

/**
 * Checks a host weight's shape and array lengths against its format.
 * @throws BackendUsageError naming the weight and the problem
 */
export function validateHostWeight(w: HostWeight, name: string): void {
  const { rows, cols } = w;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new BackendUsageError(`uploadWeight '${name}': invalid shape [${rows}, ${cols}]`);
  const n = rows * cols;
  const expect = (what: string, got: number, want: number): void => {
    if (got !== want) throw new BackendUsageError(`uploadWeight '${name}' (${w.format} [${rows}, ${cols}]): ${what} has ${got} elements, expected ${want}`);
  };
  switch (w.format) {
    case 'f32':
      if (!(w.data instanceof Float32Array)) throw new BackendUsageError(`uploadWeight '${name}': f32 data must be a Float32Array`);
      expect('data', w.data.length, n);
      return;
    case 'f16':
    case 'bf16':
      if (!(w.data instanceof Uint16Array)) throw new BackendUsageError(`uploadWeight '${name}': ${w.format} data must be a Uint16Array`);
      expect('data', w.data.length, n);
      return;
    case 'q8_0':
    case 'q4_0':
      if (cols % 32 !== 0) throw new BackendUsageError(`uploadWeight '${name}': ${w.format} needs cols % 32 === 0, got ${cols}`);
      expect('scales', w.scales.length, n / 32);
      expect('quants', w.quants.length, w.format === 'q8_0' ? n : n / 2);
      return;
    case 'q4_k':
      if (cols % QK_K !== 0) throw new BackendUsageError(`uploadWeight '${name}': q4_k needs cols % ${QK_K} === 0 (whole super-blocks of ${QK_K} values), got ${cols}`);
      if (!(w.blocks instanceof Uint8Array)) throw new BackendUsageError(`uploadWeight '${name}': q4_k blocks must be a Uint8Array`);
      expect('blocks (bytes)', w.blocks.length, (n / QK_K) * Q4_K_BLOCK_BYTES);
      return;
    default:
      throw new BackendUsageError(`uploadWeight '${name}': unknown weight format '${(w as { format: string }).format}'`);
  }
}
