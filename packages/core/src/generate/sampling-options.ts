import type { GenerationConfig } from '@qwen2-ts/loader';
import type { SamplingParams } from '../backend/types.js';
import type { GenerateOptions } from '../api/types.js';

/** Sampling parameters without the per-step history and uniform. */
export type SamplingSettings = Omit<SamplingParams, 'history' | 'uniform'>;

/**
 * Resolves sampling settings: explicit options win; otherwise the model's generation_config applies
 * when it samples (`do_sample`), with Hugging Face's defaults (top_k 50, top_p 1) for what it leaves
 * out; a model that does not sample is greedy.
 */
export function resolveSampling(options: GenerateOptions, config?: GenerationConfig): SamplingSettings {
  const sampleByDefault = config?.doSample === true;
  const temperature = options.temperature ?? (sampleByDefault ? (config?.temperature ?? 1) : 0);
  return {
    temperature,
    topK: options.topK ?? (sampleByDefault ? (config?.topK ?? 50) : 0),
    topP: options.topP ?? (sampleByDefault ? (config?.topP ?? 1) : 1),
    minP: options.minP ?? (sampleByDefault ? (config?.minP ?? 0) : 0),
    repetitionPenalty: options.repetitionPenalty ?? config?.repetitionPenalty ?? 1,
    presencePenalty: options.presencePenalty ?? 0,
    frequencyPenalty: options.frequencyPenalty ?? 0,
  };
}
