// The core conformance suite (every op vs the reference backend, then fixture models vs their float64
// goldens) on the WebGPU backend in Node through Dawn, on both kernel paths: f16 (shader-f16, when the
// adapter has it) and f32 (what adapters without shader-f16 run). Here the adapter is Mesa's lavapipe, a
// CPU Vulkan driver unpacked by scripts/setup-test-env.mjs.
//
// On a CPU driver the whole matrix (4 models x 5 formats x 2 paths) takes about 15 minutes, so by default
// each path runs every op test and a spread of (model, format) pairs that covers every format on each
// path and every fixture feature except the 151,936-token vocabulary (90 s alone on lavapipe).
// QWEN2_WEBGPU_FULL_CONFORMANCE=1 runs everything.
import { describe, it } from 'vitest';
import { runConformanceSuite } from '@qwen2-ts/core/testing';
import type { WeightFormat } from '@qwen2-ts/core';
import { fileURLToPath } from 'node:url';
import { webgpuBackend } from './backend.js';
import { nodeGpu } from './test-support/node-gpu.js';

const fixturesDir = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const full = process.env.QWEN2_WEBGPU_FULL_CONFORMANCE === '1';
const g = await nodeGpu();

type Pairs = [model: string, formats: WeightFormat[]][];
const F16_PATH: Pairs = [['tiny-f16-sharded', ['f16']], ['tiny-bf16-untied', ['bf16', 'q4_0']], ['tiny-f32', ['f16', 'q8_0']]];
const F32_PATH: Pairs = [['tiny-f32', ['f32']], ['tiny-f16-sharded', ['f16', 'q4_0']], ['tiny-bf16-untied', ['bf16', 'q8_0']]];

function register(path: 'f16' | 'f32', gpu: GPU, pairs: Pairs): void {
  const make = () => webgpuBackend({ gpu, preferF16: path === 'f16' });
  if (full) {
    runConformanceSuite(`webgpu ${path}`, make, { fixturesDir });
    return;
  }
  runConformanceSuite(`webgpu ${path}`, make, {});
  for (const [model, formats] of pairs) runConformanceSuite(`webgpu ${path}`, make, { fixturesDir, skipOps: true, models: [model], formats });
}

if (!g.gpu) {
  describe.skip(`webgpu conformance skipped: ${g.reason}`, () => {
    it('needs a WebGPU adapter', () => undefined);
  });
} else {
  console.info(`[webgpu] adapter: ${g.adapterName}${g.shaderF16 ? ' (shader-f16)' : ' (no shader-f16)'}`);
  if (g.shaderF16) register('f16', g.gpu, F16_PATH);
  else describe.skip('webgpu f16 path: the adapter has no shader-f16', () => it('needs shader-f16', () => undefined));
  register('f32', g.gpu, F32_PATH);
}
