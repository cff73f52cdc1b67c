// Browser folder sources, driven in Node with real File objects (Node 20 has File) and a minimal
// FileSystemDirectoryHandle over a map.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelNotFoundError } from '../errors.js';
import { openModel } from '../model.js';

const DIR = fileURLToPath(new URL('../../../../fixtures/models/tiny-f16-sharded/', import.meta.url));
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function pickedFiles(): File[] {
  return readdirSync(DIR).map((name) => {
    const file = new File([readFileSync(`${DIR}${name}`)], name);
    Object.defineProperty(file, 'webkitRelativePath', { value: `tiny-f16-sharded/${name}` });
    return file;
  });
}

function directoryHandle(files: File[]): FileSystemDirectoryHandle {
  const byName = new Map(files.map((f) => [f.name, f]));
  const notFound = () => Object.assign(new Error('not found'), { name: 'NotFoundError' });
  return {
    kind: 'directory',
    name: 'picked-model',
    async getFileHandle(name: string) {
      const file = byName.get(name);
      if (!file) throw notFound();
      return { kind: 'file', name, getFile: async () => file };
    },
    async getDirectoryHandle() {
      throw notFound();
    },
  } as unknown as FileSystemDirectoryHandle;
}

async function expectFixture(model: Awaited<ReturnType<typeof openModel>>) {
  const local = await openModel(DIR);
  try {
    expect(model.config).toEqual(local.config);
    for (const n of local.checkpoint.tensors.keys()) expect(sameBytes(await model.checkpoint.read(n), await local.checkpoint.read(n)), n).toBe(true);
  } finally {
    await local.close();
    await model.close();
  }
}

describe('browser folder sources', () => {
  it('opens the File[] of an <input webkitdirectory>', async () => {
    const model = await openModel(pickedFiles());
    expect(model.source).toBe('tiny-f16-sharded');
    await expectFixture(model);
  });
  it('opens a FileSystemDirectoryHandle', async () => {
    const model = await openModel(directoryHandle(pickedFiles()));
    expect(model.source).toBe('picked-model');
    await expectFixture(model);
  });
  it('names the missing file when a shard was not picked', async () => {
    const files = pickedFiles().filter((f) => f.name !== 'model-00002-of-00002.safetensors');
    const error = await openModel(files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelNotFoundError);
    expect(error).toMatchObject({ message: "tiny-f16-sharded: no file 'model-00002-of-00002.safetensors' among the selected files", file: 'model-00002-of-00002.safetensors' });
    await expect(openModel(directoryHandle(files))).rejects.toThrow(/picked-model: no file 'model-00002-of-00002.safetensors' in the folder/);
  });
});
