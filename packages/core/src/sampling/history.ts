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
