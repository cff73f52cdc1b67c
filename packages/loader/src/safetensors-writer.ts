import { DTYPE_BYTES, type SafetensorsDtype } from './safetensors-header.js';

/** A tensor to write: raw little-endian bytes plus dtype and shape. */
export interface TensorToWrite { dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }

/**
 * Encodes tensors as one safetensors file in memory (header padded to 8 bytes as the reference writer
 * does). Meant for tests and for generating random checkpoints at real shapes in benchmarks.
 * @throws Error when a tensor's byte length does not match its dtype and shape
 */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const { header, dataBytes } = safetensorsHeaderFor(
    Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength }])),
    metadata,
  );
  const out = new Uint8Array(header.byteLength + dataBytes);
  out.set(header, 0);
  let offset = header.byteLength;
  for (const t of Object.values(tensors)) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}

/**
 * Builds the 8-byte prefix plus JSON header for tensors laid out back to back in the given order,
 * without their data (so huge files can be written as a header plus a sparse tail).
 * @returns the prefix+header bytes and the size of the data section that must follow
 */
export function safetensorsHeaderFor(
  tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; byteLength?: number }>,
  metadata: Record<string, string> = { format: 'pt' },
): { header: Uint8Array; dataBytes: number } {
  const json: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, b) => a * b, DTYPE_BYTES[t.dtype]);
    if (t.byteLength !== undefined && t.byteLength !== expected) throw new Error(`tensor '${name}': ${t.byteLength} bytes, ${t.dtype}${JSON.stringify(t.shape)} needs ${expected}`);
    json[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.byteLength), true);
  header.set(body, 8);
  return { header, dataBytes: offset };
}
