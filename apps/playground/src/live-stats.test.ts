import { describe, expect, it } from 'vitest';
import { LiveStats, totalMemory } from './live-stats.js';

describe('LiveStats', () => {
  it('estimates TTFT and decode rate from arrival times, then takes core\'s numbers', () => {
    const mem = { weights: 1000, activations: 10, kvCache: 100 };
    const s = new LiveStats(mem);
    expect(s.view()).toEqual({ tokens: 0, memory: mem, final: false });
    s.token(120);
    expect(s.view()).toMatchObject({ timeToFirstTokenMs: 120, tokens: 1 });
    expect(s.view().decodeTokensPerSecond).toBeUndefined();
    s.token(170);
    s.token(220);
    expect(s.view().decodeTokensPerSecond).toBeCloseTo(20);
    s.finish({ ids: [1, 2, 3], text: 'abc', finishReason: 'length', promptTokens: 20, prefillTokensPerSecond: 400, decodeTokensPerSecond: 21, timeToFirstTokenMs: 110, memory: { ...mem, kvCache: 200 } });
    expect(s.view()).toEqual({ timeToFirstTokenMs: 110, prefillTokensPerSecond: 400, decodeTokensPerSecond: 21, tokens: 3, promptTokens: 20, memory: { ...mem, kvCache: 200 }, final: true });
    expect(totalMemory(mem)).toBe(1110);
  });
});
