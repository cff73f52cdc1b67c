import { LETTER, NUMBER, WHITESPACE, codePointClasses } from './unicode-classes.js';

/**
 * Qwen2's pre-tokenizer regex, as written in its tokenizer.json:
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * implemented as a hand-written scanner with Oniguruma's semantics (first matching alternative wins,
 * greedy with backtracking) over pinned Unicode tables. A JS RegExp cannot be used as is: Node 20 has no
 * `(?i:...)`, JS `\s` differs from Oniguruma's on U+0085 and U+FEFF, and `\p{L}` follows the host's Unicode
 * version. The scanner is also several times faster than a RegExp.
 */
export const QWEN2_PRE_TOKENIZER_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const CR = 0x0d;
const LF = 0x0a;
const ANY_CLASS = LETTER | NUMBER | WHITESPACE;

/** Code point at UTF-16 index i (a lone surrogate reads as itself, classified as "other"). */
function codePointAt(text: string, i: number, n: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

/** Length (in UTF-16 units, after the apostrophe) of a case-insensitive contraction at i, or 0. */
function contractionLength(text: string, i: number, n: number): number {
  if (i >= n) return 0;
  const c1 = text.charCodeAt(i);
  // Oniguruma's case folding maps U+017F (long s) onto 's'; no other code point folds onto these letters
  // (checked against the reference over all code points).
  if (c1 === 0x17f) return 1;
  if (!isAsciiLetter(c1)) return 0;
  const l1 = c1 | 0x20;
  if (l1 === 0x73 || l1 === 0x74 || l1 === 0x6d || l1 === 0x64) return 1; // 's 't 'm 'd
  if (i + 1 >= n) return 0;
  const c2 = text.charCodeAt(i + 1);
  if (!isAsciiLetter(c2)) return 0;
  const l2 = c2 | 0x20;
  if ((l1 === 0x72 || l1 === 0x76) && l2 === 0x65) return 2; // 're 've
  if (l1 === 0x6c && l2 === 0x6c) return 2; // 'll
  return 0;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/**
 * Splits `text` into the pieces Qwen2's pre-tokenizer regex produces, appending each piece's end index
 * (UTF-16) to `ends`; piece k spans [ends[k-1] (or 0), ends[k]). The pieces always cover the text.
 */
export function splitPieces(text: string, ends: number[]): void {
  const cls = codePointClasses();
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = codePointAt(text, i, n);
    const w = c > 0xffff ? 2 : 1;
    const k = cls[c];

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c === 0x27) {
      const m = contractionLength(text, i + 1, n);
      if (m > 0) {
        i += 1 + m;
        ends.push(i);
        continue;
      }
    }

    // [^\r\n\p{L}\p{N}]?\p{L}+
    let letterStart = -1;
    if (k & LETTER) letterStart = i + w;
    else if (!(k & NUMBER) && c !== CR && c !== LF && i + w < n) {
      const c2 = codePointAt(text, i + w, n);
      if (cls[c2] & LETTER) letterStart = i + w + (c2 > 0xffff ? 2 : 1);
    }
    if (letterStart >= 0) {
      let j = letterStart;
      while (j < n) {
        const d = codePointAt(text, j, n);
        if (!(cls[d] & LETTER)) break;
        j += d > 0xffff ? 2 : 1;
      }
      i = j;
      ends.push(i);
      continue;
    }

    // \p{N}
    if (k & NUMBER) {
      i += w;
      ends.push(i);
      continue;
    }

    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    let otherStart = -1;
    if (!(k & ANY_CLASS)) otherStart = i;
    else if (c === 0x20 && i + 1 < n && !(cls[codePointAt(text, i + 1, n)] & ANY_CLASS)) otherStart = i + 1;
    if (otherStart >= 0) {
      let j = otherStart;
      while (j < n) {
        const d = codePointAt(text, j, n);
        if (cls[d] & ANY_CLASS) break;
        j += d > 0xffff ? 2 : 1;
      }
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d !== CR && d !== LF) break;
        j++;
      }
      i = j;
      ends.push(i);
      continue;
    }

    // Only whitespace is left (every whitespace code point is in the BMP). Take the whole run:
    //   \s*[\r\n]+  -> up to and including the run's last CR/LF, if it has one;
    //   \s+(?!\S)   -> the whole run at the end of text, else all but its last char (if >= 2 chars);
    //   \s+         -> the single char.
    let j = i;
    let lastNewline = -1;
    while (j < n) {
      const d = text.charCodeAt(j);
      if (!(cls[d] & WHITESPACE)) break;
      if (d === CR || d === LF) lastNewline = j;
      j++;
    }
    if (lastNewline >= 0) i = lastNewline + 1;
    else if (j === n || j - i === 1) i = j;
    else i = j - 1;
    ends.push(i);
  }
}
