/**
 * A stand-in for a model folder without tokenizer files (the random-weight test checkpoints, or a bare
 * weights folder): token-id commands (`logits`, `generate --ids`, `bench`) still work, decoded text is
 * empty, and anything that needs text fails with a message naming the missing files.
 */
import type { Qwen2Tokenizer, TokenizerFiles } from '@qwen2-ts/tokenizer';
import { CliError } from './util/errors.js';

/** Whether the files are enough for a real tokenizer (tokenizer.json, or vocab.json + merges.txt). */
export function hasTokenizerFiles(files: TokenizerFiles): boolean {
  return files.tokenizerJson !== undefined || (files.vocabJson !== undefined && files.mergesTxt !== undefined);
}

/**
 * Builds the stand-in. It is an instance of `Qwen2Tokenizer` (core accepts only that) whose methods
 * are overridden: decoding yields '', encoding and chat templates throw a {@link CliError}.
 * @param tokenizerClass - the `Qwen2Tokenizer` class
 * @param source - the model, for messages
 * @param vocabSize - the model's vocabulary size
 */
export function tokenizerlessStandIn(tokenizerClass: typeof Qwen2Tokenizer, source: string, vocabSize: number): Qwen2Tokenizer {
  const missing = () => {
    throw new CliError(`${source} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt): give token ids with --ids, or add the tokenizer files to the folder`);
  };
  const standIn = Object.create(tokenizerClass.prototype) as Qwen2Tokenizer;
  const own: Record<string, unknown> = {
    vocabSize,
    eosTokenId: undefined,
    hasChatTemplate: false,
    encode: missing,
    applyChatTemplate: missing,
    decode: () => '',
    createStreamDecoder: () => ({ push: () => '', flush: () => '' }),
    tokenToId: () => undefined,
    idToToken: () => undefined,
    isSpecialToken: () => false,
  };
  for (const [key, value] of Object.entries(own)) Object.defineProperty(standIn, key, { value, enumerable: true });
  return standIn;
}
