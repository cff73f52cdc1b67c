import { ModelNotFoundError, SafetensorsError } from './errors.js';
import type { ModelFolder, RandomAccessFile } from './random-access.js';
import { readSafetensorsHeader, type SafetensorsDtype, type SafetensorsHeader } from './safetensors-header.js';
import type { QuantizedOrigin, UnpackedLinear } from './quantized-checkpoint.js';

export type { SafetensorsDtype };

/** Name of the index file of a sharded checkpoint (Hugging Face convention). */
export const INDEX_FILE = 'model.safetensors.index.json';
/** Name of an unsharded checkpoint (Hugging Face convention). */
export const SINGLE_FILE = 'model.safetensors';

/** One tensor of a checkpoint. */
export interface CheckpointTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** The file (relative to the model folder) that holds it. */
  file: string;
  byteLength: number;
  /**
   * Set on a weight dequantized from a pre-quantized (AWQ or GPTQ) layer by a checkpoint that
   * `openModelFolder` opened for a model with a `quantization_config`; `file` is then where its packed
   * `qweight` lies and `byteLength` the size of its F32 values.
   */
  quantized?: QuantizedOrigin;
}

/** Progress of lazy tensor reads (bytes handed out so far over all tensors). */
export interface ReadProgress { file: string; loaded: number; total: number; overallLoaded: number; overallTotal: number }

/** The tensors of a checkpoint, single file or sharded, read lazily by name. */
export interface Checkpoint {
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;
  /**
   * Raw little-endian bytes of one tensor, read lazily (never the whole file). The buffer is fresh and
   * starts at byteOffset 0, so `new Float32Array(bytes.buffer)` and friends are aligned.
   * @throws {@link SafetensorsError} for an unknown name or a file that shrank since it was opened
   */
  read(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Bytes `byteOffset .. byteOffset + byteLength` of one tensor (offsets relative to the tensor's first
   * byte), in a fresh buffer starting at byteOffset 0. Lets a caller convert a large tensor a slice of
   * rows at a time without ever holding all of its bytes. Not counted by the read progress.
   * @throws RangeError when the range does not lie inside the tensor
   * @throws {@link SafetensorsError} for an unknown name or a file that shrank since it was opened
   */
  readRange(name: string, byteOffset: number, byteLength: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Present on a checkpoint that dequantizes AWQ / GPTQ layers: the integers, zero points and scales of
   * the weight `name` (one with {@link CheckpointTensor.quantized}), so it can be stored in another
   * quantized format without rounding its values a second time.
   * @throws {@link SafetensorsError} for a tensor that was not dequantized, or a bad `g_idx`
   */
  readQuantized?(name: string, options?: { signal?: AbortSignal }): Promise<UnpackedLinear>;
  /**
   * Present on a GGUF checkpoint: the raw ggml blocks of a block-quantized tensor (one with
   * {@link CheckpointTensor.quantized} of method 'gguf'), as stored in the file (block layout of its
   * `format`), so a consumer holding that block type can keep the blocks as they are.
   * @throws `GgufError` for a tensor that is not block-quantized
   */
  readGgmlBlocks?(name: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /** Closes every shard's file handle; reads afterwards fail. */
  close(): Promise<void>;
}

/** @internal A tensor's place: which open file holds it and where. */
export interface Located { info: CheckpointTensor; handle: RandomAccessFile; absoluteOffset: number }

/** Reads of one tensor are split into pieces no bigger than this (Node's fs caps one read at 2 GiB). */
const READ_PIECE = 1 << 30;

/**
 * Opens the checkpoint of a model folder: `model.safetensors.index.json` plus its shards when present,
 * else `model.safetensors`. Only the headers are read here; tensor bytes are read on demand.
 * @param folder - the model folder
 * @param options - `signal` aborts; `onRead` reports bytes handed out by {@link Checkpoint.read}
 * @throws {@link ModelNotFoundError} when the folder has no safetensors checkpoint
 * @throws {@link SafetensorsError} for a malformed index, shard or header
 */
export async function openCheckpoint(
  folder: ModelFolder,
  options: { signal?: AbortSignal; onRead?: (p: ReadProgress) => void } = {},
): Promise<Checkpoint> {
  const { signal } = options;
  const indexText = await folder.readText(INDEX_FILE, signal);
  const opened: RandomAccessFile[] = [];
  try {
    const located = new Map<string, Located>();
    if (indexText !== undefined) {
      const weightMap = parseIndex(`${folder.source}/${INDEX_FILE}`, indexText);
      const byShard = new Map<string, string[]>();
      for (const [name, shard] of weightMap) byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
      for (const [shard, names] of byShard) {
        const handle = await folder.openFile(shard, signal);
        opened.push(handle);
        const header = await readSafetensorsHeader(handle, signal);
        for (const name of names) {
          if (!header.tensors.has(name)) throw new SafetensorsError(handle.name, `tensor '${name}' is named by ${INDEX_FILE} but missing from this shard`);
          located.set(name, locate(shard, handle, header, name));
        }
      }
    } else {
      let handle: RandomAccessFile;
      try {
        handle = await folder.openFile(SINGLE_FILE, signal);
      } catch (e) {
        if (e instanceof ModelNotFoundError) {
          throw new ModelNotFoundError(folder.source, `${folder.source}: no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors checkpoints are supported)`, SINGLE_FILE);
        }
        throw e;
      }
      opened.push(handle);
      const header = await readSafetensorsHeader(handle, signal);
      for (const name of header.tensors.keys()) located.set(name, locate(SINGLE_FILE, handle, header, name));
    }
    return makeCheckpoint(folder.source, located, opened, options.onRead);
  } catch (e) {
    await Promise.allSettled(opened.map((h) => h.close()));
    throw e;
  }
}

function locate(file: string, handle: RandomAccessFile, header: SafetensorsHeader, name: string): Located {
  const t = header.tensors.get(name)!;
  return {
    info: { name, dtype: t.dtype, shape: t.shape, file, byteLength: t.end - t.begin },
    handle,
    absoluteOffset: header.dataOffset + t.begin,
  };
}

/**
 * Parses `model.safetensors.index.json` into tensor name -> shard file.
 * @throws {@link SafetensorsError} naming the index file when it is malformed or names an unsafe path
 */
export function parseIndex(file: string, text: string): Map<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) throw new SafetensorsError(file, "has no 'weight_map' object");
  const result = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '') throw new SafetensorsError(file, `weight_map entry '${name}' is not a file name`);
    // Shards live inside the model folder: refuse absolute paths and '..' so an index cannot read elsewhere.
    if (shard.startsWith('/') || shard.includes('\\') || shard.split('/').some((p) => p === '..' || p === '.' || p === '') || /^[a-zA-Z]:/.test(shard)) {
      throw new SafetensorsError(file, `weight_map entry '${name}' points outside the model folder: ${JSON.stringify(shard)}`);
    }
    result.set(name, shard);
  }
  if (result.size === 0) throw new SafetensorsError(file, "'weight_map' is empty");
  return result;
}

/**
 * @internal Checks a {@link Checkpoint.readRange} request against the tensor's size.
 * @throws RangeError when the range is not whole non-negative integers inside the tensor
 */
export function checkTensorRange(name: string, byteOffset: number, byteLength: number, tensorBytes: number): void {
  if (!Number.isSafeInteger(byteOffset) || !Number.isSafeInteger(byteLength) || byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > tensorBytes) {
    throw new RangeError(`bytes ${byteOffset}..${byteOffset + byteLength} lie outside tensor '${name}' of ${tensorBytes} bytes`);
  }
}

/** Reads a tensor through `read` (sources without readInto), without a copy when one read returns it all. */
async function readPieces(l: Located, signal?: AbortSignal): Promise<Uint8Array> {
  const { byteLength, name } = l.info;
  const first = await l.handle.read(l.absoluteOffset, Math.min(READ_PIECE, byteLength), signal);
  if (first.byteLength === byteLength) return first;
  const out = new Uint8Array(byteLength);
  out.set(first, 0);
  for (let done = first.byteLength; done < byteLength;) {
    const piece = await l.handle.read(l.absoluteOffset + done, Math.min(READ_PIECE, byteLength - done), signal);
    if (piece.byteLength === 0) throw new SafetensorsError(l.handle.name, `truncated: tensor '${name}' ends early (file changed since it was opened?)`);
    out.set(piece, done);
    done += piece.byteLength;
  }
  return out;
}

/**
 * @internal A checkpoint over tensors already located in open files (safetensors shards, GGUF files):
 * lazy reads of their raw bytes, read progress per file, and `close()` closing the files.
 */
export function makeCheckpoint(source: string, located: Map<string, Located>, handles: RandomAccessFile[], onRead?: (p: ReadProgress) => void): Checkpoint {
  const tensors = new Map<string, CheckpointTensor>();
  for (const [name, l] of located) tensors.set(name, l.info);
  const fileTotals = new Map<string, number>();
  let overallTotal = 0;
  for (const t of tensors.values()) {
    fileTotals.set(t.file, (fileTotals.get(t.file) ?? 0) + t.byteLength);
    overallTotal += t.byteLength;
  }
  const fileLoaded = new Map<string, number>();
  let overallLoaded = 0;
  let closed = false;
  return {
    tensors,
    async read(name, options = {}) {
      if (closed) throw new SafetensorsError(source, `checkpoint is closed (reading '${name}')`);
      const l = located.get(name);
      if (!l) throw new SafetensorsError(source, `no tensor named '${name}' in the checkpoint`);
      const { byteLength } = l.info;
      let out: Uint8Array;
      if (l.handle.readInto) {
        out = new Uint8Array(byteLength);
        const got = await l.handle.readInto(out, l.absoluteOffset, options.signal);
        if (got !== byteLength) throw new SafetensorsError(l.handle.name, `truncated: tensor '${name}' ends early (file changed since it was opened?)`);
      } else {
        out = await readPieces(l, options.signal);
      }
      if (onRead) {
        const loaded = (fileLoaded.get(l.info.file) ?? 0) + byteLength;
        fileLoaded.set(l.info.file, loaded);
        overallLoaded += byteLength;
        onRead({ file: l.info.file, loaded, total: fileTotals.get(l.info.file)!, overallLoaded, overallTotal });
      }
      return out;
    },
    async readRange(name, byteOffset, byteLength, options = {}) {
      if (closed) throw new SafetensorsError(source, `checkpoint is closed (reading '${name}')`);
      const l = located.get(name);
      if (!l) throw new SafetensorsError(source, `no tensor named '${name}' in the checkpoint`);
      checkTensorRange(name, byteOffset, byteLength, l.info.byteLength);
      const piece: Located = { info: { ...l.info, byteLength }, handle: l.handle, absoluteOffset: l.absoluteOffset + byteOffset };
      if (!l.handle.readInto) return readPieces(piece, options.signal);
      const out = new Uint8Array(byteLength);
      const got = await l.handle.readInto(out, piece.absoluteOffset, options.signal);
      if (got !== byteLength) throw new SafetensorsError(l.handle.name, `truncated: tensor '${name}' ends early (file changed since it was opened?)`);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(handles.map((h) => h.close()));
    },
  };
}
