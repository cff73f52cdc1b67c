// The core conformance suite (every op vs the reference backend, then the fixture models' goldens) on
// the WebGPU backend in Node through Dawn, on both kernel paths: f16 (shader-f16, when the adapter has
// it) and f32 (what adapters without shader-f16 run). On this machine the adapter is Mesa's lavapipe
// (a CPU Vulkan driver unpacked by scripts/setup-test-env.mjs).
import { describe, it } from 'vitest';
import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { fileURLToPath } from 'node:url';
import { webgpuBackend } from './backend.js';
import { nodeGpu } from './test-support/node-gpu.js';

const fixturesDir = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const g = await nodeGpu();

if (!g.gpu) {
  describe.skip(`webgpu conformance skipped: ${g.reason}`, () => {
    it('needs a WebGPU adapter', () => undefined);
  });
} else {
  const gpu = g.gpu;
  console.info(`[webgpu] adapter: ${g.adapterName}${g.shaderF16 ? ' (shader-f16)' : ' (no shader-f16)'}`);
  if (g.shaderF16) runConformanceSuite('webgpu f16', () => webgpuBackend({ gpu, preferF16: true }), { fixturesDir });
  else describe.skip('webgpu f16 path: the adapter has no shader-f16', () => it('needs shader-f16', () => undefined));
  runConformanceSuite('webgpu f32', () => webgpuBackend({ gpu, preferF16: false }), { fixturesDir });
}
