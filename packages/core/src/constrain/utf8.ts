// The shape of a UTF-8 character from its lead byte, shared by the string automaton and the vocabulary's
// plain-text test so that both take exactly the same bytes as valid.

/**
 * For a lead byte x >= 0x80: the continuation bytes the character needs and the range of the first one
 * (later ones are 0x80-0xbf), packed as `need | lo << 8 | hi << 16`; 0 when x starts no character. The
 * first continuation's range excludes overlong forms, surrogates and code points past U+10FFFF.
 */
export function utf8Lead(x: number): number {
  if (x >= 0xc2 && x <= 0xdf) return 1 | (0x80 << 8) | (0xbf << 16);
  if (x === 0xe0) return 2 | (0xa0 << 8) | (0xbf << 16);
  if (x === 0xed) return 2 | (0x80 << 8) | (0x9f << 16);
  if (x >= 0xe1 && x <= 0xef) return 2 | (0x80 << 8) | (0xbf << 16);
  if (x === 0xf0) return 3 | (0x90 << 8) | (0xbf << 16);
  if (x >= 0xf1 && x <= 0xf3) return 3 | (0x80 << 8) | (0xbf << 16);
  if (x === 0xf4) return 3 | (0x80 << 8) | (0x8f << 16);
  return 0;
}
