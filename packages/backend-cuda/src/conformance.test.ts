import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { cudaAvailability } from './addon.js';
import { cudaBackend } from './open.js';

// Core's conformance suite (every op against the reference backend, then the fixture models' goldens)
// on the GPU. It needs a CUDA device: where there is none (CI here) the suite is not registered and the
// line below says why; scripts/device-check.sh runs it on a lent GPU.
const availability = cudaAvailability();
if (availability.available) {
  runConformanceSuite('cuda', () => cudaBackend(), { fixturesDir: fileURLToPath(new URL('../../../fixtures', import.meta.url)), deviceTokens: true, deviceSampling: true });
} else {
  describe('conformance: cuda', () => {
    it.skip(`not run: ${availability.reason}`, () => {});
  });
}
