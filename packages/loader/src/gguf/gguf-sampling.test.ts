// general.sampling.* (llama.cpp's recommended-sampler keys) as a generation config: read from a file
// written with them, absent when a file has none, refused naming the key when out of range.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { memoryFile } from '../random-access.js';
import { readGgufHeader } from './gguf-header.js';
import { ggufGenerationConfig, ggufSamplingMetadata } from './gguf-sampling.js';
import { encodeGguf, type GgufMetadataEntry } from './gguf-writer.js';

async function metadataOf(entries: GgufMetadataEntry[]) {
  const bytes = encodeGguf([{ key: 'general.architecture', type: 'string', value: 'qwen2' }, ...entries], []);
  return (await readGgufHeader(memoryFile('s.gguf', bytes))).metadata;
}

describe('GGUF sampling defaults', () => {
  it('reads what llama.cpp\'s converter writes from Qwen2-Instruct\'s generation_config.json', async () => {
    const settings = { temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.05 };
    const metadata = await metadataOf(ggufSamplingMetadata(settings));
    // f32 values read back as their shortest decimals.
    expect(ggufGenerationConfig(metadata, [151645], 's.gguf')).toEqual({ eosTokenIds: [151645], doSample: true, ...settings });
  });

  it('is absent without the keys, and greedy at temperature 0', async () => {
    expect(ggufGenerationConfig(await metadataOf([]), [1], 's.gguf')).toBeUndefined();
    expect(ggufGenerationConfig(await metadataOf(ggufSamplingMetadata({ temperature: 0, topK: 40 })), [1], 's.gguf')).toEqual({ eosTokenIds: [1], doSample: false, temperature: 0, topK: 40 });
  });

  it('names a key with a value out of range or of the wrong type', async () => {
    const bad = async (entry: GgufMetadataEntry) => ggufGenerationConfig(await metadataOf([entry]), [1], 's.gguf');
    await expect(bad({ key: 'general.sampling.top_p', type: 'f32', value: 1.5 })).rejects.toThrow("s.gguf: 'general.sampling.top_p' must be a number in (0, 1], got 1.5");
    await expect(bad({ key: 'general.sampling.top_k', type: 'f32', value: 2.5 })).rejects.toThrow(/'general.sampling.top_k' must be an integer >= 0/);
    await expect(bad({ key: 'general.sampling.temp', type: 'string', value: 'hot' })).rejects.toThrow(ConfigError);
  });
});
