import type { SamplingParams } from '@qwen2-ts/core';

/** The reference checks, re-exported so that the device sampler rejects what core rejects. */
export { validateSamplingParams } from '@qwen2-ts/core';

/**
 * The history the device applies penalties from: entries outside the vocabulary are dropped (the
 * reference skips them). Entries with a count of zero or less stay, though the kernel skips them too: a
 * previous device token adds one to the first entry with its id (core's `withOccurrence`), which may be
 * such an entry. `serial` is set when an id repeats: the reference then penalizes that logit once per
 * entry, in order, so the device must not apply entries in parallel.
 */
export function deviceHistory(history: SamplingParams['history'], vocab: number): { ids: Int32Array; counts: Int32Array; serial: boolean } {
  const ids: number[] = [];
  const counts: number[] = [];
  const seen = new Set<number>();
  let serial = false;
  for (let i = 0; i < history.ids.length; i++) {
    const id = history.ids[i]!;
    const count = history.counts[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocab) continue;
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
