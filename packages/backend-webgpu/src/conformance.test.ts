// The core conformance suite (every op vs the reference backend, then fixture models vs their float64
// goldens) on the WebGPU backend in Node through Dawn, on both kernel paths: f16 (shader-f16) and f32
// (what adapters without shader-f16 run). Without a GPU the adapters are CPU Vulkan drivers: Mesa's
// lavapipe (has shader-f16; unpacked by scripts/setup-test-env.mjs) runs both paths, and SwiftShader
// (no shader-f16; comes with Debian's chromium) runs the f32 path on a real no-f16 adapter when present.
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
import { nodeGpu, primaryGpu, type NodeGpu } from './test-support/node-gpu.js';

const fixturesDir = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const full = process.env.QWEN2_WEBGPU_FULL_CONFORMANCE === '1';

type Pairs = [model: string, formats: WeightFormat[]][];
const F16_PATH: Pairs = [['tiny-f16-sharded', ['f16']], ['tiny-bf16-untied', ['bf16', 'q4_0']], ['tiny-f32', ['f16', 'q8_0']]];
const F32_PATH: Pairs = [['tiny-f32', ['f32']], ['tiny-f16-sharded', ['f16', 'q4_0']], ['tiny-bf16-untied', ['bf16', 'q8_0']]];
const NO_F16_ADAPTER: Pairs = [['tiny-f16-sharded', ['f16']]];

type Found = Extract<NodeGpu, { gpu: GPU }>;
const primary = await primaryGpu();
const swiftshader = await nodeGpu('SwiftShader');

function register(label: string, g: Found, preferF16: boolean, ops: boolean, pairs: Pairs): void {
  const make = () => webgpuBackend({ gpu: g.gpu, preferF16 });
  const name = `webgpu ${label} on ${g.adapterName}`;
  if (full) {
    // The full-vocabulary fixture takes SwiftShader more than core's default 120 s per format; this
    // package's hang-only limit (vitest.config.ts) instead.
    runConformanceSuite(name, make, { fixturesDir, skipOps: !ops, modelTimeoutMs: 600_000, deviceTokens: true, deviceSampling: true });
    return;
  }
  if (ops) runConformanceSuite(name, make, { deviceTokens: true, deviceSampling: true });
  for (const [model, formats] of pairs) runConformanceSuite(name, make, { fixturesDir, skipOps: true, models: [model], formats, deviceTokens: true, deviceSampling: true });
}

if (!primary.gpu) {
  describe.skip(`webgpu conformance skipped: ${primary.reason}`, () => {
    it('needs a WebGPU adapter', () => undefined);
  });
} else {
  if (primary.shaderF16) register('f16 path', primary, true, true, F16_PATH);
  else describe.skip(`webgpu f16 path: ${primary.adapterName} has no shader-f16`, () => it('needs shader-f16', () => undefined));
  // The f32 kernels' op tests run on a real no-f16 adapter when there is one (they are the same code).
  const noF16 = swiftshader.gpu && swiftshader.adapterName !== primary.adapterName ? swiftshader : undefined;
  register('f32 path', primary, false, !noF16, F32_PATH);
  if (noF16) register('no-f16 adapter', noF16, true, true, NO_F16_ADAPTER);
  else describe.skip(`webgpu on a no-f16 adapter: ${swiftshader.gpu ? 'it is the primary adapter' : swiftshader.reason}`, () => it('needs SwiftShader', () => undefined));
}
