/**
 * GPT-2's reversible byte-to-unicode table, used by byte-level BPE (Qwen2 included): every byte maps to
 * a printable code point so that BPE can run on strings. Printable Latin-1 bytes map to themselves; the
 * other 68 bytes map to U+0100 onwards, in byte order.
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}

/** The inverse of {@link bytesToUnicode}: code point to byte value. */
export function unicodeToBytes(): Map<string, number> {
  const inverse = new Map<string, number>();
  bytesToUnicode().forEach((ch, b) => inverse.set(ch, b));
  return inverse;
}
