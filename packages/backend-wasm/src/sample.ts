import type { SamplingParams } from '@qwen2-ts/core';

/** Placeholder until core exports its reference sampler (sampleFromLogits). */
export function sampleOnHost(_logits: Float32Array, _params: SamplingParams): number {
  throw new Error('backend-wasm: sample() needs core.sampleFromLogits');
}
