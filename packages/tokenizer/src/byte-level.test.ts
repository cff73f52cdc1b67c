import { describe, expect, it } from 'vitest';
import { bytesToUnicode, unicodeToBytes } from './byte-level.js';

describe('bytesToUnicode', () => {
  it('is a bijection onto 256 distinct printable characters', () => {
    const table = bytesToUnicode();
    expect(new Set(table).size).toBe(256);
    const inverse = unicodeToBytes();
    table.forEach((ch, b) => expect(inverse.get(ch)).toBe(b));
  });
  it('matches the GPT-2 table on known entries', () => {
    const table = bytesToUnicode();
    expect(table[0x20]).toBe('\u0120'); // space -> Ġ
    expect(table[0x0a]).toBe('\u010a'); // newline -> Ċ
    expect(table[0x41]).toBe('A');
    expect(table[0x00]).toBe('\u0100');
    expect(table[0xad]).toBe('\u0143'); // soft hyphen is the last remapped byte
  });
});
