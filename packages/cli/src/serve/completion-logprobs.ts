/**
 * The legacy completions `logprobs` object ({tokens, token_logprobs, top_logprobs, text_offset}), the
 * shape evaluation harnesses (lm-evaluation-harness' local-completions) read with `echo`.
 */
import type { TokenLogprob } from '@qwen2-ts/core';
import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';

/** OpenAI's completion logprobs for a run of tokens. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * The logprobs of `ids` (each with its entry, null for a prompt's first token), whose text starts at
 * character `offset` of the returned text. A token's offset is where its text begins in the decoded
 * text (a token holding part of a character gets the offset of that character).
 */
export function completionLogprobs(tokenizer: Qwen2Tokenizer, ids: readonly number[], entries: readonly (TokenLogprob | null)[], offset = 0): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: false });
  let at = offset;
  ids.forEach((id, i) => {
    const lp = entries[i] ?? null;
    out.tokens.push(tokenizer.decode([id]));
    out.token_logprobs.push(lp ? lp.logprob : null);
    out.top_logprobs.push(lp ? Object.fromEntries(lp.top.map((t) => [tokenizer.decode([t.tokenId]), t.logprob])) : null);
    out.text_offset.push(at);
    at += decoder.push(id).length;
  });
  return out;
}

/** Two runs of logprobs one after the other (an echoed prompt, then the completion). */
export function concatLogprobs(a: CompletionLogprobs, b: CompletionLogprobs): CompletionLogprobs {
  return {
    tokens: [...a.tokens, ...b.tokens],
    token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: [...a.top_logprobs, ...b.top_logprobs],
    text_offset: [...a.text_offset, ...b.text_offset],
  };
}
