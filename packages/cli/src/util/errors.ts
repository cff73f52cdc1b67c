/**
 * Errors the CLI raises itself, and the mapping from any thrown value (the loader's, tokenizer's and
 * core's typed errors included) to the one line a user sees on stderr.
 */

/** Wrong or missing command-line arguments: exit code 2 and a pointer to the command's help. */
export class UsageError extends Error {
  override name = 'UsageError';
  /**
   * @param message - what is wrong with the arguments, in words
   * @param command - the command whose help to point at
   */
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** A failure the CLI detected itself, with a message that needs no stack trace. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Error names whose message is already written for users (they name the file, key or URL at fault). */
const SELF_EXPLAINING = new Set([
  'CliError', 'HubError', 'ModelNotFoundError', 'SafetensorsError', 'ConfigError', 'RemoteFileError',
  'TokenizerError', 'ChatTemplateError', 'ContextLengthError', 'ContextFullError', 'BackendUnavailableError',
  'ModelWeightsError', 'WeightFormatError', 'WebGPUDeviceError', 'WebGPUDeviceLostError', 'CudaUnavailableError', 'CudaOutOfMemoryError',
  'BackendError', 'GenerationError', 'ModelError', 'DeviceLostError', 'CudaError', 'WebGPUError',
]);

/** Network failure codes that mean "nothing answered", as Node's fetch reports them in `cause`. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** True for an abort (Ctrl-C, a closed client): an `AbortError` or a signal's reason. */
export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as { name?: unknown }).name === 'AbortError' || (err as { name?: unknown }).name === 'TimeoutError');
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The exit code for a thrown value: 2 for usage errors, 130 for an abort, 1 otherwise. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof CliError) return err.exitCode;
  if (isAbortError(err)) return 130;
  return 1;
}

/**
 * The single line (without the `qwen2:` prefix) that describes a thrown value to a user.
 * @param err - anything thrown
 */
export function describeError(err: unknown): string {
  if (err instanceof UsageError) return `${oneLine(err.message)} (see qwen2 ${err.command ? `${err.command} ` : ''}--help)`;
  if (isAbortError(err)) return 'stopped';
  if (!(err instanceof Error)) return `unexpected error: ${oneLine(String(err))}`;
  const message = oneLine(err.message);
  if (err.name === 'HubError') {
    const status = (err as { status?: number }).status;
    // The loader's unreachable-Hub message already suggests --model; add it if a version does not.
    if (status === undefined && !message.includes('--model')) return `${message}; use --model <dir> with a local model folder, or set HF_ENDPOINT`;
    return message;
  }
  // core's wording names its API option; on the command line it is a flag.
  if (err.name === 'ContextOverflowError') return `${message.replace('raise maxContext', 'raise --max-context')}`;
  if (SELF_EXPLAINING.has(err.name)) return message;
  const code = errorCode(err);
  if (code && UNREACHABLE_CODES.has(code)) return `cannot reach the network (${code}): ${message}; use --model <dir> with a local model folder`;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return message;
  if (code === 'EADDRINUSE') return `${message} (pick another --port)`;
  return `${err.name === 'Error' ? '' : `${err.name}: `}${message}`;
}
