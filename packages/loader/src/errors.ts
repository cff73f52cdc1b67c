/**
 * Typed errors thrown by the loader. Every message names the file, key, URL or repository at fault so a
 * user can act on it without a stack trace.
 */

/** A safetensors file (or sharded checkpoint index) that breaks the format; the message names the file and the problem. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  /**
   * @param file - the file at fault (path, URL or name inside the model)
   * @param problem - what is wrong, in words
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
  }
}

/** A GGUF file (llama.cpp's single-file format) that breaks the format or holds something this library cannot read; the message names the file and the problem. */
export class GgufError extends Error {
  override name = 'GgufError';
  /**
   * @param file - the file at fault (path, URL or name inside the model)
   * @param problem - what is wrong, in words
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
  }
}

/** A `config.json` / `generation_config.json` that is missing a key or holds an invalid value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /**
   * @param file - the config file at fault
   * @param key - the JSON key at fault ('' when the whole document is bad)
   * @param problem - what is wrong, in words
   */
  constructor(readonly file: string, readonly key: string, problem: string) {
    super(key ? `${file}: '${key}' ${problem}` : `${file}: ${problem}`);
  }
}

/** The Hugging Face Hub (or its local cache) could not serve a model; `status` is the HTTP status when there was one. */
export class HubError extends Error {
  override name = 'HubError';
  constructor(message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A model, revision or file that does not exist where it was looked for. */
export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError';
  /**
   * @param source - the model spec that was opened (folder, URL or `owner/name@revision`)
   * @param message - what is missing, in words
   * @param file - the missing file inside the model, when one is to blame
   */
  constructor(readonly source: string, message: string, readonly file?: string) {
    super(message);
  }
}

/** An HTTP(S) request for a file of a URL source failed (not the Hub: see {@link HubError}). */
export class RemoteFileError extends Error {
  override name = 'RemoteFileError';
  constructor(readonly url: string, message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Throws the signal's reason (an `AbortError` DOMException by default) when it is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}
