/**
 * A GGUF file's recommended sampling (`general.sampling.*`, which llama.cpp's converter writes from the
 * model's generation_config.json and llama.cpp applies as its defaults) as the {@link GenerationConfig}
 * a generation_config.json would give.
 */
import { ConfigError } from '../errors.js';
import type { GenerationConfig } from '../config.js';
import type { GgufValue } from './gguf-header.js';
import type { GgufMetadataEntry } from './gguf-writer.js';

/** The keys read, as llama.cpp's gguf-py names them. */
export const GGUF_SAMPLING_KEYS = {
  temperature: 'general.sampling.temp',
  topK: 'general.sampling.top_k',
  topP: 'general.sampling.top_p',
  minP: 'general.sampling.min_p',
  repetitionPenalty: 'general.sampling.penalty_repeat',
} as const;

/** A sampling setting a GGUF file can recommend (a {@link GenerationConfig} field). */
export type GgufSamplingSetting = keyof typeof GGUF_SAMPLING_KEYS;

/** What each setting may be, for the check and the message. */
const RANGES: Record<GgufSamplingSetting, { ok: (v: number) => boolean; what: string }> = {
  temperature: { ok: (v) => v >= 0, what: 'a number >= 0' },
  topK: { ok: (v) => Number.isSafeInteger(v) && v >= 0, what: 'an integer >= 0' },
  topP: { ok: (v) => v > 0 && v <= 1, what: 'a number in (0, 1]' },
  minP: { ok: (v) => v >= 0 && v <= 1, what: 'a number in [0, 1]' },
  repetitionPenalty: { ok: (v) => v > 0, what: 'a positive number' },
};

/**
 * The sampling defaults in a GGUF file's metadata, or undefined when it has none (Qwen's own GGUF files
 * predate these keys). A file that recommends settings samples (`doSample`), unless its temperature is 0;
 * what it leaves out falls back as for a generation_config.json that leaves it out.
 * @param metadata - the file's metadata
 * @param eosTokenIds - the file's stop tokens (GenerationConfig carries them)
 * @param file - name used in messages
 * @throws {@link ConfigError} naming the key of a value of the wrong type or range
 */
export function ggufGenerationConfig(metadata: ReadonlyMap<string, GgufValue>, eosTokenIds: number[], file: string): GenerationConfig | undefined {
  const config: GenerationConfig = { eosTokenIds };
  let any = false;
  for (const [setting, key] of Object.entries(GGUF_SAMPLING_KEYS) as [GgufSamplingSetting, string][]) {
    const v = metadata.get(key);
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || !RANGES[setting].ok(v)) {
      throw new ConfigError(file, key, `must be ${RANGES[setting].what}, got ${Array.isArray(v) ? `an array of ${v.length}` : String(v)}`);
    }
    config[setting] = v;
    any = true;
  }
  if (!any) return undefined;
  config.doSample = config.temperature !== 0;
  return config;
}

/**
 * `general.sampling.*` entries for a generation config's settings (as llama.cpp's converter writes them:
 * f32, top_k u32); the inverse of {@link ggufGenerationConfig}.
 */
export function ggufSamplingMetadata(settings: Partial<Pick<GenerationConfig, GgufSamplingSetting>>): GgufMetadataEntry[] {
  const out: GgufMetadataEntry[] = [];
  for (const [setting, key] of Object.entries(GGUF_SAMPLING_KEYS) as [GgufSamplingSetting, string][]) {
    const v = settings[setting];
    if (v !== undefined) out.push({ key, type: setting === 'topK' ? 'u32' : 'f32', value: v });
  }
  return out;
}
