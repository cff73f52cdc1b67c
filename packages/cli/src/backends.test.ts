import { describe, expect, it, vi } from 'vitest';
import { createBackend } from './backends.js';

// A stand-in for the CUDA package: records the options cudaBackend() gets.
const seen: unknown[] = [];
vi.mock('@qwen2-ts/backend-cuda', () => ({
  cudaAvailability: () => ({ available: true }),
  cudaBackend: async (options: unknown) => {
    seen.push(options);
    return { info: { name: 'cuda', device: 'stand-in', formats: [] } };
  },
}));

describe('createBackend', () => {
  it("hands the cuda options of the command line to cudaBackend(), and none when there are none", async () => {
    await createBackend('cuda', { cuda: { prefillPrecision: '16-bit', programmaticDependentLaunch: true } });
    await createBackend('cuda', { threads: 2 });
    expect(seen).toEqual([{ prefillPrecision: '16-bit', programmaticDependentLaunch: true }, {}]);
  });
});
