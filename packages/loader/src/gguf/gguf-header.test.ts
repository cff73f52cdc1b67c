import { describe, expect, it } from 'vitest';
import { GgufError } from '../errors.js';
import { memoryFile } from '../random-access.js';
import { ggmlType } from './ggml-quants.js';
import { MAX_GGUF_HEADER_BYTES, readGgufHeader } from './gguf-header.js';
import { encodeGguf, type GgufMetadataEntry } from './gguf-writer.js';

const read = (bytes: Uint8Array, name = 'm.gguf') => readGgufHeader(memoryFile(name, bytes));

/** A small valid file: every metadata type, an F32 vector, a Q8_0 matrix and an F16 one. */
function sample(): Uint8Array {
  const metadata: GgufMetadataEntry[] = [
    { key: 'u8', type: 'u8', value: 200 }, { key: 'i8', type: 'i8', value: -100 },
    { key: 'u16', type: 'u16', value: 60000 }, { key: 'i16', type: 'i16', value: -30000 },
    { key: 'u32', type: 'u32', value: 4_000_000_000 }, { key: 'i32', type: 'i32', value: -2_000_000_000 },
    { key: 'f32', type: 'f32', value: 1e-6 }, { key: 'f64', type: 'f64', value: Math.PI },
    { key: 'bool', type: 'bool', value: true }, { key: 'text', type: 'string', value: 'héllo {{ messages }}' },
    { key: 'u64', type: 'u64', value: 2n ** 60n }, { key: 'i64', type: 'i64', value: -5 },
    { key: 'tokens', type: 'array', elementType: 'string', value: ['a', 'Ġb', ''] },
    { key: 'types', type: 'array', elementType: 'i32', value: [1, 3, -1] },
  ];
  return encodeGguf(metadata, [
    { name: 'v', dims: [5], type: 0, byteLength: 20, data: new Uint8Array(20).fill(1) },
    { name: 'q', dims: [64, 3], type: 8, byteLength: 2 * 3 * 34, data: new Uint8Array(204).fill(2) },
    { name: 'h', dims: [7, 2], type: 1, byteLength: 28, data: new Uint8Array(28).fill(3) },
  ]);
}

describe('readGgufHeader', () => {
  it('reads back what the writer wrote: every value type, tensor dims, types, aligned offsets', async () => {
    const bytes = sample();
    const h = await read(bytes);
    expect(h.version).toBe(3);
    expect(Object.fromEntries(h.metadata)).toEqual({
      u8: 200, i8: -100, u16: 60000, i16: -30000, u32: 4_000_000_000, i32: -2_000_000_000,
      // f32 metadata reads as the shortest decimal of that f32 (converters store 1e-6 as 9.99999997e-7).
      f32: 1e-6, f64: Math.PI, bool: true, text: 'héllo {{ messages }}', u64: 2n ** 60n, i64: -5,
      tokens: ['a', 'Ġb', ''], types: [1, 3, -1],
    });
    expect(h.alignment).toBe(32);
    expect(h.dataOffset % 32).toBe(0);
    expect(h.tensors.map((t) => [t.name, t.dims, t.type.name, t.byteLength, t.offset - h.dataOffset])).toEqual([
      ['v', [5], 'F32', 20, 0], ['q', [64, 3], 'Q8_0', 204, 32], ['h', [7, 2], 'F16', 28, 256],
    ]);
    expect(bytes[h.tensors[1]!.offset]).toBe(2);
    expect(bytes[h.tensors[2]!.offset + 27]).toBe(3);
  });

  it('honours general.alignment', async () => {
    const bytes = encodeGguf([], [
      { name: 'a', dims: [3], type: 0, byteLength: 12, data: new Uint8Array(12) },
      { name: 'b', dims: [3], type: 0, byteLength: 12, data: new Uint8Array(12).fill(9) },
    ], 64);
    const h = await read(bytes);
    expect(h.alignment).toBe(64);
    expect(h.dataOffset % 64).toBe(0);
    expect(h.tensors[1]!.offset - h.dataOffset).toBe(64);
    expect(bytes[h.tensors[1]!.offset]).toBe(9);
  });

  it('fails with a GgufError (never a crash or a hang) on every truncation of a valid file', async () => {
    const bytes = sample();
    const last = (await read(bytes)).tensors.at(-1)!;
    // Up to the last tensor's end (the padding after it is not needed).
    for (let n = 0; n < last.offset + last.byteLength; n += 7) {
      await expect(read(bytes.slice(0, n)), `truncated to ${n}`).rejects.toBeInstanceOf(GgufError);
    }
  });

  it('names what is wrong with a file that is not (readable) GGUF', async () => {
    const good = sample();
    const patched = (at: number, bytes: number[]) => { const b = good.slice(); b.set(bytes, at); return b; };
    const u32 = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
    await expect(read(new TextEncoder().encode('{"not": "gguf"} plus some padding bytes'))).rejects.toThrow(/not a GGUF file/);
    await expect(read(patched(4, u32(1)))).rejects.toThrow(/version 1 .* not supported/);
    await expect(read(patched(4, u32(0x03000000)))).rejects.toThrow(/big-endian/);
    await expect(read(patched(4, u32(7)))).rejects.toThrow(/version 7 is not supported/);
    // The first key's length (bytes 24..31) claiming 2^40 bytes.
    await expect(read(patched(24, [0, 0, 0, 0, 0, 1, 0, 0]))).rejects.toThrow(/metadata key 0 claims 1099511627776 bytes/);
    // The tensor count claiming more tensors than the file could describe.
    await expect(read(patched(8, [0, 0, 0, 1, 0, 0, 0, 0]))).rejects.toThrow(/claims 16777216 tensors/);
  });

  it('refuses tensors that do not fit the file or the format', async () => {
    const one = (t: { dims: number[]; type: number; byteLength: number }, data = new Uint8Array(t.byteLength)) => encodeGguf([], [{ name: 'w', ...t, data }]);
    const cut = one({ dims: [32, 4], type: 8, byteLength: 136 });
    await expect(read(cut.slice(0, cut.byteLength - 30))).rejects.toThrow(/'w' .* lies past the end of the file .* truncated download/);
    await expect(read(one({ dims: [48, 2], type: 8, byteLength: 136 }))).rejects.toThrow(/rows of 48 values, not whole blocks of 32/);
    // An unknown type id: patch the type field of a valid file (it follows the name and dims).
    const bytes = one({ dims: [4], type: 0, byteLength: 16 });
    const h = await read(bytes);
    const headerEnd = h.dataOffset;
    const view = new DataView(bytes.buffer);
    // Layout of the last tensor description: ... u32 type, u64 offset, then padding to 32.
    let at = 24 + 8 + 1 + 4 + 8; // header, name length + 'w', n_dims, one dim
    expect(view.getUint32(at, true)).toBe(0);
    view.setUint32(at, 77, true);
    await expect(read(bytes)).rejects.toThrow(/type id 77, which ggml does not define/);
    view.setUint32(at, 0, true);
    at += 4;
    view.setUint32(at, 8, true); // offset 8: not aligned
    await expect(read(bytes)).rejects.toThrow(/not a multiple of the alignment 32/);
    expect(headerEnd).toBeGreaterThan(at);
  });

  it('refuses duplicated keys and tensors, and overlapping tensors', async () => {
    await expect(read(encodeGguf([{ key: 'k', type: 'u8', value: 1 }, { key: 'k', type: 'u8', value: 2 }], []))).rejects.toThrow(/'k' appears twice/);
    const t = { dims: [8], type: 0, byteLength: 32, data: new Uint8Array(32) };
    await expect(read(encodeGguf([], [{ name: 'a', ...t }, { name: 'a', ...t }]))).rejects.toThrow(/tensor 'a' appears twice/);
    const two = encodeGguf([], [{ name: 'a', ...t }, { name: 'b', ...t }]);
    // 'b''s offset: after the 24-byte file header, 'a''s description (8 + 1 + 4 + 8 + 4 + 8) and 'b''s up to it (8 + 1 + 4 + 8 + 4).
    const view = new DataView(two.buffer);
    expect(view.getBigUint64(82, true)).toBe(32n);
    view.setBigUint64(82, 0n, true);
    await expect(read(two)).rejects.toThrow(/tensors 'a' and 'b' overlap/);
  });

  it('bounds the header size', () => {
    expect(MAX_GGUF_HEADER_BYTES).toBeGreaterThanOrEqual(64 * 2 ** 20);
    expect(ggmlType(12)!.name).toBe('Q4_K');
  });
});
