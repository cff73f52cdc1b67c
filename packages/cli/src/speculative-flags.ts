/** The speculative decoding flags shared by `generate`, `chat` and `serve`. */
import type { DtypeOption } from '@qwen2-ts/core';
import { DTYPES } from './load-model.js';
import type { Args, FlagSpecs } from './util/args.js';
import { UsageError } from './util/errors.js';

export const SPECULATIVE_FLAGS: FlagSpecs = {
  'prompt-lookup': { type: 'boolean', help: 'speculative decoding: guess the next tokens from where the last ones occurred before (same output, faster on repetitive text)' },
  'draft-model': { type: 'string', value: 'DIR|ID', help: 'speculative decoding: a smaller model with the same tokenizer guesses the next tokens (same output)' },
  'draft-dtype': { type: 'string', value: 'DTYPE', help: 'weight format of the draft model (default: --dtype)' },
  'draft-tokens': { type: 'string', value: 'N', help: 'speculative decoding: most tokens guessed per step, 1-64 (default 8; fewer when they do not pay)' },
};

/** What the speculative flags ask for, checked. */
export interface SpeculativeFlags {
  /** The draft model to load (source and weight format), or undefined for prompt lookup. */
  draft?: { spec: string; dtype: DtypeOption };
  maxTokens?: number;
}

/** Reads the speculative flags; undefined when none is given. */
export function speculativeFlags(args: Args, modelDtype: DtypeOption): SpeculativeFlags | undefined {
  const lookup = args.flag('prompt-lookup');
  const draft = args.string('draft-model');
  const draftDtype = args.choice('draft-dtype', DTYPES) as DtypeOption | undefined;
  const maxTokens = args.int('draft-tokens', undefined, 1, 64);
  if (lookup && draft !== undefined) throw new UsageError('give either --prompt-lookup or --draft-model, not both', args.command);
  if (draftDtype !== undefined && draft === undefined) throw new UsageError('--draft-dtype needs --draft-model', args.command);
  if (!lookup && draft === undefined) {
    if (maxTokens !== undefined) throw new UsageError('--draft-tokens needs --prompt-lookup or --draft-model', args.command);
    return undefined;
  }
  return {
    ...(draft !== undefined ? { draft: { spec: draft, dtype: draftDtype ?? modelDtype } } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
  };
}
