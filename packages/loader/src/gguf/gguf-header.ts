/**
 * Parser of the header of a GGUF file (llama.cpp's format, versions 2 and 3): metadata key/values and
 * tensor descriptions, read from a random-access file without reading the tensor data.
 */
import { GgufError } from '../errors.js';
import type { RandomAccessFile } from '../random-access.js';
import { ggmlType, type GgmlType } from './ggml-quants.js';

/** A metadata value: numbers (64-bit integers beyond 2^53 as bigint), booleans, strings and arrays of them. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** One tensor as the header describes it. */
export interface GgufTensorInfo {
  name: string;
  /** ggml's dimensions, fastest-varying first (`ne[0]` is a row's length): the reverse of a PyTorch shape. */
  dims: number[];
  type: GgmlType;
  /** Absolute byte offset of its data in the file. */
  offset: number;
  byteLength: number;
}

/** A parsed GGUF header. */
export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute offset of the data section (the header padded to `general.alignment`). */
  dataOffset: number;
  alignment: number;
}

/** 'GGUF' read as a little-endian u32. */
const MAGIC = 0x46554747;
/**
 * Largest header accepted: Qwen2's is about 6 MB (151,936 tokens and 151,387 merges); a bigger one is a
 * corrupt or hostile file, refused before it makes us read gigabytes of strings.
 */
export const MAX_GGUF_HEADER_BYTES = 256 * 2 ** 20;
/** Longest string accepted (a chat template is a few KB). */
const MAX_STRING_BYTES = 16 * 2 ** 20;
const MAX_DIMS = 4;
const CHUNK = 2 ** 20;

/** Value type ids of GGUF metadata. */
const enum ValueType { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }
const FIXED_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Sequential little-endian reads over a RandomAccessFile, fetching it a chunk at a time. */
class HeaderCursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  /** File offset of buf[0]. */
  private base = 0;
  private at = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly file: RandomAccessFile, private readonly signal?: AbortSignal) {}

  get offset(): number { return this.base + this.at; }

  private fail(problem: string): never { throw new GgufError(this.file.name, problem); }

  /** Makes `n` bytes available at the cursor, or fails naming what was being read. */
  async need(n: number, what: string): Promise<void> {
    if (this.at + n <= this.buf.byteLength) return;
    const start = this.offset;
    if (start + n > this.file.size) this.fail(`truncated: ${what} at byte ${start} needs ${n} bytes, the file has ${this.file.size}`);
    if (start + n > MAX_GGUF_HEADER_BYTES) this.fail(`header exceeds the ${MAX_GGUF_HEADER_BYTES}-byte limit while reading ${what} (corrupt or not a GGUF file)`);
    const length = Math.min(this.file.size - start, Math.max(n, CHUNK));
    const kept = this.buf.subarray(this.at);
    const fresh = await this.file.read(start + kept.byteLength, length - kept.byteLength, this.signal);
    if (fresh.byteLength < length - kept.byteLength) this.fail(`truncated: ${what} at byte ${start} (file changed while it was read?)`);
    const next = new Uint8Array(length);
    next.set(kept, 0);
    next.set(fresh, kept.byteLength);
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.base = start;
    this.at = 0;
  }

  async u32(what: string): Promise<number> { await this.need(4, what); const v = this.view.getUint32(this.at, true); this.at += 4; return v; }

  /** A u64 that must be a safe integer (counts, lengths, dimensions, offsets). */
  async count(what: string): Promise<number> {
    await this.need(8, what);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, too large (corrupt file?)`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const length = await this.count(`length of ${what}`);
    if (length > MAX_STRING_BYTES) this.fail(`${what} claims ${length} bytes, over the ${MAX_STRING_BYTES}-byte limit (corrupt file?)`);
    await this.need(length, what);
    return this.take(length, what);
  }

  /**
   * The next string when its length and bytes are already buffered, else undefined (nothing consumed):
   * a vocabulary is 300,000 strings, and an await for each took most of the header's time.
   */
  stringNow(what: string): string | undefined {
    if (this.at + 8 > this.buf.byteLength) return undefined;
    const high = this.view.getUint32(this.at + 4, true);
    const length = this.view.getUint32(this.at, true);
    if (high !== 0 || length > MAX_STRING_BYTES || this.at + 8 + length > this.buf.byteLength) return undefined;
    this.at += 8;
    return this.take(length, what);
  }

  /** Decodes `length` buffered bytes as UTF-8 (ASCII, most tokens, without the decoder). */
  private take(length: number, what: string): string {
    const start = this.at;
    this.at += length;
    const bytes = this.buf;
    if (length <= 64) {
      let ascii = true;
      for (let i = start; i < start + length; i++) if (bytes[i]! >= 0x80) { ascii = false; break; }
      if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, start + length) as unknown as number[]);
    }
    try {
      return this.decoder.decode(bytes.subarray(start, start + length));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /** One metadata value of type `type` (arrays nest). */
  async value(type: number, what: string, depth = 0): Promise<GgufValue> {
    if (type === ValueType.STRING) return this.string(what);
    if (type === ValueType.ARRAY) {
      if (depth > 2) this.fail(`${what}: arrays nested too deep`);
      const elementType = await this.u32(`element type of ${what}`);
      const n = await this.count(`length of ${what}`);
      const size = FIXED_BYTES[elementType];
      // Every element takes at least one byte (a string at least 8), so a length past the file's end is a lie.
      if (n * (size ?? 8) > this.file.size - this.offset) this.fail(`${what} claims ${n} elements, more than the file holds`);
      const out: GgufValue[] = new Array(n);
      if (elementType === ValueType.STRING) {
        for (let i = 0; i < n; i++) out[i] = this.stringNow(what) ?? await this.string(what);
      } else if (size !== undefined) {
        for (let i = 0; i < n; i++) {
          if (this.at + size > this.buf.byteLength) await this.need(size, what);
          out[i] = this.scalar(elementType, what);
        }
      } else {
        for (let i = 0; i < n; i++) out[i] = await this.value(elementType, what, depth + 1);
      }
      return out;
    }
    const size = FIXED_BYTES[type];
    if (size === undefined) this.fail(`${what} has unknown value type ${type}`);
    await this.need(size, what);
    return this.scalar(type, what);
  }

  /** A buffered fixed-size value of type `type`. */
  private scalar(type: number, what: string): GgufValue {
    const v = this.view, at = this.at;
    this.at += FIXED_BYTES[type]!;
    switch (type) {
      case ValueType.U8: return v.getUint8(at);
      case ValueType.I8: return v.getInt8(at);
      case ValueType.U16: return v.getUint16(at, true);
      case ValueType.I16: return v.getInt16(at, true);
      case ValueType.U32: return v.getUint32(at, true);
      case ValueType.I32: return v.getInt32(at, true);
      case ValueType.F32: return shortestDecimal(v.getFloat32(at, true));
      case ValueType.BOOL: {
        const b = v.getUint8(at);
        if (b > 1) this.fail(`${what} is a bool holding ${b}`);
        return b === 1;
      }
      case ValueType.U64: return safe(v.getBigUint64(at, true));
      case ValueType.I64: return safe(v.getBigInt64(at, true));
      default: return v.getFloat64(at, true);
    }
  }
}

/**
 * The shortest decimal that rounds to the same f32: converters store config.json's `rms_norm_eps: 1e-6`
 * as the f32 9.99999997e-7; reading it back as 1e-6 gives the value the model was configured with
 * (and computes the same wherever it is used in f32).
 */
function shortestDecimal(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let digits = 1; digits < 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

function safe(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Reads and checks a GGUF header: magic, version (2 or 3), metadata and tensor descriptions, and that
 * every tensor lies inside the file at an aligned offset with whole blocks per row.
 * @throws {@link GgufError} naming the file and the problem (not GGUF, big-endian, truncated, a
 *   tensor type ggml does not define, overlapping or out-of-file data...)
 */
export async function readGgufHeader(file: RandomAccessFile, signal?: AbortSignal): Promise<GgufHeader> {
  const fail = (problem: string): never => { throw new GgufError(file.name, problem); };
  const c = new HeaderCursor(file, signal);
  if (file.size < 24) fail(`${file.size} bytes is too short for a GGUF header`);
  const magic = await c.u32('magic');
  if (magic !== MAGIC) fail('not a GGUF file (it does not start with "GGUF")');
  const version = await c.u32('version');
  if (version === 1) fail('GGUF version 1 (2023) is not supported; convert the model again with a current llama.cpp');
  // A big-endian file (llama.cpp can write them for s390x) has its version byte-swapped.
  if (version === 0x02000000 || version === 0x03000000) fail('big-endian GGUF files are not supported');
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = await c.count('tensor count');
  const kvCount = await c.count('metadata count');
  if (tensorCount > file.size / 24 || kvCount > file.size / 12) fail(`claims ${tensorCount} tensors and ${kvCount} metadata entries, more than the file can hold`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await c.string(`metadata key ${i}`);
    const type = await c.u32(`type of '${key}'`);
    if (metadata.has(key)) fail(`metadata key '${key}' appears twice`);
    metadata.set(key, await c.value(type, `metadata '${key}'`));
  }
  const alignmentValue = metadata.get('general.alignment') ?? 32;
  if (typeof alignmentValue !== 'number' || !Number.isInteger(alignmentValue) || alignmentValue < 1 || (alignmentValue & (alignmentValue - 1)) !== 0) {
    fail(`'general.alignment' must be a power of two, got ${String(alignmentValue)}`);
  }
  const alignment = alignmentValue as number;
  const raw: { name: string; dims: number[]; type: GgmlType; relative: number; byteLength: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string(`name of tensor ${i}`);
    if (names.has(name)) fail(`tensor '${name}' appears twice`);
    names.add(name);
    const nDims = await c.u32(`dimension count of '${name}'`);
    if (nDims < 1 || nDims > MAX_DIMS) fail(`tensor '${name}' has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await c.count(`dimension ${d} of '${name}'`));
    const typeId = await c.u32(`type of '${name}'`);
    const type = ggmlType(typeId) ?? fail(`tensor '${name}' has type id ${typeId}, which ggml does not define`);
    const relative = await c.count(`offset of '${name}'`);
    const elements = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements) || elements < 1) fail(`tensor '${name}' has dimensions [${dims.join(', ')}]`);
    if (dims[0]! % type.blockSize !== 0) fail(`tensor '${name}' (${type.name}) has rows of ${dims[0]} values, not whole blocks of ${type.blockSize}`);
    if (relative % alignment !== 0) fail(`tensor '${name}' starts at data offset ${relative}, not a multiple of the alignment ${alignment}`);
    raw.push({ name, dims, type, relative, byteLength: (elements / type.blockSize) * type.typeSize });
  }
  const dataOffset = Math.ceil(c.offset / alignment) * alignment;
  const tensors: GgufTensorInfo[] = [];
  for (const t of raw) {
    const offset = dataOffset + t.relative;
    if (offset + t.byteLength > file.size) fail(`tensor '${t.name}' (bytes ${offset}..${offset + t.byteLength}) lies past the end of the file (${file.size} bytes): truncated download?`);
    tensors.push({ name: t.name, dims: t.dims, type: t.type, offset, byteLength: t.byteLength });
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!, cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.byteLength) fail(`tensors '${prev.name}' and '${cur.name}' overlap`);
  }
  return { version, metadata, tensors, dataOffset, alignment };
}
