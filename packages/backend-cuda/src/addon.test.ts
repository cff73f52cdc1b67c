import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cudaAvailability } from './addon.js';

const built = existsSync(new URL('../build/Release/qwen2_cuda.node', import.meta.url));

describe('cudaAvailability', () => {
  it('never throws and gives a reason when CUDA is unusable', () => {
    const a = cudaAvailability();
    if (!a.available) expect(a.reason).toMatch(/CUDA/);
    else expect(a.probe.deviceCount).toBeGreaterThan(0);
  });
  it.runIf(built)('reports the driver error by its CUDA name when the addon is built', () => {
    const a = cudaAvailability();
    if (!a.available && a.probe) expect(a.probe.errorName).toMatch(/^cuda/);
    if (!a.available) expect(a.reason).toMatch(/cudaError|no CUDA device/);
  });
});
