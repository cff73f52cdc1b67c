import { SafetensorsError } from './errors.js';
import type { RandomAccessFile } from './random-access.js';

/** Element types a safetensors file can declare, with their size in bytes. */
export const DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
} as const;

/** A safetensors element type this library reads. */
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/**
 * Largest JSON header accepted, as in the reference Rust implementation (`safetensors` crate): a real
 * header is a few hundred KB; a bigger claim is a corrupt or hostile file and is refused before
 * anything of that size is allocated.
 */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry in a safetensors header, offsets relative to the start of the data section. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte offset of the first element, relative to the data section. */
  begin: number;
  /** Byte offset one past the last element, relative to the data section. */
  end: number;
}

/** A parsed safetensors header. */
export interface SafetensorsHeader {
  /** Size in bytes of the JSON header (the 8-byte length prefix excluded). */
  headerBytes: number;
  /** Absolute byte offset of the data section in the file. */
  dataOffset: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export { SafetensorsError };

/**
 * Decodes the 8-byte little-endian header length prefix and checks it against the file size and
 * {@link MAX_HEADER_BYTES}, so a hostile claim (say 100 GB) fails before any allocation.
 * @param file - name used in error messages
 * @param prefix - the first bytes of the file (at least 8 unless the file is shorter)
 * @param fileSize - total size of the file in bytes
 * @returns the header length in bytes
 * @throws {@link SafetensorsError} when the file is too short or the length is impossible
 */
export function parseHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(file, `truncated: ${Math.min(fileSize, prefix.byteLength)} bytes, fewer than the 8-byte header length prefix`);
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(fileSize - 8)) {
    throw new SafetensorsError(file, `header length ${length} bytes is larger than the ${fileSize - 8} bytes that follow the prefix (truncated or not a safetensors file)`);
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${length} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  if (length < 2n) throw new SafetensorsError(file, `header length ${length} bytes is too small for a JSON object`);
  return Number(length);
}

/**
 * Parses the JSON header of a safetensors file and checks it against the file size: every tensor's
 * byte range must lie inside the data section, match its shape and dtype, and not overlap another.
 * @param file - name used in error messages
 * @param json - the header bytes (after the 8-byte length prefix)
 * @param fileSize - total size of the file in bytes
 * @throws {@link SafetensorsError} on any violation of the format
 */
export function parseSafetensorsHeader(file: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  const dataOffset = 8 + json.byteLength;
  if (dataOffset > fileSize) throw new SafetensorsError(file, `header of ${json.byteLength} bytes does not fit in a file of ${fileSize} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(file, 'header is not a JSON object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, entry);
      continue;
    }
    tensors.set(name, parseEntry(file, name, entry));
  }
  const dataBytes = fileSize - dataOffset;
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.end > dataBytes) {
      throw new SafetensorsError(file, `tensor '${t.name}' ends at byte ${t.end} of a data section of ${dataBytes} bytes (offsets out of range or file truncated)`);
    }
    // Zero-size tensors occupy no bytes and cannot overlap anything.
    if (previous && t.begin < previous.end && t.end > t.begin) {
      throw new SafetensorsError(file, `tensors '${previous.name}' [${previous.begin}, ${previous.end}) and '${t.name}' [${t.begin}, ${t.end}) overlap`);
    }
    if (t.end > t.begin) previous = t;
  }
  return { headerBytes: json.byteLength, dataOffset, tensors, metadata };
}

/**
 * Reads and validates the header of a safetensors file with two small positional reads.
 * @param file - the opened file
 * @param signal - aborts the reads
 * @throws {@link SafetensorsError} on any violation of the format
 */
export async function readSafetensorsHeader(file: RandomAccessFile, signal?: AbortSignal): Promise<SafetensorsHeader> {
  const prefix = await file.read(0, 8, signal);
  const length = parseHeaderLength(file.name, prefix, file.size);
  const json = await file.read(8, length, signal);
  if (json.byteLength !== length) throw new SafetensorsError(file.name, `truncated: header ends after ${json.byteLength} of ${length} bytes`);
  return parseSafetensorsHeader(file.name, json, file.size);
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new SafetensorsError(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ value '${k}' is not a string`);
  }
  return entry as Record<string, string>;
}

function parseEntry(file: string, name: string, entry: unknown): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new SafetensorsError(file, `tensor '${name}' has no header object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new SafetensorsError(file, `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(file, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new SafetensorsError(file, `tensor '${name}' has data_offsets out of order (${begin} > ${end})`);
  const width = DTYPE_BYTES[dtype as SafetensorsDtype];
  // Multiply step by step so a hostile shape cannot overflow into a "matching" size.
  let expected = width;
  for (const d of shape as number[]) {
    expected *= d;
    if (!Number.isSafeInteger(expected)) throw new SafetensorsError(file, `tensor '${name}' shape ${JSON.stringify(shape)} is too large`);
  }
  if (end - begin !== expected) throw new SafetensorsError(file, `tensor '${name}' spans ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`);
  return { name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], begin, end };
}
