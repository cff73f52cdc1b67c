import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSoftmaxAt } from '../generate/logprobs.js';
import type { Qwen2 } from './qwen2.js';
import { loadFullVocabModel } from './test-model.js';
import type { GenerationChunk } from './types.js';

let model: Qwen2;
beforeAll(async () => {
  model = await loadFullVocabModel({ maxContext: 128 });
}, 60_000);
afterAll(() => model?.dispose());

describe('logprobs (reference backend, full-vocab fixture)', { timeout: 60_000 }, () => {
  it('gives each generated token its log softmax, as the logits of every position say, and the top tokens', async () => {
    const prompt = model.tokenizer.encode('The capital of France is');
    for (const sampling of [{ temperature: 0 }, { temperature: 0.9, topK: 30, seed: 4 }]) {
      const plain = await model.generate(prompt, { ...sampling, maxNewTokens: 8, ignoreEos: true });
      const chunks: GenerationChunk[] = [];
      const stream = model.generate(prompt, { ...sampling, maxNewTokens: 8, ignoreEos: true, logprobs: 5 });
      for await (const c of stream) chunks.push(c);
      const result = await stream;
      // Reading the logits on the host chooses the same tokens as the backend's own draw.
      expect(result.ids).toEqual(plain.ids);
      const lp = result.logprobs!;
      expect(lp.map((l) => l.tokenId)).toEqual(result.ids);
      expect(chunks.filter((c) => c.tokenId >= 0).map((c) => c.logprob)).toEqual(lp);
      const rows = await model.logits([...prompt, ...result.ids.slice(0, -1)], { allPositions: true });
      lp.forEach((l, i) => {
        const row = rows[prompt.length - 1 + i]!;
        expect(l.logprob).toBeCloseTo(logSoftmaxAt(row, l.tokenId), 5);
        expect(l.top).toHaveLength(5);
        const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, 5);
        expect(l.top.map((t) => t.tokenId)).toEqual(order);
        for (const t of l.top) expect(t.logprob).toBeCloseTo(logSoftmaxAt(row, t.tokenId), 5);
        if (sampling.temperature === 0) expect(l.top[0]!.tokenId).toBe(l.tokenId);
      });
    }
  });
  it('promptLogprobs: every prompt token after the first, as score() and the logits give them', async () => {
    const text = 'One two three four five six';
    const { ids, logprobs } = await model.promptLogprobs(text, 3);
    expect(ids).toEqual(model.tokenizer.encode(text));
    expect(logprobs[0]).toBeNull();
    expect(logprobs.slice(1).map((l) => l!.tokenId)).toEqual(ids.slice(1));
    const scored = await model.score(ids.slice(0, 1), ids.slice(1));
    logprobs.slice(1).forEach((l, i) => expect(l!.logprob).toBeCloseTo(scored.tokenLogprobs[i]!, 5));
    expect(logprobs[1]!.top).toHaveLength(3);
    await expect(model.promptLogprobs([])).rejects.toThrow(/empty/);
    await expect(model.promptLogprobs('x', 99)).rejects.toThrow(/top must be/);
  });
  it('model.openai: logprobs and top_logprobs in OpenAI\'s chat shape, whole and streamed', async () => {
    const request = { messages: [{ role: 'user' as const, content: 'Hi' }], temperature: 0, max_tokens: 6, logprobs: true, top_logprobs: 2 };
    const completion = await model.openai.chat.completions.create(request);
    const content = completion.choices[0]!.logprobs!.content;
    expect(content).toHaveLength(completion.usage.completion_tokens);
    for (const entry of content) {
      expect(entry.top_logprobs).toHaveLength(2);
      expect(entry.top_logprobs[0]!.token).toBe(entry.token); // greedy: the chosen token is the most likely
      expect(entry.top_logprobs[0]!.logprob).toBe(entry.logprob);
    }
    expect(Buffer.from(content.flatMap((e) => e.bytes)).toString('utf8')).toBe(completion.choices[0]!.message.content);
    const streamed: typeof content = [];
    for await (const chunk of model.openai.chat.completions.create({ ...request, stream: true })) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const plain = await model.openai.chat.completions.create({ ...request, logprobs: false });
    expect(plain.choices[0]!.logprobs).toBeNull();
  });
  it('true gives no top tokens; a bad value is refused', async () => {
    const r = await model.generate('x', { temperature: 0, maxNewTokens: 2, ignoreEos: true, logprobs: true });
    expect(r.logprobs!.map((l) => l.top)).toEqual([[], []]);
    expect((await model.generate('x', { temperature: 0, maxNewTokens: 2 })).logprobs).toBeUndefined();
    await expect(model.generate('x', { logprobs: 21 })).rejects.toThrow(/logprobs must be a boolean or an integer from 0 to 20/);
  });
});
