import { NFC_UNKNOWN, codePointClasses } from './unicode-classes.js';
import { NFC_UNKNOWN_RANGES } from './unicode-classes.generated.js';

/** Smallest code point the reference's NFC does not know: text below it takes the fast path. */
const FIRST_UNKNOWN = NFC_UNKNOWN_RANGES.length > 0 ? NFC_UNKNOWN_RANGES[0] : 0x110000;

/**
 * NFC as the reference tokenizer computes it. Its normalization tables are older than the host's
 * (Unicode 9 against Node 20's Unicode 17), so combining marks and compositions added since are left
 * untouched there: such a code point is an inert starter, neither reordered nor composed. Splitting the
 * text at those code points and normalizing the pieces in between gives exactly that.
 */
export function referenceNfc(text: string): string {
  const n = text.length;
  const cls = codePointClasses();
  let out = '';
  let start = 0;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < FIRST_UNKNOWN) continue;
    let width = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        width = 2;
      }
    }
    if (cls[c] & NFC_UNKNOWN) {
      out += text.slice(start, i).normalize('NFC') + text.slice(i, i + width);
      start = i + width;
    }
    i += width - 1;
  }
  return start === 0 ? text.normalize('NFC') : out + text.slice(start).normalize('NFC');
}

/** Replaces lone surrogates with U+FFFD (what a JS string becomes in UTF-8 at the Rust boundary). */
export function toWellFormed(text: string): string {
  const s = text as string & { isWellFormed?: () => boolean; toWellFormed?: () => string };
  if (typeof s.isWellFormed === 'function' && typeof s.toWellFormed === 'function') {
    return s.isWellFormed() ? text : s.toWellFormed();
  }
  return replaceLoneSurrogates(text);
}

/** {@link toWellFormed} for engines without String.prototype.toWellFormed (ES2024). */
export function replaceLoneSurrogates(text: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += text.slice(last, i) + '\ufffd';
    last = i + 1;
  }
  return last === 0 ? text : out + text.slice(last);
}
