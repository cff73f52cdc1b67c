/** Element types a safetensors file can declare, with their size in bytes. */
export const DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
} as const;

/** A safetensors element type this library reads. */
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

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

/** A safetensors file that breaks the format; the message names the file and the problem. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
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
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  let previous: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.end > dataBytes) throw new SafetensorsError(file, `tensor '${t.name}' ends at byte ${t.end} of a data section of ${dataBytes} bytes (file truncated?)`);
    if (previous && t.begin < previous.end) throw new SafetensorsError(file, `tensors '${previous.name}' and '${t.name}' overlap`);
    previous = t;
  }
  return { headerBytes: json.byteLength, dataOffset, tensors, metadata };
}

function parseMetadata(file: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new SafetensorsError(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ value '${k}' is not a string`);
  }
  return entry as Record<string, string>;
}

function parseEntry(file: string, name: string, entry: unknown): TensorInfo {
  if (typeof entry !== 'object' || entry === null) throw new SafetensorsError(file, `tensor '${name}' has no header object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new SafetensorsError(file, `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(file, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new SafetensorsError(file, `tensor '${name}' has data_offsets out of order (${begin} > ${end})`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end - begin !== expected) throw new SafetensorsError(file, `tensor '${name}' spans ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`);
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end };
}
