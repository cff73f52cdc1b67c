import { describe, expect, it } from 'vitest';
import type { GenerationResult } from '../api/types.js';
import { createGenerationStream } from './stream.js';

const result = (n: number): GenerationResult => ({ ids: Array.from({ length: n }, (_, i) => i), text: '', finishReason: 'length', promptTokens: 1, prefillTokensPerSecond: 0, decodeTokensPerSecond: 0, timeToFirstTokenMs: 0 });

describe('createGenerationStream', () => {
  it('runs without a reader, and the stream itself can be awaited', async () => {
    let produced = 0;
    const s = createGenerationStream(async (emit) => {
      for (let i = 0; i < 5; i++) {
        await emit({ tokenId: i, text: String(i) });
        produced++;
      }
      return result(5);
    });
    expect((await s).ids).toHaveLength(5);
    expect(produced).toBe(5);
  });
  it('paces the producer by the reader and releases it when the reader stops early', async () => {
    let produced = 0;
    const s = createGenerationStream(async (emit) => {
      for (let i = 0; i < 100; i++) {
        await emit({ tokenId: i, text: '' });
        produced++;
      }
      return result(100);
    });
    for await (const c of s) {
      expect(produced).toBeLessThanOrEqual(c.tokenId + 1);
      if (c.tokenId === 3) break;
    }
    expect((await s.result).ids).toHaveLength(100); // not left hanging
  });
  it('delivers a failure to the reader and to result', async () => {
    const s = createGenerationStream(async (emit) => {
      await emit({ tokenId: 1, text: 'a' });
      throw new Error('boom');
    });
    const seen: number[] = [];
    await expect((async () => {
      for await (const c of s) seen.push(c.tokenId);
    })()).rejects.toThrow('boom');
    expect(seen).toEqual([1]);
    await expect(s.result).rejects.toThrow('boom');
  });
});
