import { LETTER_RANGES, NFC_UNKNOWN_RANGES, NUMBER_RANGES, WHITESPACE_RANGES } from './unicode-classes.generated.js';

/** Bit set in {@link codePointClasses} for `\p{L}`. */
export const LETTER = 1;
/** Bit set in {@link codePointClasses} for `\p{N}`. */
export const NUMBER = 2;
/** Bit set in {@link codePointClasses} for the reference engine's `\s`. */
export const WHITESPACE = 4;
/** Bit set in {@link codePointClasses} for code points the reference's NFC does not know. */
export const NFC_UNKNOWN = 8;

let table: Uint8Array | undefined;

/**
 * One byte of class bits per code point (0..0x10FFFF), as the reference regex engine (Oniguruma inside
 * Hugging Face tokenizers) classifies it. Pinned tables rather than the host's `\p{...}`, so ids do not
 * change with the JS engine's Unicode version. Built on first use (about 1 MB).
 */
export function codePointClasses(): Uint8Array {
  if (table) return table;
  const t = new Uint8Array(0x110000);
  const mark = (ranges: readonly number[], bit: number) => {
    for (let r = 0; r < ranges.length; r += 2) {
      for (let c = ranges[r]; c <= ranges[r + 1]; c++) t[c] |= bit;
    }
  };
  mark(LETTER_RANGES, LETTER);
  mark(NUMBER_RANGES, NUMBER);
  mark(WHITESPACE_RANGES, WHITESPACE);
  mark(NFC_UNKNOWN_RANGES, NFC_UNKNOWN);
  table = t;
  return t;
}
