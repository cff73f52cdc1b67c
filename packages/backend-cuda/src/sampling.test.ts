import { describe, expect, it } from 'vitest';
import type { SamplingParams } from '@qwen2-ts/core';
import { deviceHistory, packSamplingParams, validateSamplingParams } from './sampling.js';

const base: SamplingParams = {
  temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.2, frequencyPenalty: 0.3,
  history: { ids: new Int32Array(0), counts: new Int32Array(0) }, uniform: 0.25,
};

describe('validateSamplingParams', () => {
  it('accepts valid parameters and rejects what core rejects, naming the parameter', () => {
    expect(() => validateSamplingParams(base)).not.toThrow();
    expect(() => validateSamplingParams({ ...base, temperature: -1 })).toThrow(/temperature/);
    expect(() => validateSamplingParams({ ...base, topK: 1.5 })).toThrow(/topK/);
    expect(() => validateSamplingParams({ ...base, topP: 0 })).toThrow(/topP/);
    expect(() => validateSamplingParams({ ...base, minP: 2 })).toThrow(/minP/);
    expect(() => validateSamplingParams({ ...base, repetitionPenalty: 0 })).toThrow(/repetitionPenalty/);
    expect(() => validateSamplingParams({ ...base, presencePenalty: NaN })).toThrow(/presencePenalty/);
    expect(() => validateSamplingParams({ ...base, uniform: 1 })).toThrow(/uniform/);
    expect(() => validateSamplingParams({ ...base, history: { ids: new Int32Array(2), counts: new Int32Array(1) } })).toThrow(/history/);
  });
});

describe('deviceHistory', () => {
  it('drops ids outside the vocabulary, keeps zero counts (a previous token may count there) and flags repeated ids for in-order application', () => {
    const h = deviceHistory({ ids: Int32Array.of(5, -1, 100, 3, 9), counts: Int32Array.of(2, 1, 1, 0, 4) }, 10);
    expect([...h.ids]).toEqual([5, 3, 9]);
    expect([...h.counts]).toEqual([2, 0, 4]);
    expect(h.serial).toBe(false);
    const r = deviceHistory({ ids: Int32Array.of(1, 2, 1), counts: Int32Array.of(1, 1, 1) }, 10);
    expect([...r.ids]).toEqual([1, 2, 1]);
    expect(r.serial).toBe(true);
  });
  it('packs parameters in the native order', () => {
    expect([...packSamplingParams(base, true)]).toEqual([0.7, 40, 0.9, 0.05, 1.1, 0.2, 0.3, 0.25, 1]);
  });
});
