import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassCountingBackend } from '../model/test-tiny-model.js';
import { loadFixture, type Fixture } from '../testing/fixtures.js';
import { maxAbsDiff } from '../testing/random.js';
import { ContextOverflowError } from '../errors.js';
import type { Qwen2 } from './qwen2.js';
import { fixturesDir, loadFullVocabModel } from './test-model.js';
import type { GenerateOptions, GenerationChunk, GenerationResult } from './types.js';

let fixture: Fixture;
let serial: Qwen2;
let parallel: Qwen2;
let backend: PassCountingBackend;
beforeAll(async () => {
  fixture = await loadFixture(fixturesDir, 'full-vocab-bf16');
  serial = await loadFullVocabModel({ maxContext: 128 });
  backend = new PassCountingBackend();
  parallel = await loadFullVocabModel({ maxContext: 128, parallel: 3, backend });
}, 60_000);
afterAll(async () => {
  await serial?.dispose();
  await parallel?.dispose();
  await backend?.dispose();
});

/** What a generation gave, without its timings. */
function outcome(r: GenerationResult): unknown {
  const { prefillTokensPerSecond: _p, decodeTokensPerSecond: _d, timeToFirstTokenMs: _t, ...rest } = r;
  return rest;
}

describe('Qwen2 with parallel sequences (continuous batching)', { timeout: 120_000 }, () => {
  it('decodes concurrent generations in shared passes and gives each the golden greedy tokens', async () => {
    const seqs = fixture.golden.sequences;
    backend.passes = [];
    backend.argmaxCalls = 0;
    // Four generations, three sequences: the fourth waits for a free one and joins the batch later.
    const results = await Promise.all(seqs.map((s) => parallel.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true })));
    results.forEach((r, i) => {
      expect(r.ids, `sequence ${i}`).toEqual(seqs[i]!.greedy_new_tokens);
      expect(r.finishReason).toBe('length');
    });
    // 4 x 15 decoding steps ran in far fewer passes, up to three sequences wide.
    const steps = backend.passes.filter((t, i) => i > 0);
    expect(Math.max(...backend.passes)).toBeGreaterThanOrEqual(3);
    expect(backend.passes.length).toBeLessThan(4 * 16 * 0.6);
    expect(steps.length).toBeGreaterThan(0);
    // One argmax per pass for all its greedy generations, not one per generation.
    expect(backend.argmaxCalls).toBeLessThanOrEqual(backend.passes.length);
    expect(parallel.parallel).toBe(3);
    expect(parallel.kvCacheBytes).toBe(3 * serial.kvCacheBytes);
  });

  it('gives every generation what it gets alone: sampling, penalties, logprobs, stop strings, JSON output', async () => {
    const prompts = ['Hello there', 'The weather today', 'Once upon a time', 'A list of numbers:', '{"name":'];
    const options: GenerateOptions[] = [
      { temperature: 0.9, topK: 40, topP: 0.95, seed: 7, maxNewTokens: 24 },
      { temperature: 0, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.2, maxNewTokens: 20, logprobs: 3 },
      { temperature: 1.1, minP: 0.05, seed: 11, maxNewTokens: 30, stop: ['e'] },
      { temperature: 0.7, seed: 3, maxNewTokens: 40, responseFormat: { type: 'json_object' } },
      { temperature: 0, maxNewTokens: 5, ignoreEos: true },
    ];
    const alone: unknown[] = [];
    for (const [i, p] of prompts.entries()) alone.push(outcome(await serial.generate(p, options[i])));
    const together = await Promise.all(prompts.map((p, i) => parallel.generate(p, options[i])));
    expect(together.map(outcome)).toEqual(alone);
  });

  it('streams each generation as its tokens come, and a reader that does not read holds no one back', async () => {
    const unread = parallel.generate('Nobody reads this', { temperature: 0, maxNewTokens: 12, ignoreEos: true });
    const chunks: GenerationChunk[] = [];
    for await (const c of parallel.generate('Someone reads this', { temperature: 0, maxNewTokens: 12, ignoreEos: true })) chunks.push(c);
    expect(chunks.filter((c) => c.tokenId >= 0)).toHaveLength(12);
    // The unread stream ran alongside and queued its chunks.
    const r = await unread;
    expect(r.ids).toHaveLength(12);
    const queued: GenerationChunk[] = [];
    for await (const c of unread) queued.push(c);
    expect(queued.filter((c) => c.tokenId >= 0).map((c) => c.tokenId)).toEqual(r.ids);
  });

  it('aborts one generation without disturbing the others', async () => {
    const controller = new AbortController();
    const seqs = fixture.golden.sequences;
    const aborted = parallel.generate(seqs[0]!.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true, signal: controller.signal });
    const others = seqs.slice(1, 3).map((s) => parallel.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true }));
    let seen = 0;
    for await (const c of aborted) {
      if (++seen === 3) controller.abort();
      void c;
    }
    const r = await aborted;
    expect(r.finishReason).toBe('abort');
    expect(r.ids.length).toBeLessThan(16);
    expect(r.ids).toEqual(seqs[0]!.greedy_new_tokens.slice(0, r.ids.length));
    const done = await Promise.all(others);
    done.forEach((d, i) => expect(d.ids).toEqual(seqs[i + 1]!.greedy_new_tokens));
  });

  it('aborts a generation while its long prompt is still fed, a part per pass beside another\'s steps', async () => {
    // Passes of at most 4 tokens: the 100-token prompt needs 33 passes beside the other's token, the
    // other 16 tokens need 16.
    const counting = new PassCountingBackend();
    const small = await loadFullVocabModel({ maxContext: 128, parallel: 2, maxChunk: 4, backend: counting });
    try {
      const s = fixture.golden.sequences[1]!;
      const decoding = small.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
      const controller = new AbortController();
      const long = small.generate(Array.from({ length: 100 }, (_, i) => 500 + i), { temperature: 0, maxNewTokens: 4, signal: controller.signal });
      let seen = 0;
      for await (const c of decoding) if (c.tokenId >= 0 && ++seen === 2) controller.abort();
      const r = await long;
      expect(r.finishReason).toBe('abort');
      expect(r.ids).toEqual([]);
      expect((await decoding).ids).toEqual(s.greedy_new_tokens);
      // The prompt stopped being fed long before its end: far fewer than its 33 passes of 3 tokens.
      expect(counting.passes.filter((t) => t === 4).length).toBeLessThan(10);
    } finally {
      await small.dispose();
      await counting.dispose();
    }
  });

  it('runs logits, score and speculative decoding alone, between the batches, with their own results', async () => {
    const seqs = fixture.golden.sequences;
    const gens = seqs.slice(0, 2).map((s) => parallel.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true }));
    const logits = parallel.logits(seqs[3]!.input_ids);
    const spec = parallel.generate(seqs[2]!.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true, speculative: { draft: 'prompt-lookup' } });
    const score = parallel.score(seqs[1]!.input_ids, seqs[1]!.greedy_new_tokens.slice(0, 4));
    const later = parallel.generate(seqs[3]!.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
    const [a, b] = await Promise.all(gens);
    expect(a!.ids).toEqual(seqs[0]!.greedy_new_tokens);
    expect(b!.ids).toEqual(seqs[1]!.greedy_new_tokens);
    expect(maxAbsDiff((await logits)[0]!, fixture.lastLogits(3))).toBeLessThan(1e-3);
    expect((await spec).ids).toEqual(seqs[2]!.greedy_new_tokens);
    expect((await score).total).toBeCloseTo((await serial.score(seqs[1]!.input_ids, seqs[1]!.greedy_new_tokens.slice(0, 4))).total, 4);
    expect((await later).ids).toEqual(seqs[3]!.greedy_new_tokens);
  });

  it('continues a chat in the sequence that holds its earlier turns', async () => {
    const first = [{ role: 'user' as const, content: 'Tell me something.' }];
    const other = [{ role: 'user' as const, content: 'Something else entirely, please.' }];
    const [r1] = await Promise.all([parallel.chat(first, { temperature: 0, maxNewTokens: 8 }), parallel.chat(other, { temperature: 0, maxNewTokens: 8 })]);
    const turn2 = [...first, { role: 'assistant' as const, content: r1!.text }, { role: 'user' as const, content: 'More.' }];
    backend.passes = [];
    const r2 = await parallel.chat(turn2, { temperature: 0, maxNewTokens: 4 });
    const alone = await serial.chat(turn2, { temperature: 0, maxNewTokens: 4 });
    expect(r2.ids).toEqual(alone.ids);
    // Only what the first turn's sequence lacked was prefilled.
    expect(backend.passes[0]).toBeLessThan(r2.promptTokens - 10);
  });

  it('fails an empty or too long prompt with the errors of a single sequence, and the others go on', async () => {
    const fine = parallel.generate(fixture.golden.sequences[2]!.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
    await expect(parallel.generate([], { maxNewTokens: 4 })).rejects.toThrow('the prompt is empty');
    await expect(serial.generate([], { maxNewTokens: 4 })).rejects.toThrow('the prompt is empty');
    const tooLong = Array.from({ length: 129 }, (_, i) => i + 10);
    await expect(parallel.generate(tooLong, { maxNewTokens: 4 })).rejects.toThrow(ContextOverflowError);
    await expect(serial.generate(tooLong, { maxNewTokens: 4 })).rejects.toThrow(ContextOverflowError);
    expect((await fine).ids).toEqual(fixture.golden.sequences[2]!.greedy_new_tokens);
    // A generation that reaches the end of its context stops there, as alone.
    const near = Array.from({ length: 120 }, (_, i) => i + 10);
    const [a, b] = await Promise.all([parallel.generate(near, { temperature: 0, maxNewTokens: 50, ignoreEos: true }), parallel.generate([1, 2, 3], { temperature: 0, maxNewTokens: 30, ignoreEos: true })]);
    expect(outcome(a!)).toEqual(outcome(await serial.generate(near, { temperature: 0, maxNewTokens: 50, ignoreEos: true })));
    expect(a!.ids).toHaveLength(9);
    expect(b!.ids).toHaveLength(30);
  });

  it('refuses a parallel value it cannot honour before reading anything', async () => {
    for (const bad of [0, 1.5, -2, 300]) {
      await expect(loadFullVocabModel({ parallel: bad })).rejects.toThrow(/parallel must be an integer from 1 to maxChunk \(256\)/);
    }
  });
});
