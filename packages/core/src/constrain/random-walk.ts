// Random documents of a grammar, for tests: what a model with random weights would write if it were
// free to pick any allowed byte.
import type { SeededRandom } from '../sampling/rng.js';
import { canEnd, initialState, isFinished, step, type GrammarState } from './json-grammar.js';
import type { ValueNode } from './json-schema.js';

/** Bytes that move a document towards its end, tried first once a walk is long. */
const CLOSERS = [...'"}]0,:ntf'].map((c) => c.charCodeAt(0));

/** A random document of the grammar: random accepted bytes, then bytes that close it. */
export function randomWalk(node: ValueNode, rng: SeededRandom): string {
  let s: GrammarState = initialState(node);
  const out: number[] = [];
  for (;;) {
    if (isFinished(s) || (canEnd(s) && rng.uniform() < (out.length > 30 ? 0.5 : 0.1))) break;
    const allowed: { b: number; next: GrammarState }[] = [];
    for (let b = 0; b < 256; b++) {
      const next = step(s, b);
      if (next.length > 0) allowed.push({ b, next });
    }
    if (allowed.length === 0) throw new Error(`stuck after ${new TextDecoder().decode(Uint8Array.from(out))}`);
    let pick = allowed[Math.floor(rng.uniform() * allowed.length)]!;
    if (out.length > 40) {
      const closer = CLOSERS.find((c) => allowed.some((a) => a.b === c));
      pick = allowed.find((a) => a.b === closer) ?? allowed.find((a) => a.b >= 0x61 && a.b <= 0x7a) ?? pick;
    }
    if (out.length > 400) throw new Error(`the walk does not end: ${JSON.stringify(new TextDecoder().decode(Uint8Array.from(out)))}`);
    out.push(pick.b);
    s = pick.next;
  }
  return new TextDecoder().decode(Uint8Array.from(out));
}
