import type { Backend, HostWeight, WeightFormat } from '../backend/types.js';
import { nativeFormat, toHostWeight, type QuantizeBlocks } from './convert.js';

/**
 * Tensors whose checkpoint bytes exceed this are read and converted a slice of rows at a time when the
 * source can read byte ranges, so quantizing the 1 GB embedding of a 7B model never holds its bf16
 * bytes beside the result (the difference between ~1.3x and ~1.05x peak memory at load).
 */
export const SLICED_READ_BYTES = 64 << 20;

/** A tensor source that may read byte ranges of a tensor (`@qwen2-ts/loader`'s Checkpoint does). */
export interface RangeReadable {
  read(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  readRange?(name: string, byteOffset: number, byteLength: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /** A GGUF tensor's ggml blocks as stored (see TensorSource.readGgmlBlocks). */
  readGgmlBlocks?(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

/** One read of a tensor's checkpoint bytes: the whole tensor, or a byte range of it (a slice of rows). */
export interface TensorRead {
  name: string;
  /** Bytes read. */
  byteLength: number;
  /** Where the range starts in the tensor; absent for a whole-tensor read. */
  byteOffset?: number;
  /** The tensor's ggml blocks as stored (`readGgmlBlocks`), not its values. */
  blocks?: boolean;
}

/** Options of {@link readHostWeight} (and of {@link tensorReads}, which plans its reads). */
export interface ReadHostWeightOptions {
  signal?: AbortSignal;
  /** Checkpoint bytes per slice (tests use small values; default {@link SLICED_READ_BYTES}). */
  sliceBytes?: number;
  /** Where the sliced result goes (a backend's {@link Backend.weightBuffer}); default: new arrays. */
  allocate?: (format: WeightFormat, rows: number, cols: number) => Promise<HostWeight>;
  /** A backend's {@link Backend.quantizeBlocks} (default: core's quantizers). */
  quantize?: QuantizeBlocks;
}

/**
 * The reads {@link readHostWeight} makes for one tensor, in order: one whole read when the tensor is
 * small, is 1-D, the source cannot read ranges, or it keeps its format with nowhere to slice into;
 * otherwise one range per slice of rows. Exposed so a loader can fetch the next reads ahead of time.
 * @param ranges - whether the source can read byte ranges
 */
export function tensorReads(name: string, dtype: string, shape: readonly number[], target: WeightFormat | 'auto', ranges: boolean, options: Pick<ReadHostWeightOptions, 'sliceBytes' | 'allocate'> = {}): TensorRead[] {
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = shape[shape.length - 1]!;
  const rowBytes = cols * elementBytes(dtype);
  const sliceBytes = options.sliceBytes ?? SLICED_READ_BYTES;
  const native = nativeFormat(dtype, name);
  const keepsBytes = (target === 'auto' ? native : target) === native;
  if (!ranges || rows * rowBytes <= sliceBytes || (keepsBytes && !options.allocate) || shape.length !== 2) return [{ name, byteLength: rows * rowBytes }];
  const sliceRows = Math.max(1, Math.floor(sliceBytes / rowBytes));
  const reads: TensorRead[] = [];
  for (let r = 0; r < rows; r += sliceRows) {
    reads.push({ name, byteOffset: r * rowBytes, byteLength: Math.min(sliceRows, rows - r) * rowBytes });
  }
  return reads;
}

/**
 * Reads one tensor and converts it to `target`: whole when it is small or the source cannot read
 * ranges; otherwise slice by slice into a preallocated result ({@link tensorReads} says which). A tensor
 * kept in its own format is sliced only into `allocate`'s storage (then the checkpoint bytes never sit
 * beside the backend's copy: 0.5B bf16 through the CLI peaked at 1.44x of the weights with whole
 * reads); into new arrays slicing would save nothing.
 */
export async function readHostWeight(source: RangeReadable, name: string, dtype: string, shape: readonly number[], target: WeightFormat | 'auto', options: ReadHostWeightOptions = {}): Promise<HostWeight> {
  const reads = tensorReads(name, dtype, shape, target, source.readRange !== undefined, options);
  if (reads[0]!.byteOffset === undefined) return toHostWeight(await source.read(name, { signal: options.signal }), dtype, shape, target, name, options.quantize);
  const rows = shape[0]!;
  const cols = shape[1]!;
  const format = target === 'auto' ? nativeFormat(dtype, name) : target;
  const rowBytes = cols * elementBytes(dtype);
  const out = options.allocate ? await options.allocate(format, rows, cols) : allocateHostWeight(format, rows, cols);
  for (const { byteOffset, byteLength } of reads) {
    const bytes = await source.readRange!(name, byteOffset!, byteLength, { signal: options.signal });
    copyRows(toHostWeight(bytes, dtype, [byteLength / rowBytes, cols], format, name, options.quantize), out, byteOffset! / rowBytes);
  }
  return out;
}

/** Bytes per value of a checkpoint float dtype (F64 and F32; the 2-byte formats otherwise). */
function elementBytes(dtype: string): number {
  return dtype === 'F32' ? 4 : dtype === 'F64' ? 8 : 2;
}

/** An empty host weight of a format (validation of `cols` against the block size is the caller's). */
export function allocateHostWeight(format: WeightFormat, rows: number, cols: number): HostWeight {
  const n = rows * cols;
  switch (format) {
    case 'f32': return { format, rows, cols, data: new Float32Array(n) };
    case 'f16':
    case 'bf16': return { format, rows, cols, data: new Uint16Array(n) };
    case 'q8_0': return { format, rows, cols, scales: new Uint16Array(n / 32), quants: new Int8Array(n) };
    case 'q4_0': return { format, rows, cols, scales: new Uint16Array(n / 32), quants: new Uint8Array(n / 2) };
    case 'q4_k': return { format, rows, cols, blocks: new Uint8Array((n / 256) * 144) };
  }
}

/** Copies `part` (same format and columns) into `out` starting at row `row`. */
function copyRows(part: HostWeight, out: HostWeight, row: number): void {
  const at = row * out.cols;
  if ('data' in part && 'data' in out) (out.data as Float32Array | Uint16Array).set(part.data, at);
  else if ('scales' in part && 'scales' in out) {
    out.scales.set(part.scales, at / 32);
    if (part.format === 'q8_0' && out.format === 'q8_0') out.quants.set(part.quants, at);
    else if (part.format === 'q4_0' && out.format === 'q4_0') out.quants.set(part.quants, at / 2);
  }
}
