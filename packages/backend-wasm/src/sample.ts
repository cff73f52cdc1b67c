import type { SamplingParams } from '@qwen2-ts/core';

/**
 * Samples a token from one row of logits with the documented semantics of {@link SamplingParams}
 * (core's `sampleFromLogits`, which core does not export yet): penalties, greedy at temperature 0,
 * softmax at temperature in float64, top-k (ties at the boundary kept), top-p (nucleus by descending
 * probability, ties by lower id), min-p, then a draw in ascending id order.
 * @throws RangeError on empty or all-NaN logits and invalid parameters
 */
export function sampleOnHost(logits: Float32Array, params: SamplingParams): number {
  const n = logits.length;
  if (n === 0) throw new RangeError('sample: empty logits');
  validate(params);
  const l = Float64Array.from(logits);
  const { ids, counts } = params.history;
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j]!, count = counts[j]!;
    if (id < 0 || id >= n || count <= 0) continue;
    let v = l[id]!;
    if (params.repetitionPenalty !== 1) v = v > 0 ? v / params.repetitionPenalty : v * params.repetitionPenalty;
    l[id] = v - (params.presencePenalty + params.frequencyPenalty * count);
  }
  if (params.temperature === 0) return firstMax(l);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (l[i]! > max) max = l[i]!;
  if (max === -Infinity) return firstMax(l);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = l[i]!;
    sum += p[i] = Number.isNaN(v) ? 0 : Math.exp((v - max) / params.temperature);
  }
  for (let i = 0; i < n; i++) p[i]! /= sum;
  const keep = new Uint8Array(n);
  let any = false;
  for (let i = 0; i < n; i++) if (p[i]! > 0) keep[i] = 1, any = true;
  if (!any) keep[firstMax(l)] = 1;

  if (params.topK > 0 && params.topK < n) {
    const kept: number[] = [];
    for (let i = 0; i < n; i++) if (keep[i]) kept.push(p[i]!);
    if (kept.length > params.topK) {
      kept.sort((a, b) => b - a);
      const threshold = kept[params.topK - 1]!;
      for (let i = 0; i < n; i++) if (keep[i] && p[i]! < threshold) keep[i] = 0;
    }
  }
  if (params.topP < 1) {
    let total = 0;
    for (let i = 0; i < n; i++) if (keep[i]) total += p[i]!;
    // Tokens at or below tau hold together less than (1 - topP) of the mass: never in the nucleus.
    const tau = ((1 - params.topP) * total) / (2 * n);
    const cand: number[] = [];
    for (let i = 0; i < n; i++) {
      if (!keep[i]) continue;
      if (p[i]! > tau) cand.push(i);
      else keep[i] = 0;
    }
    cand.sort((a, b) => p[b]! - p[a]! || a - b);
    let before = 0;
    for (let j = 0; j < cand.length; j++) {
      if (j > 0 && before / total >= params.topP) keep[cand[j]!] = 0;
      before += p[cand[j]!]!;
    }
  }
  if (params.minP > 0) {
    let top = 0;
    for (let i = 0; i < n; i++) if (keep[i] && p[i]! > top) top = p[i]!;
    for (let i = 0; i < n; i++) if (keep[i] && p[i]! < params.minP * top) keep[i] = 0;
  }
  let total = 0, last = -1;
  for (let i = 0; i < n; i++) if (keep[i]) total += p[i]!, last = i;
  const target = params.uniform * total;
  let cumulative = 0;
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    cumulative += p[i]!;
    if (cumulative > target) return i;
  }
  return last;
}

function firstMax(l: Float64Array): number {
  let best = -1, bv = -Infinity;
  for (let i = 0; i < l.length; i++) {
    const v = l[i]!;
    if (v > bv || (best < 0 && v === -Infinity)) { best = i; bv = v; }
  }
  if (best < 0) throw new RangeError(`sample: all ${l.length} logits are NaN`);
  return best;
}

function validate(p: SamplingParams): void {
  const bad = (what: string): never => { throw new RangeError(`sample: ${what}`); };
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature)) bad(`temperature must be a finite number >= 0, got ${p.temperature}`);
  if (!Number.isInteger(p.topK) || p.topK < 0) bad(`topK must be an integer >= 0, got ${p.topK}`);
  if (!(p.topP > 0 && p.topP <= 1)) bad(`topP must be in (0, 1], got ${p.topP}`);
  if (!(p.minP >= 0 && p.minP <= 1)) bad(`minP must be in [0, 1], got ${p.minP}`);
  if (!(p.repetitionPenalty > 0) || !Number.isFinite(p.repetitionPenalty)) bad(`repetitionPenalty must be > 0, got ${p.repetitionPenalty}`);
  if (!Number.isFinite(p.presencePenalty) || !Number.isFinite(p.frequencyPenalty)) bad('presence/frequency penalties must be finite');
  if (!(p.uniform >= 0 && p.uniform < 1)) bad(`uniform must be in [0, 1), got ${p.uniform}`);
  if (p.history.ids.length !== p.history.counts.length) bad('history ids and counts differ in length');
}
