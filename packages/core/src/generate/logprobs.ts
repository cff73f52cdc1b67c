// Log-probabilities of tokens under the model's raw distribution (log softmax of the logits, before
// penalties, temperature or filters), computed in float64: what OpenAI's `logprobs` report and what
// `score()` sums.

/** A token's log-probability and, best first, the most likely tokens at its position. */
export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  /** The `n` most likely tokens (as asked), best first, lower id first on ties. */
  top: { tokenId: number; logprob: number }[];
}

/** log softmax(row)[id], computed stably in float64. */
export function logSoftmaxAt(row: ArrayLike<number>, id: number): number {
  return row[id]! - logSumExp(row);
}

/** The log-probability of `id` at a position with logits `row`, and the `top` most likely tokens there. */
export function tokenLogprob(row: ArrayLike<number>, id: number, top: number): TokenLogprob {
  const norm = logSumExp(row);
  return {
    tokenId: id,
    logprob: row[id]! - norm,
    top: bestTokens(row, top).map((t) => ({ tokenId: t, logprob: row[t]! - norm })),
  };
}

/** max + log(sum(exp(row - max))): the softmax's normalizer in log space. */
function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/** Up to n token ids by logit, best first (lower id first on ties; NaN never). */
export function bestTokens(row: ArrayLike<number>, n: number): number[] {
  const ids: number[] = [];
  if (n <= 0) return ids;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (Number.isNaN(v)) continue;
    if (ids.length === n && v <= row[ids[n - 1]!]!) continue;
    let at = ids.length === n ? n - 1 : ids.length;
    while (at > 0 && row[ids[at - 1]!]! < v) at--;
    ids.splice(at, 0, i);
    if (ids.length > n) ids.pop();
  }
  return ids;
}
