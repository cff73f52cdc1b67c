import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';

const known = new WeakMap<Qwen2Tokenizer, WeakMap<Qwen2Tokenizer, number>>();

/**
 * How many ids (from 0) a draft model's tokens mean the same text in as the target's: the ids both
 * tokenizers have, which must mean the same tokens. Tokenizers that differ only in special tokens added
 * at the end (Qwen2.5's adds tool-call tokens after Qwen2's) share the ids before them; proposals are
 * cut at the first id outside that range. Compared once per pair of tokenizers (about 151,000 strings).
 * @throws RangeError naming the first id whose token differs: the draft's proposals would mean other text
 */
export function sharedVocabulary(target: Qwen2Tokenizer, draft: Qwen2Tokenizer): number {
  if (target === draft) return target.vocabSize;
  let byDraft = known.get(target);
  const cached = byDraft?.get(draft);
  if (cached !== undefined) return cached;
  const size = Math.min(target.vocabSize, draft.vocabSize);
  for (let id = 0; id < size; id++) {
    const a = target.idToToken(id);
    const b = draft.idToToken(id);
    if (a !== b) {
      throw new RangeError(`speculative: the draft model's tokenizer differs from this model's at id ${id} (${JSON.stringify(b)} against ${JSON.stringify(a)}); a draft must share the tokenizer`);
    }
  }
  if (!byDraft) known.set(target, (byDraft = new WeakMap()));
  byDraft.set(draft, size);
  return size;
}
