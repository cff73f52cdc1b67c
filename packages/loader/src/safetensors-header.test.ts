import { describe, expect, it } from 'vitest';
import { parseSafetensorsHeader, SafetensorsError } from './safetensors-header.js';

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

describe('parseSafetensorsHeader', () => {
  it('reads tensors and metadata', () => {
    const json = enc({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: 'BF16', shape: [4], data_offsets: [24, 32] } });
    const h = parseSafetensorsHeader('m.safetensors', json, 8 + json.byteLength + 32);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.get('a')).toMatchObject({ dtype: 'F32', shape: [2, 3], begin: 0, end: 24 });
    expect(h.dataOffset).toBe(8 + json.byteLength);
  });
  it.each([
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 12] } }, /spans 12 bytes/],
    [{ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, /unsupported dtype/],
    [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, /overlap/],
    [{ a: { dtype: 'F32', shape: [100], data_offsets: [0, 400] } }, /truncated/],
  ])('rejects %j', (header, message) => {
    const json = enc(header);
    expect(() => parseSafetensorsHeader('bad.safetensors', json, 8 + json.byteLength + 16)).toThrow(message);
    expect(() => parseSafetensorsHeader('bad.safetensors', json, 8 + json.byteLength + 16)).toThrow(SafetensorsError);
  });
  it('rejects a header that is not JSON and names the file', () => {
    const json = new TextEncoder().encode('{not json');
    expect(() => parseSafetensorsHeader('x.safetensors', json, 100)).toThrow(/x.safetensors: header is not valid UTF-8 JSON/);
  });
});
