// Speculative decoding's steps on a model's cached sequence: a plain step, a check of guesses in one
// pass, and a draft model's greedy guesses. Qwen2's generation loop chooses between the first two and
// emits what they decide; see generate/speculative.ts for the guesses' source and number.
import type { Backend, SamplingParams, Tensor } from '../backend/types.js';
import type { JsonConstraint } from '../constrain/json-constraint.js';
import type { TokenLogprob } from '../generate/logprobs.js';
import type { CachedSequence } from '../model/cached-sequence.js';
import { withOccurrence, type TokenHistory } from '../sampling/history.js';

/** A chosen token, with its log-probability when asked for. */
export interface Choice {
  id: number;
  logprob?: TokenLogprob;
}

/** What a step decided: the tokens to emit in order, and how many of them were guesses kept. */
export interface Decided {
  decided: Choice[];
  kept: number;
}

/** How the generation chooses a token from a row of logits. */
export interface Chooser {
  /** Greedy without penalties: argmax alone, which the backend can take without the host reading rows. */
  greedy: boolean;
  /** Rows must reach the host anyway (a constraint, log-probabilities). */
  onHost: boolean;
  constraint: JsonConstraint | undefined;
  /** The tokens so far, for the penalties. */
  history: TokenHistory;
  /** The token after a row given the tokens before it (`past`), or undefined when the document is whole. */
  chooseRow(row: Float32Array, past: SamplingParams['history']): Choice | undefined;
}

/** A step without guesses: feeds `last` alone and chooses the token after it. */
export async function plainStep(cache: CachedSequence, last: number, choose: (logits: Tensor) => Promise<Choice | undefined>): Promise<Decided> {
  const next = await choose(cache.forward([last]));
  return { decided: next ? [next] : [], kept: 0 };
}

/**
 * Feeds `last` and `guesses` in one pass and returns the tokens chosen after `last` and after each
 * guess, up to the first choice that differs from its guess (which ends the list; after the last guess
 * the choice is a bonus), and how many guesses were chosen (`kept`). The cache then keeps `last` and
 * those guesses. Each choice is the one a plain step would make at that place: the constraint and the
 * penalties see the guesses before it, and a draw takes the next uniform of the generation's stream
 * (`chooseRow` draws it), one per token taken, as plain decoding does.
 */
export async function checkGuesses(cache: CachedSequence, last: number, guesses: readonly number[], how: Chooser): Promise<Decided> {
  const base = cache.length;
  const pass = [last, ...guesses];
  const decided: Choice[] = [];
  if (how.greedy && !how.onHost) {
    // Only the ids come back from the backend.
    const best = await cache.forwardArgmax(pass);
    for (let j = 0; j < pass.length; j++) {
      decided.push({ id: best[j]! });
      if (j === guesses.length || best[j] !== guesses[j]) break;
    }
  } else {
    const rows = await cache.forwardAll(pass);
    how.constraint?.mark();
    let past = how.history.toParams();
    for (let j = 0; j < pass.length; j++) {
      const choice = how.chooseRow(rows[j]!, past);
      if (!choice) break;
      decided.push(choice);
      if (j === guesses.length || choice.id !== guesses[j]) break;
      how.constraint?.accept(choice.id);
      past = withOccurrence(past, choice.id);
    }
    how.constraint?.backToMark();
  }
  let kept = 0;
  while (kept < guesses.length && kept < decided.length && decided[kept]!.id === guesses[kept]) kept++;
  cache.truncate(base + 1 + kept);
  return { decided, kept };
}

/**
 * A draft model's guesses: up to `max` greedy tokens after `context`, reusing the draft's cache for the
 * prefix it shares with the last call (fewer when its cache would overflow).
 */
export async function greedyGuesses(cache: CachedSequence, backend: Backend, context: readonly number[], max: number): Promise<number[]> {
  const n = Math.min(max, cache.capacity - context.length + 1);
  if (n < 1) return [];
  let logits = cache.prefill(context);
  const out: number[] = [];
  for (;;) {
    out.push((await backend.argmax(logits))[0]!);
    if (out.length === n) return out;
    logits = cache.forward([out[out.length - 1]!]);
  }
}
