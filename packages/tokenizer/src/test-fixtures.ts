// Test-only helpers: the real Qwen2 tokenizer files from the repository's fixtures (read through a path
// relative to this file, never ../shared). Not exported from the package.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Qwen2Tokenizer } from './tokenizer.js';

/** Absolute path of a file under fixtures/. */
export function fixturePath(relative: string): string {
  return fileURLToPath(new URL(`../../../fixtures/${relative}`, import.meta.url));
}

export function readFixture(relative: string): string {
  return readFileSync(fixturePath(relative), 'utf8');
}

/** Lines of a .jsonl fixture, parsed. */
export function readJsonl<T>(relative: string): T[] {
  return readFixture(relative)
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
}

let instruct: Qwen2Tokenizer | undefined;

/** Qwen2's tokenizer.json with the Qwen2-7B-Instruct tokenizer_config.json (chat template, eos <|im_end|>). */
export function loadQwen2Instruct(): Qwen2Tokenizer {
  instruct ??= Qwen2Tokenizer.fromFiles({
    tokenizerJson: readFixture('tokenizer/tokenizer.json'),
    tokenizerConfigJson: readFixture('configs/Qwen2-7B-Instruct/tokenizer_config.json'),
  });
  return instruct;
}
