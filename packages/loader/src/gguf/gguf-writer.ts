/**
 * Writer of GGUF files (version 3, little-endian), for tests, benchmarks and the llama.cpp comparison:
 * the header bytes for metadata and tensor descriptions, the tensor data following at aligned offsets.
 */

/** Scalar metadata value types, as GGUF names them. */
export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
/** A scalar metadata value (its GGUF type is given beside it). */
export type GgufScalar = number | bigint | boolean | string;

/** One metadata entry to write, with its GGUF value type (JavaScript numbers do not carry one). */
export type GgufMetadataEntry =
  | { key: string; type: GgufScalarType; value: GgufScalar }
  | { key: string; type: 'array'; elementType: GgufScalarType; value: readonly GgufScalar[] };

/** A tensor's description: ggml dimension order (`dims[0]` is a row's length) and ggml type id. */
export interface GgufTensorToWrite { name: string; dims: readonly number[]; type: number; byteLength: number }

const TYPE_IDS: Record<GgufScalarType | 'array', number> = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };
const MAGIC = 0x46554747;

/** A growable little-endian byte buffer. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  scalar(type: GgufScalarType, v: GgufScalar): void {
    if (type === 'string') {
      const bytes = this.encoder.encode(String(v));
      this.scalar('u64', bytes.byteLength);
      this.reserve(bytes.byteLength);
      this.buf.set(bytes, this.length);
      this.length += bytes.byteLength;
      return;
    }
    const size = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[type];
    this.reserve(size);
    const at = this.length, d = this.view;
    switch (type) {
      case 'u8': d.setUint8(at, Number(v)); break;
      case 'i8': d.setInt8(at, Number(v)); break;
      case 'bool': d.setUint8(at, v ? 1 : 0); break;
      case 'u16': d.setUint16(at, Number(v), true); break;
      case 'i16': d.setInt16(at, Number(v), true); break;
      case 'u32': d.setUint32(at, Number(v), true); break;
      case 'i32': d.setInt32(at, Number(v), true); break;
      case 'f32': d.setFloat32(at, Number(v), true); break;
      case 'u64': d.setBigUint64(at, BigInt(v as number | bigint), true); break;
      case 'i64': d.setBigInt64(at, BigInt(v as number | bigint), true); break;
      case 'f64': d.setFloat64(at, Number(v), true); break;
    }
    this.length += size;
  }

  padTo(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  bytes(): Uint8Array { return this.buf.slice(0, this.length); }
}

/**
 * Encodes the header of a GGUF file: magic, version 3, metadata, tensor descriptions with offsets for
 * data laid out in the given order (each tensor padded to the alignment), padded to the alignment.
 * @returns the header bytes, each tensor's offset inside the data section, and the data section's size
 */
export function encodeGgufHeader(metadata: readonly GgufMetadataEntry[], tensors: readonly GgufTensorToWrite[], alignment = 32): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const sink = new ByteSink();
  sink.scalar('u32', MAGIC);
  sink.scalar('u32', 3);
  sink.scalar('u64', tensors.length);
  const entries = metadata.some((m) => m.key === 'general.alignment') || alignment === 32 ? metadata : [...metadata, { key: 'general.alignment', type: 'u32' as const, value: alignment }];
  sink.scalar('u64', entries.length);
  for (const m of entries) {
    sink.scalar('string', m.key);
    sink.scalar('u32', TYPE_IDS[m.type]);
    if (m.type === 'array') {
      sink.scalar('u32', TYPE_IDS[m.elementType]);
      sink.scalar('u64', m.value.length);
      for (const v of m.value) sink.scalar(m.elementType, v);
    } else {
      sink.scalar(m.type, m.value);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    sink.scalar('string', t.name);
    sink.scalar('u32', t.dims.length);
    for (const d of t.dims) sink.scalar('u64', d);
    sink.scalar('u32', t.type);
    sink.scalar('u64', offset);
    offsets.push(offset);
    offset += Math.ceil(t.byteLength / alignment) * alignment;
  }
  sink.padTo(alignment);
  return { header: sink.bytes(), offsets, dataBytes: offset };
}

/**
 * Encodes a whole GGUF file in memory (tests and small models; {@link encodeGgufHeader} lets large
 * ones be streamed).
 * @throws Error when a tensor's data does not have its declared byte length
 */
export function encodeGguf(metadata: readonly GgufMetadataEntry[], tensors: readonly (GgufTensorToWrite & { data: Uint8Array })[], alignment = 32): Uint8Array {
  for (const t of tensors) if (t.data.byteLength !== t.byteLength) throw new Error(`gguf: tensor '${t.name}' has ${t.data.byteLength} bytes of data, declared ${t.byteLength}`);
  const { header, offsets, dataBytes } = encodeGgufHeader(metadata, tensors, alignment);
  const out = new Uint8Array(header.byteLength + dataBytes);
  out.set(header, 0);
  tensors.forEach((t, i) => out.set(t.data, header.byteLength + offsets[i]!));
  return out;
}
