// Sampling defaults: explicit options, then the model's generation config (generation_config.json, or a
// GGUF file's general.sampling.*) when it samples, then Hugging Face's defaults; greedy otherwise.
import { describe, expect, it } from 'vitest';
import { resolveSampling } from './sampling-options.js';

describe('resolveSampling', () => {
  const instruct = { eosTokenIds: [1], doSample: true, temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.05 };
  it('takes a sampling model\'s defaults, min_p included, and lets options win', () => {
    expect(resolveSampling({}, instruct)).toMatchObject({ temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.05 });
    expect(resolveSampling({ minP: 0, temperature: 0.2 }, instruct)).toMatchObject({ temperature: 0.2, minP: 0, topK: 20 });
  });
  it('is greedy, with no min_p, for a model that does not sample or has no generation config', () => {
    expect(resolveSampling({}, { ...instruct, doSample: false })).toMatchObject({ temperature: 0, topK: 0, topP: 1, minP: 0 });
    expect(resolveSampling({})).toMatchObject({ temperature: 0, minP: 0, repetitionPenalty: 1 });
  });
});
