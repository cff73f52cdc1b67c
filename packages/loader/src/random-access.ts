/**
 * The one abstraction every source (local folder, URL, browser File, Hub cache) implements: a folder of
 * named files, each readable at any byte range without loading the whole file.
 */

/** One file opened for positional reads. */
export interface RandomAccessFile {
  /** Name used in messages (a path or URL). */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes starting at `offset` into a fresh buffer (byteOffset 0, so typed-array views are aligned).
   * Returns fewer bytes only when the file ends earlier.
   */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * Optional: fills `target` with the bytes starting at `offset`, without an intermediate buffer (so a
   * 1 GB tensor costs 1 GB, not 2). Returns the bytes read (fewer only when the file ends earlier).
   */
  readInto?(target: Uint8Array, offset: number, signal?: AbortSignal): Promise<number>;
  /** Releases the underlying handle (a no-op for in-memory and Blob files). */
  close(): Promise<void>;
}

/** A model folder, whatever it is stored on. Paths are relative, '/'-separated. */
export interface ModelFolder {
  /** Where it came from, for messages. */
  readonly source: string;
  /** Text of a small file, or undefined when the folder has no such file. */
  readText(path: string, signal?: AbortSignal): Promise<string | undefined>;
  /** Opens a file for positional reads; rejects with ModelNotFoundError when it does not exist. */
  openFile(path: string, signal?: AbortSignal): Promise<RandomAccessFile>;
  /** Releases what the folder holds (e.g. browser cache handles); files are closed separately. */
  close?(): Promise<void>;
}

/** A RandomAccessFile over bytes already in memory (used for tests and tiny files). */
export function memoryFile(name: string, bytes: Uint8Array): RandomAccessFile {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      const end = Math.min(bytes.byteLength, offset + length);
      return bytes.slice(Math.min(offset, end), end);
    },
    async close() {},
  };
}

/** Slice size for Blob reads into a caller's buffer: bounds the transient copy of a 1 GB tensor to 64 MB. */
const BLOB_SLICE = 64 * 2 ** 20;

/** A RandomAccessFile over a Blob / File (browser folder pickers, Cache API responses). */
export function blobFile(name: string, blob: Blob): RandomAccessFile {
  return {
    name,
    size: blob.size,
    async read(offset, length, signal) {
      signal?.throwIfAborted();
      const buffer = await blob.slice(offset, Math.min(blob.size, offset + length)).arrayBuffer();
      signal?.throwIfAborted();
      return new Uint8Array(buffer);
    },
    async readInto(target, offset, signal) {
      const end = Math.min(blob.size, offset + target.byteLength);
      let done = 0;
      for (let at = offset; at < end; at += BLOB_SLICE) {
        signal?.throwIfAborted();
        const piece = new Uint8Array(await blob.slice(at, Math.min(end, at + BLOB_SLICE)).arrayBuffer());
        target.set(piece, done);
        done += piece.byteLength;
      }
      signal?.throwIfAborted();
      return done;
    },
    async close() {},
  };
}
