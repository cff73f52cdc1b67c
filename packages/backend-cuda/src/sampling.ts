import type { SamplingParams } from '@qwen2-ts/core';

/**
 * Checks sampling parameters the way core's `sampleFromLogits` does, so that the device sampler rejects
 * exactly what the reference rejects.
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

/**
 * The history the device applies penalties from: entries outside the vocabulary or with a count of zero
 * are dropped (the reference skips them). `serial` is set when an id repeats: the reference then
 * penalizes that logit once per entry, in order, so the device must not apply entries in parallel.
 */
export function deviceHistory(history: SamplingParams['history'], vocab: number): { ids: Int32Array; counts: Int32Array; serial: boolean } {
  const ids: number[] = [];
  const counts: number[] = [];
  const seen = new Set<number>();
  let serial = false;
  for (let i = 0; i < history.ids.length; i++) {
    const id = history.ids[i]!;
    const count = history.counts[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocab || count <= 0) continue;
    if (seen.has(id)) serial = true;
    seen.add(id);
    ids.push(id);
    counts.push(count);
  }
  return { ids: Int32Array.from(ids), counts: Int32Array.from(counts), serial };
}

/** The nine numbers the native sampler takes, in native/kernels.h's SampleArgs order. */
export function packSamplingParams(p: SamplingParams, serialHistory: boolean): Float64Array {
  return Float64Array.of(p.temperature, p.topK, p.topP, p.minP, p.repetitionPenalty, p.presencePenalty, p.frequencyPenalty, p.uniform, serialHistory ? 1 : 0);
}
