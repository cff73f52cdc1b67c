/**
 * Node-only: a model folder on the local file system, read with positional `FileHandle.read`.
 * Imported dynamically by model.ts so browser bundles never load node:fs.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelNotFoundError } from '../errors.js';
import type { ModelFolder, RandomAccessFile } from '../random-access.js';

/** Largest single read (Node refuses reads of 2 GiB and more). */
const MAX_READ = 1 << 30;

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Opens a local folder as a {@link ModelFolder}.
 * @param dir - folder path (relative paths resolve against the working directory)
 * @throws {@link ModelNotFoundError} when the path is not a folder
 */
export async function openLocalFolder(dir: string): Promise<ModelFolder> {
  const root = resolve(dir);
  try {
    if (!(await stat(root)).isDirectory()) throw new ModelNotFoundError(dir, `${dir} is not a folder`);
  } catch (e) {
    if (isMissing(e)) throw new ModelNotFoundError(dir, `no such folder: ${root}`);
    throw e;
  }
  return {
    source: dir,
    async readText(path, signal) {
      try {
        return await readFile(join(root, path), { encoding: 'utf8', signal });
      } catch (e) {
        if (isMissing(e)) return undefined;
        throw e;
      }
    },
    async openFile(path) {
      return openLocalFile(join(root, path), dir);
    },
  };
}

/**
 * Opens one local file for positional reads.
 * @param path - file path
 * @param source - model spec named in the not-found error
 * @throws {@link ModelNotFoundError} when the file does not exist
 */
export async function openLocalFile(path: string, source = path): Promise<RandomAccessFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (isMissing(e)) throw new ModelNotFoundError(source, `no such file: ${path}`, path);
    throw e;
  }
  const { size } = await handle.stat();
  // Reads straight into the caller's buffer, in pieces under Node's 2 GiB limit per read.
  const readInto = async (target: Uint8Array, offset: number, signal?: AbortSignal): Promise<number> => {
    signal?.throwIfAborted();
    let done = 0;
    while (done < target.byteLength) {
      const { bytesRead } = await handle.read(target, done, Math.min(MAX_READ, target.byteLength - done), offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
      signal?.throwIfAborted();
    }
    return done;
  };
  return {
    name: path,
    size,
    async read(offset, length, signal) {
      const end = Math.min(size, offset + length);
      const buffer = new Uint8Array(Math.max(0, end - offset));
      const done = await readInto(buffer, offset, signal);
      return done === buffer.byteLength ? buffer : buffer.subarray(0, done); // file shrank: caller reports truncation
    },
    readInto,
    async close() {
      await handle.close();
    },
  };
}

/** True when the path exists locally (a folder path wins over a Hub id of the same spelling). */
export async function localPathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A folder spec as a path: `file://` URLs are converted, anything else is a path already. */
export function pathOf(spec: string): string {
  return spec.startsWith('file://') ? fileURLToPath(spec) : spec;
}

/** Names of the entries directly inside a folder (none when it cannot be listed). */
export async function localFileNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
