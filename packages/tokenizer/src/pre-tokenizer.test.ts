import { describe, expect, it } from 'vitest';
import { splitPieces } from './pre-tokenizer.js';

const pieces = (text: string) => {
  const ends: number[] = [];
  splitPieces(text, ends);
  return ends.map((end, i) => text.slice(i === 0 ? 0 : ends[i - 1], end));
};

// Expected pieces follow the Oniguruma semantics of Qwen2's regex (also checked end to end, through ids,
// by the golden and differential tests).
describe('splitPieces (Qwen2 pre-tokenizer regex)', () => {
  it('splits case-insensitive contractions, including the long s', () => {
    expect(pieces("DON'T we'Re it'ſ a'lL")).toEqual(['DON', "'T", ' we', "'Re", ' it', "'ſ", ' a', "'lL"]);
  });
  it('keeps one leading non-letter with a letter run, and single digits', () => {
    expect(pieces('(hello) 123abc')).toEqual(['(hello', ')', ' ', '1', '2', '3', 'abc']);
  });
  it('treats U+0085 as whitespace and U+FEFF as a symbol, unlike JS \\s', () => {
    expect(pieces('a\u0085b')).toEqual(['a', '\u0085b']);
    expect(pieces("don\u0085't")).toEqual(['don', '\u0085', "'t"]);
    expect(pieces('\ufeff.com')).toEqual(['\ufeff.', 'com']);
  });
  it('splits whitespace runs as \\s*[\\r\\n]+ | \\s+(?!\\S) | \\s+', () => {
    expect(pieces('a  \n  b')).toEqual(['a', '  \n', ' ', ' b']);
    expect(pieces('a   ')).toEqual(['a', '   ']);
    expect(pieces('a \tb')).toEqual(['a', ' ', '\tb']);
    expect(pieces('x!!\r\n\r\ny')).toEqual(['x', '!!\r\n\r\n', 'y']);
  });
  it('handles astral letters and emoji', () => {
    expect(pieces('𝐀𝐁 😀😀x')).toEqual(['𝐀𝐁', ' 😀😀', 'x']);
  });
  it('covers the whole text', () => {
    const text = 'mixed 文本\u3000 123 😀\n\n';
    expect(pieces(text).join('')).toBe(text);
  });
});
