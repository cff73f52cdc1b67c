import type { SamplingParams } from '../backend/types.js';
import { sortProbabilities } from './sort-probabilities.js';

/**
 * The reference semantics of {@link SamplingParams}, on the host. Steps, in order:
 *
 * 1. Penalties on the raw logits of every token in `history`: Hugging Face's repetition penalty
 *    (`l > 0 ? l / r : l * r`), then OpenAI's presence (`- presence`) and frequency (`- frequency * count`).
 * 2. `temperature === 0`: the argmax of the penalized logits (first index on ties). Done.
 * 3. Divide by `temperature`; softmax (in float64).
 * 4. Top-k (`topK > 0`): keep tokens whose logit is at least the k-th largest (ties at the boundary are
 *    kept, as Hugging Face's `TopKLogitsWarper` does).
 * 5. Top-p (`topP < 1`): among the kept tokens, renormalized, sorted by probability descending (ties by
 *    lower id first), keep a token when the probability mass strictly before it is below `topP` (the
 *    smallest prefix whose mass reaches `topP`; always at least one token).
 * 6. Min-p (`minP > 0`): drop kept tokens whose probability is below `minP` times the largest one.
 * 7. Draw: with `total` the kept probability mass, return the first kept token, in ascending id order,
 *    whose cumulative kept probability exceeds `uniform * total` (the last kept token if rounding runs
 *    past the end). Ascending id order means a backend needs no sort to draw.
 *
 * @param logits - one row of logits (not modified)
 * @param params - the sampling parameters
 * @returns the chosen token id
 * @throws RangeError on empty logits, NaN-only logits or invalid parameters
 */
export function sampleFromLogits(logits: ArrayLike<number>, params: SamplingParams): number {
  const n = logits.length;
  if (n === 0) throw new RangeError('sampleFromLogits: empty logits');
  validateSamplingParams(params);
  const l = new Float64Array(logits as ArrayLike<number>); // a typed-array copy, not the iterator of Float64Array.from
  applyPenalties(l, params);

  if (params.temperature === 0) return argmaxOf(l);

  // Softmax at temperature. NaN logits never get probability.
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (l[i]! > max) max = l[i]!;
  if (max === -Infinity) return argmaxOf(l);
  const p = new Float64Array(n);
  const invT = 1 / params.temperature;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = l[i]!;
    const e = Number.isNaN(v) ? 0 : Math.exp((v - max) * invT);
    p[i] = e;
    sum += e;
  }
  const keep = new Uint8Array(n);
  let anyKept = false;
  for (let i = 0; i < n; i++) {
    const q = p[i]! / sum;
    p[i] = q;
    if (q > 0) {
      keep[i] = 1;
      anyKept = true;
    }
  }
  if (!anyKept) keep[argmaxOf(l)] = 1;

  if (params.topK > 0 && params.topK < n) applyTopK(p, keep, params.topK);
  if (params.topP < 1) applyTopP(p, keep, params.topP);
  if (params.minP > 0) applyMinP(p, keep, params.minP);

  let total = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (keep[i]) {
      total += p[i]!;
      last = i;
    }
  }
  const target = params.uniform * total;
  let cumulative = 0;
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    cumulative += p[i]!;
    if (cumulative > target) return i;
  }
  return last;
}

/** Applies the repetition, presence and frequency penalties of `params.history` to `l` in place. */
export function applyPenalties(l: Float64Array | Float32Array, params: Pick<SamplingParams, 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'history'>): void {
  const { ids, counts } = params.history;
  const r = params.repetitionPenalty;
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j]!;
    const count = counts[j]!;
    if (id < 0 || id >= l.length || count <= 0) continue;
    let v = l[id]!;
    if (r !== 1) v = v > 0 ? v / r : v * r;
    v -= params.presencePenalty + params.frequencyPenalty * count;
    l[id] = v;
  }
}

function applyTopK(p: Float64Array, keep: Uint8Array, k: number): void {
  const threshold = kthLargestKept(p, keep, k);
  if (threshold === undefined) return;
  for (let i = 0; i < p.length; i++) if (keep[i] && p[i]! < threshold) keep[i] = 0;
}

/**
 * The k-th largest kept value (counting repeats), or undefined when at most k are kept. A min-heap of
 * the k largest so far: one comparison for most of a vocabulary, where sorting all 151,936 took 20 ms
 * of a 24 ms draw (top-k 20). Large k sorts instead.
 * @internal exported for its test
 */
export function kthLargestKept(p: Float64Array, keep: Uint8Array, k: number): number | undefined {
  const n = p.length;
  if (k > 4096) {
    const kept = keptValues(p, keep);
    if (kept.length <= k) return undefined;
    sortProbabilities(kept);
    return kept[kept.length - k]!;
  }
  const heap = new Float64Array(k);
  let size = 0;
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    const v = p[i]!;
    if (size < k) {
      // Sift up.
      let at = size++;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (heap[parent]! <= v) break;
        heap[at] = heap[parent]!;
        at = parent;
      }
      heap[at] = v;
    } else if (v > heap[0]!) {
      // Replace the smallest and sift down.
      let at = 0;
      for (;;) {
        let child = 2 * at + 1;
        if (child >= k) break;
        if (child + 1 < k && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= v) break;
        heap[at] = heap[child]!;
        at = child;
      }
      heap[at] = v;
    }
  }
  // The heap's minimum is the k-th largest (with exactly k kept it drops nothing).
  return size < k ? undefined : heap[0]!;
}

function applyTopP(p: Float64Array, keep: Uint8Array, topP: number): void {
  const sorted = sortProbabilities(keptValues(p, keep));
  let total = 0;
  for (let j = 0; j < sorted.length; j++) total += sorted[j]!;
  // Walk from the most likely down until the mass before the next token reaches topP.
  let before = 0;
  let count = 0;
  for (let j = sorted.length - 1; j >= 0; j--) {
    if (count > 0 && before / total >= topP) break;
    before += sorted[j]!;
    count++;
  }
  const threshold = sorted[sorted.length - count]!;
  // Tokens above the threshold stay; of those equal to it, the lower ids stay (ties by id).
  let above = 0;
  for (let j = sorted.length - 1; j >= 0 && sorted[j]! > threshold; j--) above++;
  let tiesLeft = count - above;
  for (let i = 0; i < p.length; i++) {
    if (!keep[i]) continue;
    if (p[i]! > threshold) continue;
    if (p[i]! === threshold && tiesLeft > 0) tiesLeft--;
    else keep[i] = 0;
  }
}

function keptValues(p: Float64Array, keep: Uint8Array): Float64Array {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (keep[i]) n++;
  const out = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < p.length; i++) if (keep[i]) out[j++] = p[i]!;
  return out;
}

function applyMinP(p: Float64Array, keep: Uint8Array, minP: number): void {
  let top = 0;
  for (let i = 0; i < p.length; i++) if (keep[i] && p[i]! > top) top = p[i]!;
  const threshold = minP * top;
  for (let i = 0; i < p.length; i++) if (keep[i] && p[i]! < threshold) keep[i] = 0;
}

function argmaxOf(l: ArrayLike<number>): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < l.length; i++) {
    const v = l[i]!;
    if (v > bestValue || (best < 0 && v === -Infinity)) {
      best = i;
      bestValue = v;
    }
  }
  if (best < 0) throw new RangeError(`sampleFromLogits: all ${l.length} logits are NaN`);
  return best;
}

/**
 * Checks sampling parameters as {@link sampleFromLogits} does; device samplers call it so that they
 * reject exactly what the reference rejects, with the same messages.
 * @throws RangeError naming the bad parameter
 */
export function validateSamplingParams(params: SamplingParams): void {
  const bad = (what: string): never => {
    throw new RangeError(`sampling: ${what}`);
  };
  if (!(params.temperature >= 0) || !Number.isFinite(params.temperature)) bad(`temperature must be a finite number >= 0, got ${params.temperature}`);
  if (!Number.isInteger(params.topK) || params.topK < 0) bad(`topK must be an integer >= 0, got ${params.topK}`);
  if (!(params.topP > 0 && params.topP <= 1)) bad(`topP must be in (0, 1], got ${params.topP}`);
  if (!(params.minP >= 0 && params.minP <= 1)) bad(`minP must be in [0, 1], got ${params.minP}`);
  if (!(params.repetitionPenalty > 0) || !Number.isFinite(params.repetitionPenalty)) bad(`repetitionPenalty must be > 0, got ${params.repetitionPenalty}`);
  if (!Number.isFinite(params.presencePenalty)) bad(`presencePenalty must be finite, got ${params.presencePenalty}`);
  if (!Number.isFinite(params.frequencyPenalty)) bad(`frequencyPenalty must be finite, got ${params.frequencyPenalty}`);
  if (!(params.uniform >= 0 && params.uniform < 1)) bad(`uniform must be in [0, 1), got ${params.uniform}`);
  if (params.history.ids.length !== params.history.counts.length) bad('history ids and counts differ in length');
}
