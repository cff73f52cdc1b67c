import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseGenerationConfig, parseQwen2Config } from './config.js';

const CONFIGS = fileURLToPath(new URL('../../../fixtures/configs/', import.meta.url));
const read = (name: string, file: string) => JSON.parse(readFileSync(`${CONFIGS}${name}/${file}`, 'utf8'));

describe('parseQwen2Config on the real Qwen2 configs', () => {
  it('reads Qwen2-0.5B as the platform notes describe it', () => {
    expect(parseQwen2Config(read('Qwen2-0.5B', 'config.json'))).toEqual({
      modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
      numAttentionHeads: 14, numKeyValueHeads: 2, headDim: 64, maxPositionEmbeddings: 131072, rmsNormEps: 1e-6,
      ropeTheta: 1000000, tieWordEmbeddings: true, maxWindowLayers: 24, bosTokenId: 151643, eosTokenIds: [151643],
      torchDtype: 'bfloat16',
    });
  });
  it('reads Qwen2-7B-Instruct (untied, 28/4 heads)', () => {
    const c = parseQwen2Config(read('Qwen2-7B-Instruct', 'config.json'));
    expect(c).toMatchObject({ hiddenSize: 3584, numHiddenLayers: 28, numAttentionHeads: 28, numKeyValueHeads: 4, headDim: 128, vocabSize: 152064, tieWordEmbeddings: false });
    expect(c.slidingWindow).toBeUndefined();
  });
  it.each(readdirSync(CONFIGS))('reads %s/generation_config.json', (name) => {
    const g = parseGenerationConfig(read(name, 'generation_config.json'));
    expect(g.eosTokenIds.length).toBeGreaterThan(0);
    expect(g.eosTokenIds).toContain(151643);
  });
  it('reads Instruct sampling defaults', () => {
    expect(parseGenerationConfig(read('Qwen2-7B-Instruct', 'generation_config.json'))).toMatchObject({ doSample: true, eosTokenIds: [151645, 151643] });
  });
});

describe('config validation names the key', () => {
  const base = read('Qwen2-0.5B', 'config.json');
  it.each([
    [{ model_type: 'llama' }, 'model_type', /only 'qwen2'/],
    [{ model_type: undefined }, 'model_type', /missing/],
    [{ hidden_size: undefined }, 'hidden_size', /is missing/],
    [{ hidden_size: '896' }, 'hidden_size', /must be an integer >= 1, got "896"/],
    [{ num_attention_heads: 12 }, 'num_attention_heads', /\(12\) must divide hidden_size \(896\)/],
    [{ num_key_value_heads: 3 }, 'num_key_value_heads', /\(3\) must divide num_attention_heads \(14\)/],
    [{ vocab_size: 0 }, 'vocab_size', /integer >= 1/],
    [{ rms_norm_eps: -1 }, 'rms_norm_eps', /positive/],
    [{ rope_theta: 'big' }, 'rope_theta', /positive/],
    [{ tie_word_embeddings: 'yes' }, 'tie_word_embeddings', /true or false/],
    [{ eos_token_id: [1, 'x'] }, 'eos_token_id', /token id/],
    [{ rope_scaling: { type: 'yarn', factor: 4 } }, 'rope_scaling', /not supported/],
    [{ hidden_act: 'gelu' }, 'hidden_act', /only 'silu'/],
  ])('%j', (patch, key, message) => {
    const json = { ...base, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete json[k];
    let error: unknown;
    try {
      parseQwen2Config(json, 'my/config.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as ConfigError).file).toBe('my/config.json');
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(`my/config.json: '${key}'`);
  });
  it('applies Qwen2Config defaults and the sliding window semantics', () => {
    const minimal = { model_type: 'qwen2', vocab_size: 8, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2 };
    expect(parseQwen2Config(minimal)).toEqual({
      modelType: 'qwen2', vocabSize: 8, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
      numKeyValueHeads: 2, headDim: 4, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000,
      tieWordEmbeddings: false, maxWindowLayers: 28, eosTokenIds: [],
    });
    expect(parseQwen2Config({ ...minimal, use_sliding_window: true, sliding_window: 64 }).slidingWindow).toBe(64);
    expect(parseQwen2Config({ ...minimal, use_sliding_window: false, sliding_window: 64 }).slidingWindow).toBeUndefined();
    expect(parseQwen2Config({ ...minimal, head_dim: 6 }).headDim).toBe(6);
  });
  it('rejects a document that is not an object, and bad generation values', () => {
    expect(() => parseQwen2Config([1])).toThrow("config.json: is not a JSON object");
    expect(() => parseGenerationConfig({ top_p: 1.5 })).toThrow("generation_config.json: 'top_p' must be a number in (0, 1], got 1.5");
    expect(() => parseGenerationConfig({ top_k: -1 })).toThrow(/'top_k'/);
    expect(() => parseGenerationConfig({ do_sample: 'no' })).toThrow(/'do_sample' must be true or false/);
    expect(() => parseGenerationConfig({ min_p: 2 })).toThrow("generation_config.json: 'min_p' must be a number in [0, 1], got 2");
    expect(parseGenerationConfig({ min_p: 0.05 })).toMatchObject({ minP: 0.05 });
  });
});
