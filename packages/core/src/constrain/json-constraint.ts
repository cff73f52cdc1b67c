// Constrained decoding: the next token is drawn only among those that keep the output a prefix of a
// document of the grammar (and end-of-sequence only once the document is whole), with the sampling
// parameters applied to the allowed tokens alone, as if every other logit were -Infinity (Hugging Face's
// order: logits processors, then warpers).
import type { SamplingParams } from '../backend/types.js';
import { bestTokens } from '../generate/logprobs.js';
import { sampleFromLogits } from '../sampling/sample.js';
import { advance, canEnd, initialState, isFinished, plainStringRoom, step, type GrammarState } from './json-grammar.js';
import type { ValueNode } from './json-schema.js';
import type { TokenVocabulary } from './token-vocabulary.js';

/** Greedy decoding tries this many of the best tokens one by one before it builds the whole mask. */
const GREEDY_TRIES = 16;

/** The grammar's state over one generation, and the choice of each token. */
export class JsonConstraint {
  private state: GrammarState;
  /** isFinished of the state, once asked (the loop asks after each token, choose() again before the next). */
  private done: boolean | undefined;
  private marked: { state: GrammarState; done: boolean | undefined } | undefined;

  constructor(node: ValueNode, private readonly vocab: TokenVocabulary, private readonly stopIds: ReadonlySet<number>) {
    this.state = initialState(node);
  }

  /** Whether the document is whole and nothing can follow it. */
  get finished(): boolean {
    this.done ??= isFinished(this.state);
    return this.done;
  }

  /** Whether token `id` may come next. */
  allows(id: number): boolean {
    if (this.stopIds.has(id)) return canEnd(this.state);
    const bytes = this.vocab.bytesOf(id);
    return bytes !== undefined && advance(this.state, bytes).length > 0;
  }

  /** 1 for every token that may come next, over the logits' length. */
  mask(): Uint8Array {
    const { size, plainChars, stringOthers } = this.vocab;
    const mask = new Uint8Array(size);
    const room = plainStringRoom(this.state);
    if (room >= 0) {
      // Inside a string: plain text is allowed by its length alone; tokens a control byte stops are
      // refused; the rest is fed byte by byte.
      for (let id = 0; id < size; id++) {
        const chars = plainChars[id]!;
        if (chars >= 0 && chars <= room) mask[id] = 1;
      }
      for (const id of stringOthers) if (advance(this.state, this.vocab.bytesOf(id)!).length > 0) mask[id] = 1;
    } else {
      this.vocab.walk(this.state, (s, b) => {
        const next = step(s, b);
        return next.length > 0 ? next : undefined;
      }, mask);
    }
    if (canEnd(this.state)) for (const id of this.stopIds) if (id < size) mask[id] = 1;
    return mask;
  }

  /**
   * The next token for one row of logits: the best allowed token when `params` is 'greedy', else a draw
   * by `params` among the allowed tokens. Undefined when the document is whole and no token (no stop
   * token either) may follow: generation ends there.
   * @throws Error when no token can continue an unfinished document (a vocabulary without the needed bytes)
   */
  choose(row: Float32Array, params: SamplingParams | 'greedy'): number | undefined {
    if (this.finished) return undefined;
    if (params === 'greedy') {
      for (const id of bestTokens(row, GREEDY_TRIES)) if (this.allows(id)) return id;
    }
    const mask = this.mask();
    const masked = new Float32Array(row.length);
    let first = -1;
    let best = -1;
    for (let i = 0; i < row.length; i++) {
      if (!mask[i]) {
        masked[i] = -Infinity;
        continue;
      }
      masked[i] = row[i]!;
      if (first < 0) first = i;
      if (!Number.isNaN(row[i]!) && (best < 0 || row[i]! > row[best]!)) best = i;
    }
    if (first < 0) {
      if (canEnd(this.state)) return undefined;
      throw new Error('constrained generation: no token of the vocabulary can continue the JSON document');
    }
    // Allowed tokens with NaN or -Infinity logits only: any allowed token beats a refused one.
    if (best < 0 || masked[best] === -Infinity) return best >= 0 ? best : first;
    if (params === 'greedy') return best;
    return sampleFromLogits(masked, params);
  }

  /**
   * Remembers the current position (one at a time): speculative decoding moves the grammar through
   * guesses to choose the tokens after them, then {@link backToMark}. States are immutable: nothing is copied.
   */
  mark(): void {
    this.marked = { state: this.state, done: this.done };
  }

  /** Goes back to the position {@link mark} remembered. @throws Error when nothing was marked */
  backToMark(): void {
    if (!this.marked) throw new Error('JsonConstraint.backToMark: no position was marked');
    ({ state: this.state, done: this.done } = this.marked);
  }

  /** Moves the grammar past token `id` (chosen by {@link choose}). */
  accept(id: number): void {
    if (this.stopIds.has(id)) return;
    const bytes = this.vocab.bytesOf(id);
    const next = bytes ? advance(this.state, bytes) : [];
    if (next.length === 0) throw new Error(`constrained generation: token ${id} does not continue the JSON document`);
    this.state = next;
    this.done = undefined;
  }
}
