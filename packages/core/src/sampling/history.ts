import type { SamplingParams } from '../backend/types.js';

/** Counts of the tokens seen so far in a sequence (prompt and generated), for the sampling penalties. */
export class TokenHistory {
  private readonly counts = new Map<number, number>();

  /** @param ids - tokens already in the sequence */
  constructor(ids: Iterable<number> = []) {
    for (const id of ids) this.add(id);
  }

  /** Records one more occurrence of `id`. */
  add(id: number): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  /** The distinct ids and their counts in the layout {@link SamplingParams.history} takes. */
  toParams(): SamplingParams['history'] {
    const ids = new Int32Array(this.counts.size);
    const counts = new Int32Array(this.counts.size);
    let i = 0;
    for (const [id, count] of this.counts) {
      ids[i] = id;
      counts[i++] = count;
    }
    return { ids, counts };
  }
}

/** `history` with one more occurrence of `id` (a new entry when it has none). */
export function withOccurrence(history: SamplingParams['history'], id: number): SamplingParams['history'] {
  const at = history.ids.indexOf(id);
  if (at >= 0) {
    const counts = history.counts.slice();
    counts[at]! += 1;
    return { ids: history.ids, counts };
  }
  const ids = new Int32Array(history.ids.length + 1);
  const counts = new Int32Array(history.counts.length + 1);
  ids.set(history.ids);
  counts.set(history.counts);
  ids[history.ids.length] = id;
  counts[history.counts.length] = 1;
  return { ids, counts };
}
