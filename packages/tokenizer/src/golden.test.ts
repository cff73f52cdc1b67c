import { describe, expect, it } from 'vitest';
import { loadQwen2Instruct, readFixture, readJsonl } from './test-fixtures.js';

interface GoldenCase {
  text: string;
  ids: number[];
  category: string;
  tokens: string[];
  roundtrip_exact: boolean;
  decoded?: string;
}

describe('Qwen2 golden encodings (Hugging Face tokenizers@0.23.2)', () => {
  const tok = loadQwen2Instruct();
  const cases = readJsonl<GoldenCase>('tokenizer/qwen2_tokenizer_golden.jsonl');

  it('has the 175 cases', () => expect(cases.length).toBe(175));

  it.each(cases.map((c, i) => [i, c.category, c] as const))('case %i (%s): ids and tokens', (_i, _cat, c) => {
    const ids = tok.encode(c.text);
    expect(ids).toEqual(c.ids);
    expect(ids.map((id) => tok.idToToken(id))).toEqual(c.tokens);
  });

  it('decodes every case back to the NFC text (exactly the input when roundtrip_exact)', () => {
    for (const c of cases) {
      const decoded = tok.decode(c.ids);
      expect(decoded).toBe(c.decoded ?? c.text.normalize('NFC'));
      if (c.roundtrip_exact) expect(decoded).toBe(c.text);
    }
  });
});

describe('Unicode-version edge cases', () => {
  // Letters/numbers new in Unicode 17: Node's own \p{L} (ICU 78) classifies them as letters, the reference
  // (Oniguruma, Unicode 16) does not. The expected ids are the reference's (field `ids` = hf_rust), which
  // only pinned tables reproduce; JS-RegExp tokenizers get the `hf_tokenizers_js` ids instead.
  const tok = loadQwen2Instruct();
  const cases = readJsonl<{ text: string; ids: number[]; ids_by_impl: Record<string, number[]> }>(
    'tokenizer/qwen2_unicode_version_edge.jsonl',
  );
  it.each(cases.map((c) => [c.text, c] as const))('%s', (_t, c) => {
    expect(c.ids).toEqual(c.ids_by_impl.hf_rust);
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.decode(c.ids)).toBe(c.text.normalize('NFC'));
  });
});

describe('llama.cpp vectors (HF Python tokenizer of Qwen1.5, same vocab and merges)', () => {
  const tok = loadQwen2Instruct();
  const inputs = readFixture('tokenizer/llama.cpp-vectors/ggml-vocab-qwen2.gguf.inp').split('\n__ggml_vocab_test__\n');
  const outputs = readFixture('tokenizer/llama.cpp-vectors/ggml-vocab-qwen2.gguf.out').split('\n');
  // Both files end with a separator / newline, leaving one empty trailing element.
  inputs.pop();
  outputs.pop();

  it('has 46 vectors', () => {
    expect(inputs.length).toBe(46);
    expect(outputs.length).toBe(46);
  });

  it.each(inputs.map((text, i) => [i, JSON.stringify(text).slice(0, 40), text, outputs[i]] as const))(
    'vector %i %s',
    (_i, _label, text, line) => {
      const expected = line.trim() === '' ? [] : line.trim().split(/\s+/).map(Number);
      expect(tok.encode(text)).toEqual(expected);
    },
  );
});
