/** Incremental detokenizer: text out as tokens arrive, never a broken UTF-8 sequence. */
export interface StreamDecoder {
  /** Adds one token id and returns the text that became complete (possibly ''). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete sequence decodes to U+FFFD) and resets. */
  flush(): string;
}

/**
 * Builds a {@link StreamDecoder} from a function giving each token's bytes. A token can end in the middle
 * of a UTF-8 character (emoji span several tokens); the streaming TextDecoder holds those bytes back until
 * the character completes, and its output concatenates to exactly what decoding all bytes at once gives.
 */
export function createByteStreamDecoder(bytesOf: (id: number) => Uint8Array | undefined): StreamDecoder {
  let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  return {
    push(id: number): string {
      const bytes = bytesOf(id);
      if (!bytes || bytes.length === 0) return '';
      return decoder.decode(bytes, { stream: true });
    },
    flush(): string {
      const rest = decoder.decode();
      decoder = new TextDecoder('utf-8', { ignoreBOM: true });
      return rest;
    },
  };
}
