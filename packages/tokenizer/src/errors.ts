/** Why a tokenizer operation failed: what was missing or malformed, named in the message. */
export class TokenizerError extends Error {
  /** A short machine-readable reason, e.g. `missing-file`, `bad-json`, `bad-id`, `template`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
    this.code = code;
  }
}
