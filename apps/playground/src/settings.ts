/** Sampling settings of the chat form: defaults, validation, and conversion to core's options. */

/** The sampling knobs the page exposes. */
export interface SamplingSettings {
  /** 0 = greedy. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
  /** 1 disables. */
  repetitionPenalty: number;
  maxNewTokens: number;
}

/** Qwen2-Instruct's generation_config.json values, a sensible starting point. */
export const DEFAULT_SETTINGS: Readonly<SamplingSettings> = {
  temperature: 0.7,
  topK: 20,
  topP: 0.8,
  minP: 0,
  repetitionPenalty: 1.05,
  maxNewTokens: 512,
};

interface Rule {
  min: number;
  max: number;
  integer?: boolean;
  label: string;
}

const RULES: Record<keyof SamplingSettings, Rule> = {
  temperature: { min: 0, max: 5, label: 'temperature' },
  topK: { min: 0, max: 1_000_000, integer: true, label: 'top-k' },
  topP: { min: 0, max: 1, label: 'top-p' },
  minP: { min: 0, max: 1, label: 'min-p' },
  repetitionPenalty: { min: 0.01, max: 10, label: 'repetition penalty' },
  maxNewTokens: { min: 1, max: 1_000_000, integer: true, label: 'max tokens' },
};

/** A setting the user typed that cannot be used; names the field and the allowed range. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  constructor(readonly field: keyof SamplingSettings, message: string) {
    super(message);
  }
}

/**
 * Parses the form's raw strings. An empty field takes the default.
 * @throws {@link SettingsError} naming the first field that is not a number in its range
 */
export function parseSettings(raw: Partial<Record<keyof SamplingSettings, string>>): SamplingSettings {
  const out = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(RULES) as (keyof SamplingSettings)[]) {
    const text = raw[key]?.trim();
    if (text === undefined || text === '') continue;
    const rule = RULES[key];
    const value = Number(text);
    if (!Number.isFinite(value)) throw new SettingsError(key, `${rule.label} must be a number (got "${text}")`);
    if (rule.integer && !Number.isInteger(value)) throw new SettingsError(key, `${rule.label} must be a whole number (got ${text})`);
    if (value < rule.min || value > rule.max) throw new SettingsError(key, `${rule.label} must be between ${rule.min} and ${rule.max} (got ${text})`);
    out[key] = value;
  }
  return out;
}

/** The subset of core's GenerateOptions these settings map to. */
export interface SamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  maxNewTokens: number;
  /** "JSON output": the reply is constrained to one JSON object. */
  responseFormat?: { type: 'json_object' };
  /** "Speculative decoding": prompt lookup guesses tokens, one pass checks them (the reply is the same). */
  speculative?: { draft: 'prompt-lookup' };
}

/** Converts settings to core's generate options (same names; kept apart so the page does not import core). */
export function toGenerateOptions(s: SamplingSettings, extra: { json?: boolean; promptLookup?: boolean } = {}): SamplingOptions {
  return {
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    minP: s.minP,
    repetitionPenalty: s.repetitionPenalty,
    maxNewTokens: s.maxNewTokens,
    ...(extra.json ? { responseFormat: { type: 'json_object' as const } } : {}),
    ...(extra.promptLookup ? { speculative: { draft: 'prompt-lookup' as const } } : {}),
  };
}
