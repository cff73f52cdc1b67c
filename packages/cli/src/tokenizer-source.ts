/**
 * The tokenizer of a model folder or Hub model, without loading weights (for `qwen2 tokenize`).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import { CliError } from './util/errors.js';
import type { StatusOutput } from './util/progress.js';
import { openModelSource } from './load-model.js';

type TokenizerFiles = Parameters<typeof Qwen2Tokenizer.fromFiles>[0];

const FILES: Record<keyof TokenizerFiles & string, string> = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfigJson: 'tokenizer_config.json',
  vocabJson: 'vocab.json',
  mergesTxt: 'merges.txt',
};

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Builds the tokenizer of `spec`: a local folder's tokenizer files are read directly (no weights
 * needed); anything else goes through the loader (Hub download with progress, cache, offline mode).
 * @throws CliError when the folder has no tokenizer files; the tokenizer's TokenizerError when they are bad
 */
export async function loadTokenizer(spec: string, status: StatusOutput): Promise<Qwen2Tokenizer> {
  const { Qwen2Tokenizer } = await import('@qwen2-ts/tokenizer');
  let files: TokenizerFiles;
  if (await isDirectory(spec)) {
    files = {};
    for (const [field, name] of Object.entries(FILES) as [keyof TokenizerFiles & string, string][]) {
      const text = await readIfPresent(join(spec, name));
      if (text !== undefined) (files as Record<string, string>)[field] = text;
    }
    if (files.tokenizerJson === undefined && (files.vocabJson === undefined || files.mergesTxt === undefined)) {
      throw new CliError(`${spec}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)`);
    }
  } else {
    const opened = await openModelSource(spec, status);
    files = opened.tokenizerFiles;
    await opened.close();
  }
  return Qwen2Tokenizer.fromFiles(files);
}
