/**
 * A model folder behind an http(s) URL, read with HTTP Range requests: only the headers and the tensors
 * asked for travel. Uses fetch only, so it works in Node and in browsers (the server must allow Range and,
 * cross-origin, expose Content-Range via CORS).
 */
import { ModelNotFoundError, RemoteFileError } from '../errors.js';
import type { ModelFolder, RandomAccessFile } from '../random-access.js';
import { readBodyInto } from './read-body.js';

/** What to do about a refused request (a gated or private Hub model, usually). */
export function accessHint(status: number): string {
  return status === 401 || status === 403 ? ' (access refused: for a gated or private Hugging Face model pass a token with access)' : '';
}

/** Options for {@link openUrlFolder}. */
export interface UrlFolderOptions { fetch?: typeof fetch; headers?: Record<string, string> }

/**
 * The URL of `path` in the folder at `base`. The folder URL's query string (a token, a signature) goes
 * with every file of it: a URL resolved against another drops the query, which would fail a link that
 * only opens with it.
 */
function joinUrl(base: string, path: string): string {
  const folder = new URL(base);
  const query = folder.search;
  folder.search = '';
  folder.hash = '';
  if (!folder.pathname.endsWith('/')) folder.pathname += '/';
  const url = new URL(path.split('/').map(encodeURIComponent).join('/'), folder);
  url.search = query;
  return url.toString();
}

async function request(url: string, init: RequestInit, options: UrlFolderOptions, signal?: AbortSignal): Promise<Response> {
  try {
    return await (options.fetch ?? globalThis.fetch)(url, { ...init, headers: { ...options.headers, ...(init.headers as Record<string, string>) }, signal });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new RemoteFileError(url, `cannot reach ${url} (${cause}); check the URL and your network`, undefined, { cause: e });
  }
}

function parseContentRange(value: string | null): { start: number; total: number } | undefined {
  const m = value && /^bytes (?:(\d+)-\d+|\*)\/(\d+)$/.exec(value.trim());
  return m ? { start: Number(m[1] ?? 0), total: Number(m[2]) } : undefined;
}

/**
 * Opens one remote file for ranged reads: a first `Range: bytes=0-7` request learns the size from Content-Range.
 * @throws {@link ModelNotFoundError} on 404; {@link RemoteFileError} when the server fails or ignores Range
 */
export async function openUrlFile(url: string, options: UrlFolderOptions = {}, signal?: AbortSignal, source = url): Promise<RandomAccessFile> {
  const probe = await request(url, { headers: { range: 'bytes=0-7' } }, options, signal);
  if (probe.status === 404) {
    await probe.body?.cancel();
    throw new ModelNotFoundError(source, `no such file: ${url} (HTTP 404)`, url);
  }
  const range = parseContentRange(probe.headers.get('content-range'));
  if (probe.status === 416 && range) return emptyFile(url);
  if (probe.status !== 206 || !range) {
    await probe.body?.cancel();
    throw new RemoteFileError(url, probe.ok
      ? `${url}: the server ignored the Range request (HTTP ${probe.status}); it must support byte ranges (and expose Content-Range cross-origin)`
      : `${url}: HTTP ${probe.status}${accessHint(probe.status)}`, probe.status);
  }
  await probe.body?.cancel();
  const size = range.total;
  // One Range request, streamed straight into the caller's buffer (no second copy of a big tensor).
  const readInto = async (target: Uint8Array, offset: number, readSignal?: AbortSignal): Promise<number> => {
    const end = Math.min(size, offset + target.byteLength);
    if (end <= offset) return 0;
    const response = await request(url, { headers: { range: `bytes=${offset}-${end - 1}` } }, options, readSignal);
    const got = parseContentRange(response.headers.get('content-range'));
    if (response.status !== 206 || !got || got.start !== offset || !response.body) {
      await response.body?.cancel();
      throw new RemoteFileError(url, `${url}: expected bytes ${offset}-${end - 1}, got HTTP ${response.status} ${response.headers.get('content-range') ?? ''}`.trim(), response.status);
    }
    if (got.total !== size) {
      await response.body.cancel();
      throw new RemoteFileError(url, `${url}: the file changed size (${size} -> ${got.total}) while it was being read`);
    }
    return readBodyInto(response.body, target.subarray(0, end - offset), url, offset, readSignal);
  };
  return {
    name: url,
    size,
    async read(offset, length, readSignal) {
      const buffer = new Uint8Array(Math.max(0, Math.min(size, offset + length) - offset));
      const done = await readInto(buffer, offset, readSignal);
      return done === buffer.byteLength ? buffer : buffer.subarray(0, done);
    },
    readInto,
    async close() {},
  };
}

function emptyFile(url: string): RandomAccessFile {
  return { name: url, size: 0, read: async () => new Uint8Array(0), close: async () => {} };
}

/**
 * A model folder at a URL (`https://host/models/qwen2/` holds config.json, model.safetensors, ...).
 * @param base - the folder URL (a trailing '/' is added when missing)
 */
export function openUrlFolder(base: string, options: UrlFolderOptions = {}, source = base): ModelFolder {
  return {
    source,
    async readText(path, signal) {
      const url = joinUrl(base, path);
      const response = await request(url, {}, options, signal);
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new RemoteFileError(url, `${url}: HTTP ${response.status}${accessHint(response.status)}`, response.status);
      }
      return response.text();
    },
    async openFile(path, signal) {
      return openUrlFile(joinUrl(base, path), options, signal, source);
    },
  };
}

export { joinUrl };
