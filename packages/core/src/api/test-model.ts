// For tests: the full-vocabulary random-weight fixture with Qwen2's real tokenizer and Qwen2-0.5B-Instruct's
// tokenizer_config.json (chat template, eos <|im_end|>), on the reference backend.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/types.js';
import { Qwen2 } from './qwen2.js';

export const fixturesDir = fileURLToPath(new URL('../../../../fixtures', import.meta.url));

/** The fixture model (the caller disposes it). */
export async function loadFullVocabModel(options: { maxContext?: number; backend?: Backend; parallel?: number; maxChunk?: number } = {}): Promise<Qwen2> {
  const tokenizer = {
    tokenizerJson: await readFile(`${fixturesDir}/tokenizer/tokenizer.json`, 'utf8'),
    tokenizerConfigJson: await readFile(`${fixturesDir}/configs/Qwen2-0.5B-Instruct/tokenizer_config.json`, 'utf8'),
  };
  return Qwen2.load(`${fixturesDir}/models/full-vocab-bf16`, { tokenizer, maxContext: options.maxContext ?? 256, parallel: options.parallel, maxChunk: options.maxChunk, ...(options.backend ? { backend: options.backend } : {}) });
}
