// Every kind of broken file the issue lists gets a SafetensorsError naming the file and the problem,
// fast and without allocating what the file claims.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from './checkpoint.js';
import { SafetensorsError } from './errors.js';
import { openModel } from './model.js';
import { memoryFile, type ModelFolder, type RandomAccessFile } from './random-access.js';
import { readSafetensorsHeader } from './safetensors-header.js';
import { encodeSafetensors } from './safetensors-writer.js';

const enc = new TextEncoder();
const index = (map: Record<string, string>) => JSON.stringify({ metadata: {}, weight_map: map });

/** A raw file: 8-byte length prefix (possibly lying), header text, then `dataBytes` zero bytes. */
function rawFile(headerText: string, dataBytes = 0, claimedLength?: bigint): Uint8Array {
  const body = enc.encode(headerText);
  const out = new Uint8Array(8 + body.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(body.byteLength), true);
  out.set(body, 8);
  return out;
}

async function failure(file: RandomAccessFile): Promise<SafetensorsError> {
  const error = await readSafetensorsHeader(file).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(SafetensorsError);
  expect((error as SafetensorsError).file).toBe(file.name);
  expect((error as Error).message.startsWith(`${file.name}: `)).toBe(true);
  return error as SafetensorsError;
}

const good = encodeSafetensors({
  a: { dtype: 'F32', shape: [2, 2], data: new Uint8Array(16) },
  b: { dtype: 'BF16', shape: [4], data: new Uint8Array(8) },
});

describe('hostile safetensors files', () => {
  it('accepts the well-formed file they are derived from', async () => {
    const h = await readSafetensorsHeader(memoryFile('good.safetensors', good));
    expect([...h.tensors.keys()]).toEqual(['a', 'b']);
    expect(h.dataOffset % 8).toBe(0);
  });

  it.each([
    ['empty file', new Uint8Array(0), /truncated: 0 bytes, fewer than the 8-byte header length prefix/],
    ['5-byte file', new Uint8Array(5), /truncated: 5 bytes/],
    ['truncated in the header', good.subarray(0, 40), /header length \d+ bytes is larger than the 32 bytes that follow/],
    ['truncated in the data', good.subarray(0, good.byteLength - 3), /tensor 'b' ends at byte 24 of a data section of 21 bytes/],
    ['header length larger than the file', rawFile('{}', 0, 1000n), /header length 1000 bytes is larger than the 2 bytes/],
    ['header that is not JSON', rawFile('{"a": nope}'), /header is not valid UTF-8 JSON/],
    ['header that is not UTF-8', rawFile('{"ab": 1}').map((b, i) => (i === 10 ? 0xff : b)), /not valid UTF-8 JSON/],
    ['header that is a JSON array', rawFile('[1,2]'), /not a JSON object/],
    ['zero header length', rawFile('', 0, 0n), /too small/],
    ['offsets out of order', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4), /tensor 'a' has data_offsets out of order \(4 > 0\)/],
    ['offsets out of range', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', 4), /tensor 'a' ends at byte 12 of a data section of 4 bytes/],
    ['negative offset', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', 4), /invalid data_offsets/],
    ['overlapping tensors', rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12), /tensors 'a' \[0, 8\) and 'b' \[4, 12\) overlap/],
    ['shape x dtype mismatch', rawFile('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8), /tensor 'a' spans 8 bytes but F32\[3\] needs 12/],
    ['overflowing shape', rawFile('{"a":{"dtype":"F32","shape":[9007199254740991,4],"data_offsets":[0,8]}}', 8), /too large/],
    ['unsupported dtype', rawFile('{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}', 4), /tensor 'a' has unsupported dtype "F8_E4M3"/],
    ['missing dtype', rawFile('{"a":{"shape":[4],"data_offsets":[0,4]}}', 4), /unsupported dtype undefined/],
    ['bad shape', rawFile('{"a":{"dtype":"U8","shape":"4","data_offsets":[0,4]}}', 4), /invalid shape "4"/],
    ['tensor entry not an object', rawFile('{"a":3}'), /tensor 'a' has no header object/],
    ['bad metadata', rawFile('{"__metadata__":{"x":1}}'), /__metadata__ value 'x' is not a string/],
  ])('%s', async (_, bytes, message) => {
    const error = await failure(memoryFile('bad.safetensors', bytes));
    expect(error.message).toMatch(message);
  });

  it('refuses a 100 GB header length claim at once, without allocating it', async () => {
    // The file claims to be 200 GB (as a sparse file could); reading is instrumented to catch big allocations.
    const claim = 100n * 1024n ** 3n;
    const bytes = rawFile('{}', 0, claim);
    let largestRead = 0;
    const file: RandomAccessFile = {
      name: 'huge.safetensors',
      size: 200 * 1024 ** 3,
      async read(offset, length) {
        largestRead = Math.max(largestRead, length);
        return bytes.slice(offset, offset + length);
      },
      async close() {},
    };
    const started = performance.now();
    const error = await failure(file);
    expect(error.message).toMatch(/header length 107374182400 bytes exceeds the 100000000-byte limit/);
    expect(largestRead).toBe(8);
    expect(performance.now() - started).toBeLessThan(1000);
    // And when the file is small, the same claim is "larger than the file".
    expect((await failure(memoryFile('small.safetensors', bytes))).message).toMatch(/larger than the 2 bytes/);
  });
});

describe('hostile sharded checkpoints', () => {
  const folderOf = (files: Record<string, Uint8Array | string>): ModelFolder => ({
    source: 'mem',
    async readText(path) {
      const f = files[path];
      return f === undefined ? undefined : typeof f === 'string' ? f : new TextDecoder().decode(f);
    },
    async openFile(path) {
      const f = files[path];
      if (f === undefined || typeof f === 'string') throw new Error(`no ${path}`);
      return memoryFile(`mem/${path}`, f);
    },
  });

  it('names the shard and the tensor the index promises but the shard lacks', async () => {
    const folder = folderOf({ 'model.safetensors.index.json': index({ a: 's1.safetensors', c: 's1.safetensors' }), 's1.safetensors': good });
    await expect(openCheckpoint(folder)).rejects.toThrow(new SafetensorsError('mem/s1.safetensors', "tensor 'c' is named by model.safetensors.index.json but missing from this shard"));
  });
  it.each([
    ['not JSON', '{weight', /model.safetensors.index.json: not valid JSON/],
    ['no weight_map', '{}', /has no 'weight_map' object/],
    ['a path outside the folder', index({ a: '../../etc/passwd' }), /points outside the model folder/],
    ['an absolute path', index({ a: '/etc/passwd' }), /points outside the model folder/],
    ['a non-string shard', JSON.stringify({ weight_map: { a: 3 } }), /weight_map entry 'a' is not a file name/],
  ])('rejects an index with %s', async (_, text, message) => {
    const error = await openCheckpoint(folderOf({ 'model.safetensors.index.json': text })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(message);
  });

  it('reports a tensor name that does not exist when reading', async () => {
    const checkpoint = await openCheckpoint(folderOf({ 'model.safetensors': good }));
    await expect(checkpoint.read('nope')).rejects.toThrow(/no tensor named 'nope'/);
    expect(Array.from(await checkpoint.read('a'))).toEqual(new Array(16).fill(0));
    await checkpoint.close();
  });
});

describe('hostile files on disk through openModel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-loader-hostile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = JSON.stringify({ model_type: 'qwen2', vocab_size: 4, hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2 });

  it('names the file on disk for a truncated checkpoint', async () => {
    writeFileSync(join(dir, 'config.json'), config);
    writeFileSync(join(dir, 'model.safetensors'), good.subarray(0, good.byteLength - 1));
    await expect(openModel(dir)).rejects.toThrow(`${join(dir, 'model.safetensors')}: tensor 'b' ends at byte 24 of a data section of 23 bytes`);
  });
  it('names a missing checkpoint', async () => {
    rmSync(join(dir, 'model.safetensors'));
    await expect(openModel(dir)).rejects.toThrow(/no model.safetensors or model.safetensors.index.json/);
  });
  it('names a missing shard', async () => {
    writeFileSync(join(dir, 'model.safetensors.index.json'), index({ a: 'model-00001-of-00002.safetensors' }));
    await expect(openModel(dir)).rejects.toThrow(/no such file: .*model-00001-of-00002.safetensors/);
  });
});

describe('a file that shrinks after it was opened', () => {
  it('reports the truncation when the tensor is read', async () => {
    const { truncateSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'qwen2-loader-shrink-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'qwen2', vocab_size: 4, hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2 }));
      writeFileSync(join(dir, 'model.safetensors'), good);
      const model = await openModel(dir);
      truncateSync(join(dir, 'model.safetensors'), good.byteLength - 4);
      await expect(model.checkpoint.read('b')).rejects.toThrow(`${join(dir, 'model.safetensors')}: truncated: tensor 'b' ends early`);
      expect((await model.checkpoint.read('a')).byteLength).toBe(16);
      await model.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('abort', () => {
  it('rejects with the signal reason before opening and while reading', async () => {
    const dir = fileURLToPath(new URL('../../../fixtures/models/tiny-f32', import.meta.url));
    const controller = new AbortController();
    controller.abort();
    await expect(openModel(dir, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    const model = await openModel(dir);
    await expect(model.checkpoint.read('model.norm.weight', { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect((await model.checkpoint.read('model.norm.weight')).byteLength).toBe(256);
    await model.close();
    await expect(model.checkpoint.read('model.norm.weight')).rejects.toThrow(/checkpoint is closed/);
  });
});
