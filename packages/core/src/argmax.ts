/**
 * Index of the largest value (the first one on ties), the greedy choice over a row of logits.
 * NaN never wins; an all-NaN or empty row throws, since no token can be chosen from it.
 * @throws RangeError when `values` is empty or holds only NaN
 */
export function argmax(values: ArrayLike<number>): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > bestValue || (best < 0 && v === -Infinity)) {
      best = i;
      bestValue = v;
    }
  }
  if (best < 0) throw new RangeError(`argmax: no finite or infinite value among ${values.length} entries`);
  return best;
}
