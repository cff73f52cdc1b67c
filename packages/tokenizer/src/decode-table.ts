import { unicodeToBytes } from './byte-level.js';

/** The bytes of every token id, flat: token `id` is `bytes[offsets[id] .. offsets[id + 1])`. */
export interface DecodeTable {
  bytes: Uint8Array;
  offsets: Int32Array;
}

/**
 * Hugging Face's ByteLevel decoder, precomputed per token: every char of a token maps back to its byte;
 * a token with a char outside the byte table (an added token such as one with non-Latin-1 text)
 * contributes its UTF-8 bytes instead. Ids without a token have no bytes.
 */
export function buildDecodeTable(tokens: readonly (string | undefined)[], vocabSize: number): DecodeTable {
  const charToByte = unicodeToBytes();
  const encoder = new TextEncoder();
  const offsets = new Int32Array(vocabSize + 1);
  let bytes = new Uint8Array(vocabSize * 8);
  let at = 0;
  const ensure = (extra: number) => {
    if (at + extra <= bytes.length) return;
    const grown = new Uint8Array(Math.max(bytes.length * 2, at + extra));
    grown.set(bytes);
    bytes = grown;
  };
  for (let id = 0; id < vocabSize; id++) {
    offsets[id] = at;
    const token = tokens[id];
    if (token === undefined) continue;
    ensure(token.length * 4);
    let mapped = true;
    const start = at;
    for (const ch of token) {
      const b = charToByte.get(ch);
      if (b === undefined) {
        mapped = false;
        break;
      }
      bytes[at++] = b;
    }
    if (!mapped) {
      at = start;
      const utf8 = encoder.encode(token);
      ensure(utf8.length);
      bytes.set(utf8, at);
      at += utf8.length;
    }
  }
  offsets[vocabSize] = at;
  return { bytes: bytes.slice(0, at), offsets };
}
