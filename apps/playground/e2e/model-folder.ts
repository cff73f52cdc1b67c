/**
 * The model the browser test serves: the full-vocabulary random-weight fixture (real Qwen2 vocabulary
 * size, bf16) with the real Qwen2 tokenizer files and Qwen2-0.5B-Instruct's tokenizer_config.json (for
 * its chat template) and generation_config.json: laid out exactly like a Hugging Face model folder.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const fixtures = fileURLToPath(new URL('../../../fixtures/', import.meta.url));

/** URL name → file on disk. */
export const MODEL_FILES: Record<string, string> = {
  'config.json': join(fixtures, 'models/full-vocab-bf16/config.json'),
  'model.safetensors': join(fixtures, 'models/full-vocab-bf16/model.safetensors'),
  'generation_config.json': join(fixtures, 'configs/Qwen2-0.5B-Instruct/generation_config.json'),
  'tokenizer_config.json': join(fixtures, 'configs/Qwen2-0.5B-Instruct/tokenizer_config.json'),
  'tokenizer.json': join(fixtures, 'tokenizer/tokenizer.json'),
  'vocab.json': join(fixtures, 'tokenizer/vocab.json'),
  'merges.txt': join(fixtures, 'tokenizer/merges.txt'),
};

/**
 * The same files as a local folder in a fresh temporary directory, for core in Node and for the page's
 * folder input (copies, not symlinks: the browser's file upload does not follow links).
 */
export function modelFolderOnDisk(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-ts-playground-model-'));
  for (const [name, path] of Object.entries(MODEL_FILES)) copyFileSync(path, join(dir, name));
  return dir;
}
