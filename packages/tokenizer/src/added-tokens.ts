/** A token added on top of the BPE vocabulary (tokenizer.json `added_tokens`), with its matching flags. */
export interface AddedToken {
  id: number;
  content: string;
  /** Special tokens can be skipped when decoding and disabled when encoding (`allowSpecial: false`). */
  special: boolean;
  /** Only match when not inside a word. */
  singleWord: boolean;
  /** Absorb the whitespace on the left of a match. */
  lstrip: boolean;
  /** Absorb the whitespace on the right of a match. */
  rstrip: boolean;
  /** Match against the normalized (NFC) text instead of the raw text. */
  normalized: boolean;
}

/** A piece of input: either text still to be tokenized, or an added token already recognized. */
export type Segment = { text: string; id?: undefined } | { text?: undefined; id: number };

// Rust regex `\w` / `\s` (Unicode), used by Hugging Face for single_word / lstrip / rstrip.
const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\u200c\u200d]/u;
const SPACE_CHAR = /\p{White_Space}/u;

/**
 * Finds added tokens in text the way Hugging Face's AddedVocabulary does: leftmost-longest matches
 * (Aho-Corasick semantics), honouring single_word / lstrip / rstrip, and leaving the text between matches
 * to the normal pipeline.
 */
export class AddedTokenMatcher {
  /** Tokens by their first UTF-16 unit, longest first. */
  private readonly byFirstUnit = new Map<number, AddedToken[]>();
  /** 1 where a UTF-16 unit starts some token, for a fast scan of text without tokens. */
  private readonly firstUnits = new Uint8Array(65536);
  readonly isEmpty: boolean;

  constructor(tokens: readonly AddedToken[]) {
    for (const token of tokens) {
      if (token.content.length === 0) continue;
      const first = token.content.charCodeAt(0);
      let list = this.byFirstUnit.get(first);
      if (!list) this.byFirstUnit.set(first, (list = []));
      list.push(token);
      this.firstUnits[first] = 1;
    }
    for (const list of this.byFirstUnit.values()) list.sort((a, b) => b.content.length - a.content.length);
    this.isEmpty = this.byFirstUnit.size === 0;
  }

  /**
   * Splits `text` into segments. `enabled` decides per token whether it may match (e.g. special tokens
   * are disabled by `allowSpecial: false`).
   */
  split(text: string, enabled: (token: AddedToken) => boolean, out: Segment[]): void {
    if (this.isEmpty) {
      if (text.length > 0) out.push({ text });
      return;
    }
    const n = text.length;
    const firstUnits = this.firstUnits;
    let emitted = 0; // end of the last segment pushed
    let i = 0;
    while (i < n) {
      if (!firstUnits[text.charCodeAt(i)]) {
        i++;
        continue;
      }
      const token = this.longestAt(text, i, enabled);
      if (!token) {
        i++;
        continue;
      }
      let start = i;
      let stop = i + token.content.length;
      if (token.singleWord) {
        const before = start > 0 && WORD_CHAR.test(lastCodePoint(text, start));
        const after = stop < n && WORD_CHAR.test(String.fromCodePoint(text.codePointAt(stop)!));
        if (before || after) {
          // Discarded match: the scan resumes after it, as Aho-Corasick's iterator does.
          i = stop;
          continue;
        }
      }
      if (token.lstrip) {
        let s = start;
        while (s > emitted && SPACE_CHAR.test(text[s - 1])) s--;
        start = s;
      }
      if (token.rstrip) {
        while (stop < n && SPACE_CHAR.test(text[stop])) stop++;
      }
      if (emitted < start) out.push({ text: text.slice(emitted, start) });
      out.push({ id: token.id });
      emitted = stop;
      i = stop;
    }
    if (emitted < n) out.push({ text: text.slice(emitted) });
  }

  private longestAt(text: string, i: number, enabled: (token: AddedToken) => boolean): AddedToken | undefined {
    const list = this.byFirstUnit.get(text.charCodeAt(i));
    if (!list) return undefined;
    for (const token of list) {
      if (enabled(token) && text.startsWith(token.content, i)) return token;
    }
    return undefined;
  }
}

function lastCodePoint(text: string, end: number): string {
  const c = text.charCodeAt(end - 1);
  if (c >= 0xdc00 && c <= 0xdfff && end >= 2) {
    const h = text.charCodeAt(end - 2);
    if (h >= 0xd800 && h <= 0xdbff) return text.slice(end - 2, end);
  }
  return text[end - 1];
}
