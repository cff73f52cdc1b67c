// The vocabulary as the grammar sees it: each token's bytes, a byte trie of all of them (so that the mask
// walk feeds a shared prefix once and drops a whole subtree at its first refused byte), and which tokens
// are plain string text (most of a vocabulary, accepted at once inside a string).
import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import { utf8Lead } from './utf8.js';

const cache = new WeakMap<Qwen2Tokenizer, TokenVocabulary>();

/**
 * Token bytes and their trie for grammar masks. Special tokens (`<|im_end|>` ...) and ids without a
 * token (the padding rows of the embedding) are left out: they never spell document text.
 */
export class TokenVocabulary {
  /** Ids 0..size-1: the logits' length, which may exceed the tokenizer's vocabulary. */
  readonly size: number;
  /** Plain string characters of each token (bytes 0x20-0x7f but `"` and `\`, whole UTF-8 characters); -1 when not plain or left out. */
  readonly plainChars: Int32Array;
  /** The usable tokens that are not plain string text. */
  readonly others: Int32Array;
  /**
   * The others that a string may still accept: those not refused at once inside a string by a control
   * byte (a newline, a tab) before any quote, backslash or split character.
   */
  readonly stringOthers: Int32Array;
  /** Every usable token's bytes, flat: token id is `flat[start[id] .. start[id + 1])` (empty when left out). */
  private readonly flat: Uint8Array;
  private readonly start: Int32Array;
  // The trie, node 0 the root: first child, next sibling, the byte leading to the node, the first token ending there.
  private readonly child: Int32Array;
  private readonly sibling: Int32Array;
  private readonly label: Uint8Array;
  private readonly firstToken: Int32Array;
  /** The next token ending at the same node. */
  private readonly nextToken: Int32Array;

  /** The vocabulary of `tokenizer` for logits of `size` entries, built once per tokenizer. */
  static of(tokenizer: Qwen2Tokenizer, size: number): TokenVocabulary {
    let v = cache.get(tokenizer);
    if (!v || v.size !== size) {
      v = new TokenVocabulary(tokenizer, size);
      cache.set(tokenizer, v);
    }
    return v;
  }

  private constructor(tokenizer: Qwen2Tokenizer, size: number) {
    if (typeof (tokenizer as Partial<Qwen2Tokenizer>).tokenBytes !== 'function') {
      throw new TypeError('constrained generation needs a tokenizer with tokenBytes() (@qwen2-ts/tokenizer 0.2 or later)');
    }
    this.size = size;
    this.plainChars = new Int32Array(size).fill(-1);
    // Flat arrays, not one view per token: 151,936 views cost about 15 MB of heap.
    this.start = new Int32Array(size + 1);
    let total = 0;
    for (let id = 0; id < size; id++) {
      this.start[id] = total;
      total += usableBytes(tokenizer, id)?.length ?? 0;
    }
    this.start[size] = total;
    this.flat = new Uint8Array(total);
    const others: number[] = [];
    for (let id = 0; id < size; id++) {
      const b = usableBytes(tokenizer, id);
      if (!b) continue;
      this.flat.set(b, this.start[id]!);
      const chars = plainChars(b);
      this.plainChars[id] = chars;
      if (chars < 0) others.push(id);
    }
    this.others = Int32Array.from(others);
    this.stringOthers = this.others.filter((id) => {
      const b = this.bytesOf(id)!;
      return b[plainPrefix(b)]! >= 0x20;
    });

    // At most one node per byte; trimmed to the nodes used once built.
    const nodes = total + 1;
    const child = new Int32Array(nodes).fill(-1);
    const sibling = new Int32Array(nodes).fill(-1);
    const label = new Uint8Array(nodes);
    const firstToken = new Int32Array(nodes).fill(-1);
    this.nextToken = new Int32Array(size).fill(-1);
    // The root's children by byte, for fast inserts under the widest node.
    const rootChild = new Int32Array(256).fill(-1);
    let used = 1;
    for (let id = 0; id < size; id++) {
      const b = this.bytesOf(id);
      if (!b) continue;
      let node = rootChild[b[0]!]!;
      if (node < 0) {
        node = used++;
        label[node] = b[0]!;
        rootChild[b[0]!] = node;
        sibling[node] = child[0]!;
        child[0] = node;
      }
      for (let i = 1; i < b.length; i++) {
        let c = child[node]!;
        while (c >= 0 && label[c] !== b[i]) c = sibling[c]!;
        if (c < 0) {
          c = used++;
          label[c] = b[i]!;
          sibling[c] = child[node]!;
          child[node] = c;
        }
        node = c;
      }
      this.nextToken[id] = firstToken[node]!;
      firstToken[node] = id;
    }
    this.child = child.slice(0, used);
    this.sibling = sibling.slice(0, used);
    this.label = label.slice(0, used);
    this.firstToken = firstToken.slice(0, used);
  }

  /** The bytes of a usable token, or undefined (special, without a token, or outside the logits). */
  bytesOf(id: number): Uint8Array | undefined {
    const from = this.start[id]!, to = this.start[id + 1]!;
    return to > from ? this.flat.subarray(from, to) : undefined;
  }

  /**
   * Marks in `mask` every token that `feed` accepts: `feed(state, byte)` returns the state after the
   * byte, or undefined when refused. Each trie node is fed once, and a refused byte ends its subtree.
   */
  walk<S>(state: S, feed: (state: S, byte: number) => S | undefined, mask: Uint8Array): void {
    const visit = (node: number, s: S): void => {
      for (let c = this.child[node]!; c >= 0; c = this.sibling[c]!) {
        const next = feed(s, this.label[c]!);
        if (next === undefined) continue;
        for (let t = this.firstToken[c]!; t >= 0; t = this.nextToken[t]!) mask[t] = 1;
        visit(c, next);
      }
    };
    visit(0, state);
  }
}

/** A token's bytes when a document may hold them: not special, not empty, inside the tokenizer's ids. */
function usableBytes(tokenizer: Qwen2Tokenizer, id: number): Uint8Array | undefined {
  if (id >= tokenizer.vocabSize || tokenizer.isSpecialToken(id)) return undefined;
  const b = tokenizer.tokenBytes(id);
  return b && b.length > 0 ? b : undefined;
}

/** Characters of a token that is plain string text, else -1. */
function plainChars(b: Uint8Array): number {
  let chars = 0;
  let i = 0;
  for (; i < b.length; chars++) {
    const n = plainCharBytes(b, i);
    if (n === 0) return -1;
    i += n;
  }
  return chars;
}

/** Bytes of the plain string characters a token starts with. */
function plainPrefix(b: Uint8Array): number {
  let i = 0;
  for (let n = plainCharBytes(b, 0); n > 0; n = plainCharBytes(b, i)) i += n;
  return i;
}

/**
 * Bytes of the plain string character at b[i]: 0x20-0x7f but `"` and `\`, or a whole UTF-8 character
 * (no overlong forms or surrogates); 0 when it is not one (or b ends).
 */
function plainCharBytes(b: Uint8Array, i: number): number {
  if (i >= b.length) return 0;
  const x = b[i]!;
  if (x < 0x80) return x < 0x20 || x === 0x22 || x === 0x5c ? 0 : 1;
  // A whole UTF-8 character: its lead byte, then its continuation bytes in range.
  const lead = utf8Lead(x);
  if (!lead) return 0;
  const need = lead & 0xff;
  let lo = (lead >> 8) & 0xff, hi = lead >> 16;
  if (i + need >= b.length) return 0; // the character goes on in the next token
  for (let k = 1; k <= need; k++) {
    const c = b[i + k]!;
    if (c < lo || c > hi) return 0;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}
