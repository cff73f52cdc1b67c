import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, parseSettings, SettingsError, toGenerateOptions } from './settings.js';

describe('sampling settings', () => {
  it('uses defaults for empty fields and parses numbers', () => {
    expect(parseSettings({})).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings({ temperature: '0', topK: ' 1 ', maxNewTokens: '16', topP: '' })).toEqual({ ...DEFAULT_SETTINGS, temperature: 0, topK: 1, maxNewTokens: 16 });
  });
  it('rejects out-of-range and malformed values, naming the field', () => {
    const bad = (raw: Record<string, string>) => {
      try {
        parseSettings(raw);
      } catch (e) {
        expect(e).toBeInstanceOf(SettingsError);
        return `${(e as SettingsError).field}: ${(e as Error).message}`;
      }
      throw new Error('expected a SettingsError');
    };
    expect(bad({ topP: '1.5' })).toBe('topP: top-p must be between 0 and 1 (got 1.5)');
    expect(bad({ temperature: 'hot' })).toBe('temperature: temperature must be a number (got "hot")');
    expect(bad({ maxNewTokens: '2.5' })).toBe('maxNewTokens: max tokens must be a whole number (got 2.5)');
    expect(bad({ repetitionPenalty: '0' })).toMatch(/^repetitionPenalty: repetition penalty must be between/);
  });
  it('maps to core generate options', () => {
    expect(toGenerateOptions({ ...DEFAULT_SETTINGS, minP: 0.05 })).toEqual({ temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.05, maxNewTokens: 512 });
    expect(toGenerateOptions(DEFAULT_SETTINGS, { json: true }).responseFormat).toEqual({ type: 'json_object' });
    expect(toGenerateOptions(DEFAULT_SETTINGS, { promptLookup: true }).speculative).toEqual({ draft: 'prompt-lookup' });
    expect(toGenerateOptions(DEFAULT_SETTINGS).speculative).toBeUndefined();
  });
});
