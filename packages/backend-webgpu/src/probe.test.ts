import { describe, expect, it } from 'vitest';
import { probeWebGPU } from './probe.js';

describe('probeWebGPU', () => {
  it('explains a missing navigator.gpu instead of throwing', async () => {
    const r = await probeWebGPU();
    expect(r.available).toBe(false);
    if (!r.available) expect(r.reason).toMatch(/navigator\.gpu/);
  });
  it('explains an adapter request that yields nothing', async () => {
    const fakeGpu = { requestAdapter: async () => null } as unknown as GPU;
    const r = await probeWebGPU(fakeGpu);
    expect(r).toEqual({ available: false, reason: expect.stringMatching(/no adapter/) });
  });
});
