// A byte-level matcher of JSON documents of a value grammar (json-schema.ts): a pushdown automaton whose
// stack is an immutable linked list of frames, so that a state is shared, never copied, when the mask
// walk tries every token from it. A state is a set of stacks (alternatives of anyOf, or a number or
// literal that may end or go on); a byte that no stack accepts is refused.
//
// Whitespace between tokens is limited as llama.cpp's JSON grammar limits it (nothing, one space, or a
// newline and up to 20 spaces or tabs), so that a model cannot fill its budget with blanks; numbers have
// at most 16 integer and 16 fraction digits and 2 exponent digits; nothing may follow the document.
import { ANY, ANY_OBJECT, type ValueNode } from './json-schema.js';
import { utf8Lead } from './utf8.js';

/** A frame of the stack: the value being matched at one level. Frames are immutable. */
interface Frame {
  /** Feeds byte b with `below` under this frame; pushes every resulting stack onto `out`. */
  feed(b: number, below: Stack | null, out: Stack[]): void;
  /** Whether the frame's value may end here, before the next byte (a number, a literal). */
  readonly endable: boolean;
  /** This frame once the child value above it has ended. */
  afterChild(): Frame;
}

/** A stack of frames, top first. */
export class Stack {
  constructor(readonly top: Frame, readonly below: Stack | null) {}
}

/** A matcher state: the stacks still alive (empty: the bytes so far are refused). */
export type GrammarState = readonly Stack[];

const SPACE = 0x20, TAB = 0x09, NL = 0x0a, QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a, MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e;
const MAX_INDENT = 20, MAX_INT_DIGITS = 16, MAX_FRACTION_DIGITS = 16, MAX_EXPONENT_DIGITS = 2;
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;
const isHex = (b: number): boolean => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const isBlank = (b: number): boolean => b === SPACE || b === NL || b === TAB || b === 0x0d;

/**
 * Whitespace before a token: gap 0 is none yet, 1 one space (nothing more), 2 + k a newline and k
 * spaces or tabs. Returns the next gap, or -1 when b is not allowed.
 */
function nextGap(gap: number, b: number): number {
  if (b === NL) return gap === 0 ? 2 : -1;
  if (b === SPACE && gap === 0) return 1;
  if ((b === SPACE || b === TAB) && gap >= 2 && gap < 2 + MAX_INDENT) return gap + 1;
  return -1;
}

/** The parent of a finished child, resumed. */
function resume(below: Stack): Stack {
  return new Stack(below.top.afterChild(), below.below);
}

/** The frame's value ended before b: b goes to the resumed parent. */
function endAndRefeed(below: Stack | null, b: number, out: Stack[]): void {
  if (!below) return;
  const parent = resume(below);
  parent.top.feed(b, parent.below, out);
}

/** Starts a value of `node` with its first byte b, on top of `below`. */
function startValue(node: ValueNode, b: number, below: Stack, out: Stack[]): void {
  switch (node.kind) {
    case 'any':
      // Each kind of value starts with bytes of its own: at most one of them takes b.
      for (const kind of ANY_KINDS) startValue(kind, b, below, out);
      return;
    case 'object':
      if (b === 0x7b) out.push(new Stack(new ObjectFrame(node, OPEN, 0, 0, NO_CANDIDATES, 0, -1), below));
      return;
    case 'array':
      if (b === 0x5b) out.push(new Stack(new ArrayFrame(node, OPEN, 0, 0), below));
      return;
    case 'string':
      if (b === QUOTE) out.push(new Stack(new StringFrame(node.minLength, node.maxLength, 0, 0, 0, 0, 0), below));
      return;
    case 'number':
      if (b === MINUS || isDigit(b)) startNumber(node, b, below, out);
      return;
    case 'literal':
      new LiteralFrame(node.values, 0).feed(b, below, out);
      return;
    case 'union':
      for (const option of node.options) startValue(option, b, below, out);
      return;
    case 'sequence':
      new SequenceFrame(node, 0).feed(b, below, out);
      return;
  }
}

/** A sequence `index` parts in: a literal part starts with its first byte, a value part may have a gap before it. */
class SequenceFrame implements Frame {
  constructor(readonly node: Extract<ValueNode, { kind: 'sequence' }>, readonly index: number) {}
  get endable(): boolean {
    return this.index === this.node.parts.length;
  }
  feed(b: number, below: Stack | null, out: Stack[]): void {
    const part = this.node.parts[this.index];
    if (!part) {
      endAndRefeed(below, b, out);
      return;
    }
    const self = new Stack(this, below);
    if (part.kind === 'literal') startValue(part, b, self, out);
    else new ValueFrame(part, 0).feed(b, self, out);
  }
  afterChild(): Frame {
    return new SequenceFrame(this.node, this.index + 1);
  }
}

type NumberNode = Extract<ValueNode, { kind: 'number' }>;
const ANY_STRING: ValueNode = { kind: 'string', minLength: 0, maxLength: Infinity };
/** Any value: each kind of JSON value, unconstrained. */
const ANY_KINDS: ValueNode[] = [
  ANY_OBJECT,
  { kind: 'array', items: ANY, minItems: 0, maxItems: Infinity },
  ANY_STRING,
  { kind: 'number', integer: false, min: -Infinity, max: Infinity },
  { kind: 'literal', values: ['true', 'false', 'null'].map((t) => new TextEncoder().encode(t)) },
];

/** Before a value: optional whitespace, then the value's first byte. */
class ValueFrame implements Frame {
  readonly endable = false;
  constructor(readonly node: ValueNode, readonly gap: number) {}
  feed(b: number, below: Stack | null, out: Stack[]): void {
    if (isBlank(b)) {
      const gap = nextGap(this.gap, b);
      if (gap >= 0) out.push(new Stack(new ValueFrame(this.node, gap), below));
      return;
    }
    startValue(this.node, b, below!, out);
  }
  afterChild(): Frame {
    throw new Error('a value frame has no child');
  }
}

/** The bottom of every stack: the document, then nothing. */
class RootFrame implements Frame {
  constructor(readonly done: boolean) {}
  get endable(): boolean {
    return this.done;
  }
  feed(): void {}
  afterChild(): Frame {
    return ROOT_DONE;
  }
}
const ROOT_DONE = new RootFrame(true);

// Object stages.
const OPEN = 0, KEY = 1, FREE_KEY = 2, COLON_NEXT = 3, VALUE = 4, AFTER = 5, COMMA_NEXT = 6;
const NO_CANDIDATES: readonly number[] = [];

/**
 * An object after its '{'. Declared properties come in their order; `next` is the first that may still
 * come (the ones before it were written or skipped). KEY matches a declared key byte by byte among
 * `candidates` (`pos` bytes in); FREE_KEY is any key (a string frame above this one).
 */
class ObjectFrame implements Frame {
  readonly endable = false;
  constructor(
    readonly node: Extract<ValueNode, { kind: 'object' }>,
    readonly stage: number,
    readonly next: number,
    readonly gap: number,
    readonly candidates: readonly number[],
    readonly pos: number,
    /** The property whose value is being matched (-1: a free key's). */
    readonly chosen: number,
  ) {}

  private with(stage: number, gap = 0): ObjectFrame {
    return new ObjectFrame(this.node, stage, this.next, gap, this.candidates, this.pos, this.chosen);
  }

  /** Whether every required property has been written. */
  private canClose(): boolean {
    const props = this.node.properties;
    for (let i = this.next; i < props.length; i++) if (props[i]!.required) return false;
    return true;
  }

  /** The declared properties that may come next: up to and including the first required one. */
  private nextKeys(): number[] {
    const props = this.node.properties;
    const keys: number[] = [];
    for (let i = this.next; i < props.length; i++) {
      keys.push(i);
      if (props[i]!.required) break;
    }
    return keys;
  }

  private startKey(below: Stack | null, out: Stack[]): void {
    if (this.node.properties.length > 0) {
      const keys = this.nextKeys();
      if (keys.length > 0) out.push(new Stack(new ObjectFrame(this.node, KEY, this.next, 0, keys, 0, -1), below));
    } else if (this.node.additional) {
      // The key's opening quote was b: a string starts above this frame.
      startValue(ANY_STRING, QUOTE, new Stack(new ObjectFrame(this.node, FREE_KEY, this.next, 0, NO_CANDIDATES, 0, -1), below), out);
    }
  }

  feed(b: number, below: Stack | null, out: Stack[]): void {
    const stage = this.stage;
    if (stage === KEY) {
      const matching: number[] = [];
      for (const i of this.candidates) {
        const key = this.node.properties[i]!.key;
        if (key[this.pos] !== b) continue;
        if (key.length === this.pos + 1) {
          // The closing quote: exactly one key ends here.
          out.push(new Stack(new ObjectFrame(this.node, COLON_NEXT, i + 1, 0, NO_CANDIDATES, 0, i), below));
          return;
        }
        matching.push(i);
      }
      if (matching.length > 0) out.push(new Stack(new ObjectFrame(this.node, KEY, this.next, 0, matching, this.pos + 1, -1), below));
      return;
    }
    if (isBlank(b)) {
      const gap = nextGap(this.gap, b);
      if (gap >= 0 && stage !== FREE_KEY && stage !== VALUE) out.push(new Stack(this.with(stage, gap), below));
      return;
    }
    switch (stage) {
      case OPEN:
        if (b === 0x7d) {
          if (this.canClose() && below) out.push(resume(below));
        } else if (b === QUOTE) this.startKey(below, out);
        return;
      case COLON_NEXT:
        if (b === COLON) {
          const value = this.chosen >= 0 ? this.node.properties[this.chosen]!.value : this.node.additional!;
          out.push(new Stack(new ValueFrame(value, 0), new Stack(this.with(VALUE), below)));
        }
        return;
      case AFTER:
        if (b === 0x7d) {
          if (this.canClose() && below) out.push(resume(below));
        } else if (b === COMMA && this.moreKeys()) out.push(new Stack(this.with(COMMA_NEXT), below));
        return;
      case COMMA_NEXT:
        if (b === QUOTE) this.startKey(below, out);
        return;
    }
  }

  private moreKeys(): boolean {
    return this.node.properties.length > 0 ? this.next < this.node.properties.length : this.node.additional !== null;
  }

  afterChild(): Frame {
    // FREE_KEY's child is the key string; VALUE's the value.
    return this.with(this.stage === FREE_KEY ? COLON_NEXT : AFTER);
  }
}

/** An array after its '['; `count` items ended so far. */
class ArrayFrame implements Frame {
  readonly endable = false;
  constructor(readonly node: Extract<ValueNode, { kind: 'array' }>, readonly stage: number, readonly count: number, readonly gap: number) {}

  feed(b: number, below: Stack | null, out: Stack[]): void {
    if (isBlank(b)) {
      const gap = nextGap(this.gap, b);
      if (gap >= 0 && this.stage !== VALUE) out.push(new Stack(new ArrayFrame(this.node, this.stage, this.count, gap), below));
      return;
    }
    const node = this.node;
    switch (this.stage) {
      case OPEN:
        if (b === 0x5d) {
          if (node.minItems === 0 && below) out.push(resume(below));
        } else if (node.maxItems > 0) startValue(node.items, b, new Stack(new ArrayFrame(node, VALUE, 0, 0), below), out);
        return;
      case AFTER:
        if (b === 0x5d) {
          if (this.count >= node.minItems && below) out.push(resume(below));
        } else if (b === COMMA && this.count < node.maxItems) out.push(new Stack(new ArrayFrame(node, COMMA_NEXT, this.count, 0), below));
        return;
      case COMMA_NEXT:
        startValue(node.items, b, new Stack(new ArrayFrame(node, VALUE, this.count, 0), below), out);
        return;
    }
  }

  afterChild(): Frame {
    return new ArrayFrame(this.node, AFTER, this.count + 1, 0);
  }
}

/**
 * A string after its opening quote: `length` characters so far (code points; an escape is one), `need`
 * more UTF-8 continuation bytes in [lo, hi] (the first one's range: overlong forms and surrogates
 * excluded, so the bytes are always valid UTF-8), `escape` 1 after a backslash, 2-5 inside \uXXXX.
 */
class StringFrame implements Frame {
  readonly endable = false;
  constructor(
    readonly minLength: number,
    readonly maxLength: number,
    readonly length: number,
    readonly need: number,
    readonly lo: number,
    readonly hi: number,
    readonly escape: number,
  ) {}

  /** Whether plain characters may follow directly (no escape or character in progress), and how many. */
  get plainRoom(): number {
    return this.escape === 0 && this.need === 0 ? this.maxLength - this.length : -1;
  }

  private next(length: number, need: number, lo: number, hi: number, escape: number): StringFrame {
    return new StringFrame(this.minLength, this.maxLength, length, need, lo, hi, escape);
  }

  feed(b: number, below: Stack | null, out: Stack[]): void {
    const n = this.length;
    let s: StringFrame | undefined;
    if (this.escape === 1) {
      if (b === QUOTE || b === BACKSLASH || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) s = this.next(n + 1, 0, 0, 0, 0);
      // \u escapes only where length is unbounded: a surrogate pair is one character to a validator, two here.
      else if (b === 0x75 && this.minLength === 0 && this.maxLength === Infinity) s = this.next(n, 0, 0, 0, 2);
    } else if (this.escape >= 2) {
      if (isHex(b)) s = this.escape === 5 ? this.next(n + 1, 0, 0, 0, 0) : this.next(n, 0, 0, 0, this.escape + 1);
    } else if (this.need > 0) {
      if (b >= this.lo && b <= this.hi) s = this.need === 1 ? this.next(n + 1, 0, 0, 0, 0) : this.next(n, this.need - 1, 0x80, 0xbf, 0);
    } else if (b === QUOTE) {
      if (n >= this.minLength && below) out.push(resume(below));
      return;
    } else if (n < this.maxLength) {
      if (b === BACKSLASH) s = this.next(n, 0, 0, 0, 1);
      else if (b >= 0x20 && b < 0x80) s = this.next(n + 1, 0, 0, 0, 0);
      else if (b >= 0x80) {
        const lead = utf8Lead(b);
        if (lead) s = this.next(n, lead & 0xff, (lead >> 8) & 0xff, lead >> 16, 0);
      }
    }
    if (s) out.push(new Stack(s, below));
  }

  afterChild(): Frame {
    throw new Error('a string frame has no child');
  }
}

// Number parts.
const SIGN = 0, ZERO = 1, INT = 2, POINT = 3, FRACTION = 4, EXP_MARK = 5, EXP_SIGN = 6, EXPONENT = 7;

function startNumber(node: NumberNode, b: number, below: Stack, out: Stack[]): void {
  const first = new NumberFrame(node, SIGN, 0, b === MINUS, 0);
  if (b === MINUS) {
    if (first.reachable()) out.push(new Stack(first, below));
  } else first.feed(b, below, out);
}

/**
 * A number in progress: the part it is in and that part's digits. An integer with bounds also keeps its
 * sign and value so far, and takes a digit only when some integer within the bounds still starts so.
 */
class NumberFrame implements Frame {
  constructor(readonly node: NumberNode, readonly part: number, readonly digits: number, readonly negative: boolean, readonly value: number) {}
  get integer(): boolean {
    return this.node.integer;
  }
  get endable(): boolean {
    if (this.part === ZERO || this.part === INT) return this.inBounds(this.signed(this.value));
    return this.part === FRACTION || this.part === EXPONENT;
  }
  private signed(v: number): number {
    return this.negative ? -v : v;
  }
  private inBounds(x: number): boolean {
    return x >= this.node.min && x <= this.node.max;
  }
  /** Whether some integer within the bounds has this frame's digits as its beginning. */
  reachable(): boolean {
    const { min, max } = this.node;
    if (min === -Infinity && max === Infinity) return true;
    if (this.part === SIGN) return min <= 0; // "-0" is 0
    if (this.part === ZERO) return this.inBounds(0);
    // |x| in [v * 10^j, v * 10^j + 10^j - 1] for j more digits.
    for (let j = 0, p = 1; this.digits + j <= MAX_INT_DIGITS; j++, p *= 10) {
      const a = this.signed(this.value * p), b = this.signed(this.value * p + p - 1);
      if (Math.max(Math.min(a, b), min) <= Math.min(Math.max(a, b), max)) return true;
    }
    return false;
  }
  private to(part: number, digits: number, below: Stack | null, out: Stack[], value = 0): void {
    const next = new NumberFrame(this.node, part, digits, this.negative, value);
    if ((part === ZERO || part === INT) && !next.reachable()) return;
    out.push(new Stack(next, below));
  }
  feed(b: number, below: Stack | null, out: Stack[]): void {
    const digit = isDigit(b);
    switch (this.part) {
      case SIGN:
        if (b === 0x30) this.to(ZERO, 1, below, out);
        else if (digit) this.to(INT, 1, below, out, b - 0x30);
        return;
      case ZERO:
      case INT:
        if (digit && this.part === INT && this.digits < MAX_INT_DIGITS) this.to(INT, this.digits + 1, below, out, this.value * 10 + (b - 0x30));
        else if (b === DOT && !this.integer) this.to(POINT, 0, below, out);
        else if ((b === 0x65 || b === 0x45) && !this.integer) this.to(EXP_MARK, 0, below, out);
        else if (!digit && this.endable) endAndRefeed(below, b, out);
        return;
      case POINT:
        if (digit) this.to(FRACTION, 1, below, out);
        return;
      case FRACTION:
        if (digit) {
          if (this.digits < MAX_FRACTION_DIGITS) this.to(FRACTION, this.digits + 1, below, out);
        } else if (b === 0x65 || b === 0x45) this.to(EXP_MARK, 0, below, out);
        else endAndRefeed(below, b, out);
        return;
      case EXP_MARK:
        if (b === PLUS || b === MINUS) this.to(EXP_SIGN, 0, below, out);
        else if (digit) this.to(EXPONENT, 1, below, out);
        return;
      case EXP_SIGN:
        if (digit) this.to(EXPONENT, 1, below, out);
        return;
      case EXPONENT:
        if (digit) {
          if (this.digits < MAX_EXPONENT_DIGITS) this.to(EXPONENT, this.digits + 1, below, out);
        } else endAndRefeed(below, b, out);
        return;
    }
  }
  afterChild(): Frame {
    throw new Error('a number frame has no child');
  }
}

/** One of a set of fixed texts (enum and const values, true, false, null), `pos` bytes in. */
class LiteralFrame implements Frame {
  readonly endable: boolean;
  constructor(readonly values: readonly Uint8Array[], readonly pos: number) {
    this.endable = values.some((v) => v.length === pos);
  }
  feed(b: number, below: Stack | null, out: Stack[]): void {
    const pos = this.pos;
    const going = this.values.filter((v) => v.length > pos && v[pos] === b);
    if (going.length > 0) out.push(new Stack(new LiteralFrame(going, pos + 1), below));
    // A value that ends here while a longer one goes on (enum [1, 12]): both ways stay open.
    if (this.endable) endAndRefeed(below, b, out);
  }
  afterChild(): Frame {
    throw new Error('a literal frame has no child');
  }
}

/** The state before any byte of a document of `node`. */
export function initialState(node: ValueNode): GrammarState {
  // A sequence (a tool call) starts with its first byte; a document may start after a gap.
  const first = node.kind === 'sequence' ? new SequenceFrame(node, 0) : new ValueFrame(node, 0);
  return [new Stack(first, new Stack(new RootFrame(false), null))];
}

/** The state after byte b, or an empty state when b is refused. */
export function step(state: GrammarState, b: number): GrammarState {
  const out: Stack[] = [];
  for (const stack of state) stack.top.feed(b, stack.below, out);
  return out;
}

/** The state after `bytes`, or an empty state as soon as one is refused. */
export function advance(state: GrammarState, bytes: Uint8Array): GrammarState {
  let s = state;
  for (let i = 0; i < bytes.length && s.length > 0; i++) s = step(s, bytes[i]!);
  return s;
}

/** Whether the bytes so far are a whole document. */
export function canEnd(state: GrammarState): boolean {
  for (let stack of state) {
    for (;;) {
      const top = stack.top;
      if (top instanceof RootFrame) {
        if (top.done) return true;
        break;
      }
      if (!top.endable || !stack.below) break;
      stack = resume(stack.below);
    }
  }
  return false;
}

/** Whether no byte can follow (the document is whole and cannot go on). */
export function isFinished(state: GrammarState): boolean {
  if (!canEnd(state)) return false;
  if (state.every((stack) => stack.top === ROOT_DONE)) return true;
  // A number or literal that may end: finished when no byte can go on.
  for (let b = 0; b < 256; b++) if (step(state, b).length > 0) return false;
  return true;
}

/**
 * How many plain string characters may follow (bytes 0x20-0x7f other than `"` and `\`, and whole UTF-8
 * characters), when the state is one string between characters; -1 otherwise. Lets the mask accept the
 * many tokens that are plain text without feeding them byte by byte.
 */
export function plainStringRoom(state: GrammarState): number {
  if (state.length !== 1) return -1;
  const top = state[0]!.top;
  return top instanceof StringFrame ? top.plainRoom : -1;
}
