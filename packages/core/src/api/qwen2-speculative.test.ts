import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../testing/random.js';
import { Qwen2 } from './qwen2.js';
import { sharedVocabulary } from './draft-vocabulary.js';
import { fixturesDir, loadFullVocabModel } from './test-model.js';
import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import type { GenerateOptions } from './types.js';

// Speculative decoding must not change the output: every test compares a speculative generation with a
// plain one of the same model and options. Most propose a fixed number of tokens at every step
// (`adapt: false`): the adaptive schedule would rightly stop proposing here, where a draft costs as much
// as the model and every pass costs the same on the reference backend. The full-vocabulary fixture (random weights, the real
// tokenizer) on the reference backend. Drafts: the same checkpoint loaded again (its greedy guesses are
// the target's own, so they are accepted unless the target samples), and the same weights as q4_0
// (guesses right and wrong). Prompt lookup gets a prompt whose tokens repeat.
let model: Qwen2;
let twin: Qwen2;
let rough: Qwen2;
beforeAll(async () => {
  model = await loadFullVocabModel({ maxContext: 160 });
  twin = await loadFullVocabModel({ maxContext: 160 });
  rough = await Qwen2.load(`${fixturesDir}/models/full-vocab-bf16`, { tokenizer: model.tokenizer, dtype: 'q4_0', maxContext: 160 });
}, 120_000);
afterAll(async () => {
  await model?.dispose();
  await twin?.dispose();
  await rough?.dispose();
});

const PROMPT = 'The cat sat on the mat. The dog sat on the log. The cat sat on the';

describe('speculative decoding gives the tokens plain decoding gives', { timeout: 120_000 }, () => {
  it.each([
    ['a draft that is the same model', () => twin],
    ['a q4_0 draft of the same weights', () => rough],
    ['prompt lookup', () => 'prompt-lookup' as const],
  ])('greedy, with %s', async (_name, draft) => {
    const options: GenerateOptions = { temperature: 0, maxNewTokens: 40, ignoreEos: true };
    const plain = await model.generate(PROMPT, options);
    const fast = await model.generate(PROMPT, { ...options, speculative: { draft: draft(), adapt: false } });
    expect(fast.ids).toEqual(plain.ids);
    expect(fast.text).toBe(plain.text);
    expect(fast.finishReason).toBe('length');
    expect(fast.speculative).toBeDefined();
    expect(plain.speculative).toBeUndefined();
    console.info(`[speculative] ${_name}: ${JSON.stringify(fast.speculative)}`);
    expect(fast.speculative!.proposed).toBeGreaterThan(0);
    if (draft() === twin) {
      // The twin's guesses are the target's own choices: every checked guess is accepted.
      expect(fast.speculative!.proposed).toBeGreaterThan(20);
      expect(fast.speculative!.accepted).toBe(fast.speculative!.proposed);
    }
  });

  it('a draft that is always right takes a fifth of the passes with 4 guesses per check', async () => {
    const r = await model.generate(PROMPT, { temperature: 0, maxNewTokens: 41, ignoreEos: true, speculative: { draft: twin, maxTokens: 4, adapt: false } });
    // After the first token, each check yields its 4 guesses and a bonus token: 40 tokens in 8 checks.
    expect(r.speculative).toEqual({ proposed: 32, accepted: 32, checks: 8 });
  });

  it('the adaptive schedule (the default) gives the same tokens', async () => {
    const options: GenerateOptions = { temperature: 0, maxNewTokens: 40, ignoreEos: true };
    const plain = await model.generate(PROMPT, options);
    for (const draft of [twin, 'prompt-lookup' as const]) {
      expect((await model.generate(PROMPT, { ...options, speculative: { draft } })).ids).toEqual(plain.ids);
    }
  });

  it('sampled with a seed: the same draws, with penalties and top-k/top-p', async () => {
    for (const [seed, drafts] of [[1, [twin, rough]], [2, ['prompt-lookup' as const]]] as const) {
      const options: GenerateOptions = { temperature: 0.8, topK: 40, topP: 0.9, repetitionPenalty: 1.2, presencePenalty: 0.3, seed, maxNewTokens: 24, ignoreEos: true };
      for (const draft of drafts) {
        const plain = await model.generate(PROMPT, options);
        const fast = await model.generate(PROMPT, { ...options, speculative: { draft, maxTokens: 3, adapt: false } });
        expect(fast.ids, `seed ${seed}`).toEqual(plain.ids);
      }
    }
  });

  it('temperature 0 with a repetition penalty (greedy on penalized logits)', async () => {
    const options: GenerateOptions = { temperature: 0, repetitionPenalty: 1.3, maxNewTokens: 30, ignoreEos: true };
    const plain = await model.generate(PROMPT, options);
    expect((await model.generate(PROMPT, { ...options, speculative: { draft: twin, adapt: false } })).ids).toEqual(plain.ids);
    expect((await model.generate(PROMPT, { ...options, speculative: { draft: 'prompt-lookup', adapt: false } })).ids).toEqual(plain.ids);
  });

  it('with log-probabilities: the same tokens and values', async () => {
    const options: GenerateOptions = { temperature: 0, maxNewTokens: 20, ignoreEos: true, logprobs: 3 };
    const plain = await model.generate(PROMPT, options);
    const fast = await model.generate(PROMPT, { ...options, speculative: { draft: twin, adapt: false } });
    expect(fast.ids).toEqual(plain.ids);
    expect(fast.logprobs!.map((l) => l.tokenId)).toEqual(plain.logprobs!.map((l) => l.tokenId));
    for (const [i, l] of fast.logprobs!.entries()) {
      expect(Math.abs(l.logprob - plain.logprobs![i]!.logprob)).toBeLessThan(1e-4);
      expect(l.top.map((t) => t.tokenId)).toEqual(plain.logprobs![i]!.top.map((t) => t.tokenId));
    }
  });

  it('with a JSON schema: the same document', async () => {
    const responseFormat = { type: 'json_schema' as const, schema: { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, n: { type: 'integer' } }, required: ['name', 'n'] } };
    for (const [sampling, drafts] of [[{ temperature: 0 }, [twin, rough, 'prompt-lookup' as const]], [{ temperature: 0.7, seed: 5 }, [rough]]] as const) {
      const options: GenerateOptions = { ...sampling, maxNewTokens: 40, responseFormat };
      const plain = await model.generate('Give a JSON record:', options);
      for (const draft of drafts) {
        const fast = await model.generate('Give a JSON record:', { ...options, speculative: { draft, maxTokens: 3, adapt: false } });
        expect(fast.ids).toEqual(plain.ids);
        expect(fast.finishReason).toBe(plain.finishReason);
      }
      expect(() => JSON.parse(plain.text)).not.toThrow();
    }
  });

  it('stops where plain decoding stops: maxNewTokens, a stop token among accepted guesses, a stop string', async () => {
    const base: GenerateOptions = { temperature: 0, ignoreEos: true };
    const long = await model.generate(PROMPT, { ...base, maxNewTokens: 30 });
    for (const maxNewTokens of [1, 2, 5, 9]) {
      const r = await model.generate(PROMPT, { ...base, maxNewTokens, speculative: { draft: twin, maxTokens: 4, adapt: false } });
      expect(r.ids).toEqual(long.ids.slice(0, maxNewTokens));
    }
    // The 7th token as a stop token: the twin guesses it inside a check, generation ends before it.
    const stopAt = long.ids[6]!;
    const plain = await model.generate(PROMPT, { ...base, maxNewTokens: 30, stopTokenIds: [stopAt] });
    const fast = await model.generate(PROMPT, { ...base, maxNewTokens: 30, stopTokenIds: [stopAt], speculative: { draft: twin, adapt: false } });
    expect(fast.ids).toEqual(plain.ids);
    expect(fast.finishReason).toBe('stop');
    // A stop string inside the text.
    const stop = [long.text.slice(Math.floor(long.text.length / 2), Math.floor(long.text.length / 2) + 3)];
    const plainS = await model.generate(PROMPT, { ...base, maxNewTokens: 30, stop });
    const fastS = await model.generate(PROMPT, { ...base, maxNewTokens: 30, stop, speculative: { draft: twin, adapt: false } });
    expect(fastS.text).toBe(plainS.text);
    expect(fastS.finishReason).toBe('stop');
  });

  it('stops at the end of the context as plain decoding does', async () => {
    const ids = model.tokenizer.encode(Array(6).fill(PROMPT).join(' '));
    const options: GenerateOptions = { temperature: 0, ignoreEos: true, maxNewTokens: 500 };
    const plain = await model.generate(ids, options);
    const fast = await model.generate(ids, { ...options, speculative: { draft: twin, adapt: false } });
    expect(fast.ids).toEqual(plain.ids);
    expect(plain.ids.length).toBe(model.maxContext - ids.length + 1);
    expect(plain.ids.length).toBeGreaterThan(20);
  });

  it('leaves the cache consistent: the next call reuses it and gets the logits of a fresh model', async () => {
    const r = await model.generate(PROMPT, { temperature: 0, maxNewTokens: 25, ignoreEos: true, speculative: { draft: rough, adapt: false } });
    const ids = [...model.tokenizer.encode(PROMPT), ...r.ids];
    const [reused] = await model.logits(ids);
    const [fresh] = await twin.logits(ids);
    expect(maxAbsDiff(reused!, fresh!)).toBeLessThan(1e-5);
    // The draft's cache too.
    const [draftReused] = await rough.logits(ids);
    const fromScratch = await Qwen2.load(rough.source, { tokenizer: model.tokenizer, dtype: 'q4_0', maxContext: 160 });
    try {
      const [draftFresh] = await fromScratch.logits(ids);
      expect(maxAbsDiff(draftReused!, draftFresh!)).toBeLessThan(1e-5);
    } finally {
      await fromScratch.dispose();
    }
  });

  it('a draft whose context is too short for the text proposes nothing and changes nothing', async () => {
    const small = await Qwen2.load(`${fixturesDir}/models/full-vocab-bf16`, { tokenizer: model.tokenizer, maxContext: 24 });
    try {
      const ids = model.tokenizer.encode(Array(2).fill(PROMPT).join(' '));
      expect(ids.length).toBeGreaterThan(24);
      const options: GenerateOptions = { temperature: 0, maxNewTokens: 10, ignoreEos: true };
      const plain = await model.generate(ids, options);
      const fast = await model.generate(ids, { ...options, speculative: { draft: small, adapt: false } });
      expect(fast.ids).toEqual(plain.ids);
      expect(fast.speculative!.proposed).toBe(0);
    } finally {
      await small.dispose();
    }
  });

  it('stops at an abort between tokens of one check, keeping what was emitted', async () => {
    const options: GenerateOptions = { temperature: 0, maxNewTokens: 30, ignoreEos: true };
    const plain = await model.generate(PROMPT, options);
    const controller = new AbortController();
    const seen: number[] = [];
    const stream = model.generate(PROMPT, { ...options, signal: controller.signal, speculative: { draft: twin, maxTokens: 6, adapt: false } });
    for await (const c of stream) {
      if (c.tokenId >= 0) seen.push(c.tokenId);
      if (seen.length === 4) controller.abort();
    }
    const r = await stream.result;
    expect(r.finishReason).toBe('abort');
    expect(r.ids).toEqual(plain.ids.slice(0, 4));
    // The cache is still consistent: the next call matches a fresh model.
    const ids = [...model.tokenizer.encode(PROMPT), ...r.ids];
    const [reused] = await model.logits(ids);
    const [fresh] = await twin.logits(ids);
    expect(maxAbsDiff(reused!, fresh!)).toBeLessThan(1e-5);
  });

  it('streams every token as its own chunk', async () => {
    const chunks: number[] = [];
    for await (const c of model.generate(PROMPT, { temperature: 0, maxNewTokens: 12, ignoreEos: true, speculative: { draft: twin, adapt: false } })) {
      if (c.tokenId >= 0) chunks.push(c.tokenId);
    }
    expect(chunks).toEqual((await model.generate(PROMPT, { temperature: 0, maxNewTokens: 12, ignoreEos: true })).ids);
  });
});

describe('speculative options are checked before any work', () => {
  it.each([
    [{ draft: 'prompt-lookup', maxTokens: 0 }, /speculative.maxTokens must be an integer from 1 to 64, got 0/],
    [{ draft: 'prompt-lookup', maxTokens: 65 }, /maxTokens must be an integer from 1 to 64, got 65/],
    [{ draft: 'prompt-lookup', ngram: 0 }, /speculative.ngram must be an integer from 1 to 16, got 0/],
    [{ draft: 'lookup' }, /speculative.draft must be 'prompt-lookup' or a loaded Qwen2 model, got "lookup"/],
    [{ draft: {} }, /speculative.draft must be 'prompt-lookup' or a loaded Qwen2 model, got object/],
  ])('%j', async (speculative, message) => {
    await expect(model.generate(PROMPT, { maxNewTokens: 4, speculative: speculative as never })).rejects.toThrow(message);
  });

  it('refuses the model itself as its draft, and n-grams with a draft model', async () => {
    await expect(model.generate(PROMPT, { maxNewTokens: 4, speculative: { draft: model } })).rejects.toThrow(/must be another model/);
    await expect(model.generate(PROMPT, { maxNewTokens: 4, speculative: { draft: twin, ngram: 2 } })).rejects.toThrow(/ngram applies to prompt lookup/);
  });
});

describe('sharedVocabulary', () => {
  const fake = (tokens: string[]): Qwen2Tokenizer => ({ vocabSize: tokens.length, idToToken: (id: number) => tokens[id] }) as unknown as Qwen2Tokenizer;

  it('is the ids both tokenizers have when they agree on them (special tokens added at the end may differ in number)', () => {
    expect(sharedVocabulary(fake(['a', 'b', 'c']), fake(['a', 'b', 'c', '<tool_call>']))).toBe(3);
    expect(sharedVocabulary(fake(['a', 'b', 'c', 'd']), fake(['a', 'b']))).toBe(2);
    expect(sharedVocabulary(model.tokenizer, twin.tokenizer)).toBe(model.tokenizer.vocabSize);
  });

  it('names the first id whose token differs', () => {
    expect(() => sharedVocabulary(fake(['a', 'b', 'c']), fake(['a', 'x', 'c']))).toThrow(/differs from this model's at id 1 \("x" against "b"\)/);
  });
});
