/**
 * The reply the browser must stream, computed independently in Node by core with its reference backend
 * (itself checked against the fixtures' float64 goldens in core's tests) for the same chat-templated
 * prompt. Also checks that every greedy step is decided by a clear margin, so that float32 rounding in
 * another backend cannot legitimately flip a token (which would make an id mismatch meaningless).
 */
import { compileResponseFormat, JsonConstraint, Qwen2, ReferenceBackend, TokenVocabulary, type KVCacheDtype, type ResponseFormat } from '@qwen2-ts/core';

/** Smallest top-1 minus top-2 logit gap accepted for a greedy step. */
export const MIN_MARGIN = 1e-3;

/**
 * With `responseFormat`, the reply is constrained and the margin is the one among the tokens the grammar
 * allows at each step; `kvCacheDtype` is the KV cache storage the page is set to.
 */
export async function expectedGreedyReply(modelDir: string, prompt: string, newTokens: number, responseFormat?: ResponseFormat, kvCacheDtype: KVCacheDtype = 'f32'): Promise<number[]> {
  const model = await Qwen2.load(modelDir, { backend: new ReferenceBackend(), dtype: 'f32', kvCacheDtype });
  try {
    const messages = [{ role: 'user' as const, content: prompt }];
    const result = await model.chat(messages, { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, maxNewTokens: newTokens, ...(responseFormat ? { responseFormat } : {}) }).result;
    const promptIds = model.tokenizer.encode(model.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }));
    const rows = await model.logits([...promptIds, ...result.ids.slice(0, -1)], { allPositions: true });
    const grammar = responseFormat && compileResponseFormat(responseFormat);
    const constraint = grammar && new JsonConstraint(grammar, TokenVocabulary.of(model.tokenizer, model.config.vocabSize), new Set([model.tokenizer.eosTokenId!]));
    result.ids.forEach((id, step) => {
      const row = rows[promptIds.length - 1 + step];
      const allowed = constraint?.mask();
      constraint?.accept(id);
      let top = -Infinity;
      let second = -Infinity;
      let arg = -1;
      row.forEach((v, i) => {
        if (allowed && !allowed[i]) return;
        if (v > top) {
          second = top;
          top = v;
          arg = i;
        } else if (v > second) second = v;
      });
      if (arg !== id) throw new Error(`greedy step ${step}: chat chose ${id} but the logits' argmax is ${arg}`);
      if (top - second < MIN_MARGIN) throw new Error(`greedy step ${step}: margin ${top - second} < ${MIN_MARGIN}; pick another prompt`);
    });
    return result.ids;
  } finally {
    await model.dispose();
  }
}
