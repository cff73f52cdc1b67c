import { describe, expect, it } from 'vitest';
import { TokenizerError } from './errors.js';
import { loadQwen2Instruct, readJsonl } from './test-fixtures.js';

describe('createStreamDecoder', () => {
  const tok = loadQwen2Instruct();
  const golden = readJsonl<{ text: string; ids: number[] }>('tokenizer/qwen2_tokenizer_golden.jsonl');

  it('never emits a broken character and concatenates to decode() on every golden string', () => {
    for (const c of golden) {
      const stream = tok.createStreamDecoder();
      let text = '';
      for (const id of c.ids) {
        const piece = stream.push(id);
        // A chunk that ended mid-character would carry a replacement char that decode() does not have.
        expect(piece.includes('\ufffd') && !tok.decode(c.ids).includes('\ufffd')).toBe(false);
        text += piece;
      }
      text += stream.flush();
      expect(text).toBe(tok.decode(c.ids));
    }
  });

  it('holds back the bytes of an emoji split over tokens until it completes', () => {
    const ids = tok.encode('👨‍👩‍👧');
    expect(ids.length).toBeGreaterThan(3);
    const stream = tok.createStreamDecoder();
    const chunks = ids.map((id) => stream.push(id));
    expect(chunks.join('') + stream.flush()).toBe('👨‍👩‍👧');
    for (const chunk of chunks) expect(chunk).not.toContain('\ufffd');
    expect(chunks.some((c) => c === '')).toBe(true);
  });

  it('flush() turns a dangling partial character into U+FFFD and resets', () => {
    const [first] = tok.encode('🫠');
    const stream = tok.createStreamDecoder();
    expect(stream.push(first)).toBe('');
    expect(stream.flush()).toBe('\ufffd');
    expect(stream.push(tok.encode('ok')[0])).toBe('ok');
  });

  it('skips special tokens on request, drops ids without a token, rejects non-ids', () => {
    const stream = tok.createStreamDecoder({ skipSpecialTokens: true });
    const out = tok.encode('<|im_start|>hi<|im_end|>').map((id) => stream.push(id)).join('');
    expect(out).toBe('hi');
    expect(stream.push(151900)).toBe('');
    expect(() => stream.push(-3)).toThrow(TokenizerError);
  });
});
