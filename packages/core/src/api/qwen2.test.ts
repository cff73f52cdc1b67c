import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openModel, type OpenedModel } from '@qwen2-ts/loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError } from '../errors.js';
import { loadFixture, type Fixture } from '../testing/fixtures.js';
import { maxAbsDiff } from '../testing/random.js';
import { MODEL_TOLERANCE } from '../testing/tolerances.js';
import { Qwen2 } from './qwen2.js';
import type { DeviceTokens, SamplingParams, Tensor } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import type { GenerateOptions, GenerationChunk } from './types.js';

const fixturesDir = fileURLToPath(new URL('../../../../fixtures', import.meta.url));
const modelDir = `${fixturesDir}/models/full-vocab-bf16`;

// The full-vocabulary fixture with Qwen2's real tokenizer (and the Instruct chat template).
let model: Qwen2;
let fixture: Fixture;
let tokenizerFiles: { tokenizerJson: string; tokenizerConfigJson: string };

beforeAll(async () => {
  tokenizerFiles = {
    tokenizerJson: await readFile(`${fixturesDir}/tokenizer/tokenizer.json`, 'utf8'),
    tokenizerConfigJson: await readFile(`${fixturesDir}/configs/Qwen2-0.5B-Instruct/tokenizer_config.json`, 'utf8'),
  };
  fixture = await loadFixture(fixturesDir, 'full-vocab-bf16');
  model = await Qwen2.load(modelDir, { tokenizer: tokenizerFiles, maxContext: 128 });
}, 60_000);
afterAll(() => model?.dispose());

async function collect(stream: AsyncIterable<GenerationChunk>): Promise<GenerationChunk[]> {
  const out: GenerationChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

describe('Qwen2 (full-vocab-bf16 fixture, reference backend)', { timeout: 60_000 }, () => {
  it('loads with bf16 weights kept as bf16 and the real tokenizer', () => {
    expect(model.config.vocabSize).toBe(151936);
    expect(model.backend.info.name).toBe('js');
    // bf16: 2 bytes per value; tied head counted once.
    const c = model.config;
    const perLayer = 2 * (c.hiddenSize * c.hiddenSize * 2 + 2 * c.hiddenSize * c.numKeyValueHeads * c.headDim + 3 * c.hiddenSize * c.intermediateSize);
    const f32 = 4 * (c.hiddenSize * 3 + 2 * c.numKeyValueHeads * c.headDim) * c.numHiddenLayers + 4 * c.hiddenSize;
    expect(model.weightsBytes).toBe(2 * c.vocabSize * c.hiddenSize + perLayer * c.numHiddenLayers + f32);
    expect(model.maxContext).toBe(128);
  });

  it('gives the golden logits and greedy continuation through the high-level API', async () => {
    for (const [i, s] of fixture.golden.sequences.entries()) {
      const [logits] = await model.logits(s.input_ids);
      expect(maxAbsDiff(logits!, fixture.lastLogits(i))).toBeLessThan(1e-3);
      const r = await model.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
      expect(r.ids).toEqual(s.greedy_new_tokens);
      expect(r.finishReason).toBe('length');
      expect(r.text).toBe(model.tokenizer.decode(r.ids, { skipSpecialTokens: true }));
    }
  });

  it('keeps an f16 KV cache when asked: half the bytes, the golden greedy tokens', async () => {
    const half = await Qwen2.load(modelDir, { tokenizer: model.tokenizer, maxContext: 128, kvCacheDtype: 'f16' });
    try {
      expect(model.kvCacheDtype).toBe('f32');
      expect(half.kvCacheDtype).toBe('f16');
      const c = model.config;
      expect(model.kvCacheBytes).toBe(c.numHiddenLayers * 2 * c.numKeyValueHeads * c.headDim * 128 * 4);
      expect(half.kvCacheBytes * 2).toBe(model.kvCacheBytes);
      for (const [i, s] of fixture.golden.sequences.entries()) {
        const [logits] = await half.logits(s.input_ids);
        expect(maxAbsDiff(logits!, fixture.lastLogits(i))).toBeLessThan(MODEL_TOLERANCE.f16KVCache);
        expect((await half.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true })).ids).toEqual(s.greedy_new_tokens);
      }
    } finally {
      await half.dispose();
    }
    await expect(Qwen2.load(modelDir, { tokenizer: model.tokenizer, kvCacheDtype: 'bf16' as 'f16' })).rejects.toThrow(/kvCacheDtype must be 'f32' or 'f16', got "bf16"/);
  });

  it('gives every position\'s logits', async () => {
    const rows = await model.logits(fixture.golden.all_positions.input_ids, { allPositions: true });
    fixture.allPositionLogits().forEach((want, t) => expect(maxAbsDiff(rows[t]!, want)).toBeLessThan(1e-3));
  });

  it('streams chunks that add up to the result, with stats', async () => {
    const stream = model.generate('Hello, world', { temperature: 0, maxNewTokens: 8, ignoreEos: true });
    const chunks = await collect(stream);
    const r = await stream;
    expect(chunks.filter((c) => c.tokenId >= 0).map((c) => c.tokenId)).toEqual(r.ids);
    expect(chunks.map((c) => c.text).join('')).toBe(r.text);
    expect(r.promptTokens).toBe(model.tokenizer.encode('Hello, world').length);
    expect(r.ids).toHaveLength(8);
    expect(r.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(r.prefillTokensPerSecond).toBeGreaterThan(0);
    expect(r.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('reuses a cached prefix without changing the result', async () => {
    const s = fixture.golden.sequences[3]!;
    await model.logits(s.input_ids.slice(0, 30)); // the cache now holds a prefix of the next prompt
    const [again] = await model.logits(s.input_ids);
    expect(maxAbsDiff(again!, fixture.lastLogits(3))).toBeLessThan(1e-3);
  });

  it('stops at stop token ids, stop strings and maxNewTokens', async () => {
    const s = fixture.golden.sequences[2]!;
    const greedy = s.greedy_new_tokens;
    const byId = await model.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, stopTokenIds: [greedy[4]!] });
    expect(byId.ids).toEqual(greedy.slice(0, greedy.indexOf(greedy[4]!)));
    expect(byId.finishReason).toBe('stop');

    const full = await model.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
    // A stop string from the middle of the text: nothing from it onwards may come out.
    const cut = Math.floor(full.text.length / 2);
    const stop = full.text.slice(cut, cut + 3);
    const first = full.text.indexOf(stop);
    const stream = model.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true, stop: [stop] });
    const chunks = await collect(stream);
    const r = await stream.result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.text.slice(0, first));
    expect(chunks.map((c) => c.text).join('')).toBe(r.text);

    const short = await model.generate(s.input_ids, { temperature: 0, maxNewTokens: 3, ignoreEos: true });
    expect(short.ids).toEqual(greedy.slice(0, 3));
    expect(short.finishReason).toBe('length');
  });

  it('decodes with device tokens as without them, taking back the step recorded past the end', async () => {
    // The reference backend offers device tokens, so generation records each step before the token it
    // embeds is read; a backend without them runs one step after the other.
    class Counting extends ReferenceBackend {
      onDevice = 0;
      sampledOnDevice = 0;
      override argmaxOnDevice(logits: Tensor): DeviceTokens {
        this.onDevice++;
        return super.argmaxOnDevice(logits);
      }
      override sampleOnDevice(logits: Tensor, params: SamplingParams, previous?: DeviceTokens): DeviceTokens {
        this.sampledOnDevice++;
        return super.sampleOnDevice(logits, params, previous);
      }
    }
    const counting = new Counting();
    const serialBackend = Object.assign(new ReferenceBackend(), { argmaxOnDevice: undefined, embedOnDevice: undefined, sampleOnDevice: undefined });
    const piped = await Qwen2.load(modelDir, { tokenizer: tokenizerFiles, maxContext: 40, backend: counting });
    const serial = await Qwen2.load(modelDir, { tokenizer: tokenizerFiles, maxContext: 40, backend: serialBackend });
    // The cache holds exactly the tokens the model has seen, each named: a step recorded ahead and not
    // used is gone, and every token fed before the host read it was named once read.
    const inSync = (m: Qwen2): void => {
      const cache = (m as unknown as { slots: { all: { length: number; ids: number[] }[] } }).slots.all[0]!;
      expect(cache.length).toBe(cache.ids.length);
      expect(cache.ids).not.toContain(-1);
    };
    try {
      const s = fixture.golden.sequences[2]!;
      const greedy = s.greedy_new_tokens;
      const full = await serial.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
      const cut = full.text.slice(Math.floor(full.text.length / 2), Math.floor(full.text.length / 2) + 3);
      const cases: [string, number[], GenerateOptions, number][] = [
        // [what, prompt, options, steps recorded on the device (the prefill's argmax included)]
        ['length', s.input_ids, { maxNewTokens: 16, ignoreEos: true }, 16],
        ['stop id', s.input_ids, { maxNewTokens: 16, stopTokenIds: [greedy[4]!] }, greedy.indexOf(greedy[4]!) + 2],
        ['stop string', s.input_ids, { maxNewTokens: 16, ignoreEos: true, stop: [cut] }, -1],
        ['one token', s.input_ids, { maxNewTokens: 1, ignoreEos: true }, 1],
        ['context full', [1, 2, 3, 4, 5], { maxNewTokens: 60, ignoreEos: true }, 36],
      ];
      for (const [what, prompt, options, steps] of cases) {
        counting.onDevice = 0;
        const want = await serial.generate(prompt, { temperature: 0, ...options });
        const got = await piped.generate(prompt, { temperature: 0, ...options });
        expect(got.ids, what).toEqual(want.ids);
        expect(got.text, what).toBe(want.text);
        expect(got.finishReason, what).toBe(want.finishReason);
        if (steps >= 0) expect(counting.onDevice, what).toBe(steps);
        else expect(counting.onDevice, what).toBeGreaterThan(want.ids.length);
        inSync(piped);
        inSync(serial);
      }
      // Aborted after two tokens: the step recorded for the third is taken back too.
      const controller = new AbortController();
      const stream = piped.generate(s.input_ids, { temperature: 0, maxNewTokens: 16, ignoreEos: true, signal: controller.signal });
      let n = 0;
      for await (const c of stream) if (c.tokenId >= 0 && ++n === 2) controller.abort();
      expect((await stream.result).ids).toEqual(greedy.slice(0, 2));
      inSync(piped);
      // Sampling and penalties draw on the device too, each draw counting the token before it (not yet
      // read by the host) in its history: the same tokens as step by step, for the same seed.
      const sampled: GenerateOptions[] = [
        { temperature: 0.9, seed: 1 },
        { temperature: 0, repetitionPenalty: 1.5 },
        { temperature: 0.8, topK: 20, topP: 0.9, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.5, seed: 3 },
      ];
      for (const options of sampled) {
        counting.onDevice = 0;
        counting.sampledOnDevice = 0;
        const want = await serial.generate(s.input_ids, { maxNewTokens: 12, ignoreEos: true, ...options });
        const got = await piped.generate(s.input_ids, { maxNewTokens: 12, ignoreEos: true, ...options });
        expect(got.ids, JSON.stringify(options)).toEqual(want.ids);
        expect([counting.onDevice, counting.sampledOnDevice], JSON.stringify(options)).toEqual([0, 12]);
        inSync(piped);
      }
      // A penalty strong enough to change the greedy continuation: the device history must hold the
      // token drawn last, or the two would part at the first repeat.
      const plain = await serial.generate(s.input_ids, { temperature: 0, maxNewTokens: 12, ignoreEos: true });
      const penalized = await piped.generate(s.input_ids, { temperature: 0, repetitionPenalty: 1.5, maxNewTokens: 12, ignoreEos: true });
      expect(penalized.ids).not.toEqual(plain.ids);
    } finally {
      await piped.dispose();
      await serial.dispose();
    }
  });

  it('stops at the eos ids of the config unless ignoreEos', async () => {
    // Force eos: a huge presence penalty on every token but eos would be needed; instead feed a prompt and
    // declare the first greedy token an eos through stopTokenIds vs ignoreEos semantics.
    const s = fixture.golden.sequences[0]!;
    const eos = model.config.eosTokenIds[0]!;
    expect(eos).toBe(151643);
    const r = await model.generate(s.input_ids, { temperature: 0, maxNewTokens: 4, ignoreEos: true, stopTokenIds: [s.greedy_new_tokens[0]!] });
    expect(r.ids).toEqual([]);
    expect(r.finishReason).toBe('stop');
  });

  it('aborts between tokens', async () => {
    const controller = new AbortController();
    const stream = model.generate([1, 2, 3], { temperature: 0, maxNewTokens: 50, ignoreEos: true, signal: controller.signal });
    let n = 0;
    for await (const c of stream) {
      if (c.tokenId >= 0) n++;
      if (n === 2) controller.abort();
    }
    const r = await stream.result;
    expect(r.finishReason).toBe('abort');
    expect(r.ids.length).toBe(2);
  });

  it('lets the event loop run between tokens, so a timer can abort a CPU-backend generation', async () => {
    // The reference backend resolves every op in microtasks: without a macrotask turn per token the
    // timer below would only fire after all 50 tokens.
    const controller = new AbortController();
    const stream = model.generate([1, 2, 3], { temperature: 0, maxNewTokens: 50, ignoreEos: true, signal: controller.signal });
    setImmediate(() => controller.abort());
    const r = await stream.result;
    expect(r.finishReason).toBe('abort');
    expect(r.ids.length).toBeLessThan(50);
  });

  it('samples reproducibly with a seed', async () => {
    const opts = { temperature: 1.0, topK: 50, topP: 0.95, maxNewTokens: 8, ignoreEos: true };
    const a = await model.generate([10, 20, 30], { ...opts, seed: 7 });
    const b = await model.generate([10, 20, 30], { ...opts, seed: 7 });
    const c = await model.generate([10, 20, 30], { ...opts, seed: 8 });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
  });

  it('scores a continuation with the golden log-probabilities', async () => {
    const ids = fixture.golden.all_positions.input_ids;
    const golden = fixture.allPositionLogits();
    const { tokenLogprobs, total } = await model.score(ids.slice(0, 3), ids.slice(3));
    const want = ids.slice(3).map((id, i) => {
      const row = golden[2 + i]!;
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      return row[id]! - max - Math.log(sum);
    });
    expect(maxAbsDiff(tokenLogprobs, want)).toBeLessThan(1e-3);
    expect(total).toBeCloseTo(want.reduce((x, y) => x + y, 0), 2);
    await expect(model.score([], [1])).rejects.toThrow(RangeError);
  });

  it('chats through the template and the OpenAI shape', async () => {
    const messages = [{ role: 'user' as const, content: 'Say hi.' }];
    const text = model.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(text).toContain('<|im_start|>assistant\n');
    const direct = await model.generate(model.tokenizer.encode(text), { temperature: 0, maxNewTokens: 6 });
    const viaChat = await model.chat(messages, { temperature: 0, maxNewTokens: 6 });
    expect(viaChat.ids).toEqual(direct.ids);

    const completion = await model.openai.chat.completions.create({ messages, temperature: 0, max_tokens: 6 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message).toEqual({ role: 'assistant', content: direct.text });
    expect(completion.choices[0]!.finish_reason).toBe(direct.finishReason === 'length' ? 'length' : 'stop');
    expect(completion.usage.completion_tokens).toBe(direct.ids.length);

    const chunks = [];
    for await (const c of model.openai.chat.completions.create({ messages, temperature: 0, max_tokens: 6, stream: true })) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(direct.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).not.toBeNull();
    await expect(model.openai.chat.completions.create({ messages, n: 2 })).rejects.toThrow(/n = 2/);
  });

  it('reports load progress and honours an abort signal', async () => {
    const events: { phase: string; overallLoaded: number; overallTotal: number }[] = [];
    const m = await Qwen2.load(modelDir, { tokenizer: model.tokenizer, maxContext: 16, dtype: 'q8_0', onProgress: (p) => events.push(p) });
    expect(m.backend.memory().weights).toBe(m.weightsBytes);
    await m.dispose();
    const reads = events.filter((e) => e.phase === 'read');
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.at(-1)!.overallLoaded).toBe(reads.at(-1)!.overallTotal);
    const controller = new AbortController();
    controller.abort(new Error('stop loading'));
    await expect(Qwen2.load(modelDir, { tokenizer: model.tokenizer, signal: controller.signal })).rejects.toThrow('stop loading');
  });

  it('loads an OpenedModel assembled by the caller (and leaves it open)', async () => {
    const opened = await openModel(modelDir);
    const assembled: OpenedModel = {
      source: 'assembled', config: opened.config, checkpoint: opened.checkpoint,
      tokenizerFiles: tokenizerFiles, close: () => opened.close(),
    };
    const m = await Qwen2.load(assembled, { maxContext: 64, dtype: 'f32' });
    const s = fixture.golden.sequences[1]!;
    const [logits] = await m.logits(s.input_ids);
    expect(maxAbsDiff(logits!, fixture.lastLogits(1))).toBeLessThan(1e-3);
    expect(m.tokenizer.hasChatTemplate).toBe(true);
    await m.dispose();
    expect((await opened.checkpoint.read('model.norm.weight')).byteLength).toBe(2 * 64); // still open
    await opened.close();
  });

  it('names the sizes when the context is full', async () => {
    const small = await Qwen2.load(modelDir, { tokenizer: tokenizerFiles, maxContext: 8 });
    try {
      await expect(small.generate(Array.from({ length: 9 }, (_, i) => i + 1)).result).rejects.toThrow(ContextOverflowError);
      await expect(small.logits(Array.from({ length: 9 }, (_, i) => i + 1))).rejects.toThrow(/9 new > capacity 8 tokens/);
      const r = await small.generate([1, 2, 3, 4, 5], { temperature: 0, maxNewTokens: 10, ignoreEos: true });
      expect(r.finishReason).toBe('length');
      expect(r.ids.length).toBe(4); // the 4th token is produced from the logits of position 7
    } finally {
      await small.dispose();
    }
    await expect(small.logits([1])).rejects.toThrow(/disposed/);
  });
});
