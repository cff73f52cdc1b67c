// Core's conformance suite on the WebGPU backend through Dawn (npm "webgpu"), as one script for a lent
// GPU machine without node_modules: bundled by scripts/device-prepare.mjs with the repository's
// scripts/device/vitest-shim.mjs standing in for vitest. Usage, from the repository root:
//   node packages/backend-webgpu/build/device/conformance.mjs [--paths f16,f32] [--models a,b] [--filter TEXT]
// Both kernel paths run when the adapter has shader-f16 (f16 arithmetic) and always the f32 path.
import { resolve } from 'node:path';
import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { create } from 'webgpu';
import { webgpuBackend } from '../../dist/index.js';
import { run } from '../../../../scripts/device/vitest-shim.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const fixturesDir = resolve(opt('--fixtures') ?? 'fixtures');
const paths = (opt('--paths') ?? 'f16,f32').split(',');

// Kept for the life of the process: Dawn crashes when the object create() returns is collected while
// its adapter or device is in use (see ../../../shared/platform-notes.md).
const gpu = create([]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  console.log('conformance: webgpu not run: Dawn found no adapter (is there a Vulkan driver for this GPU? see the ICD list above)');
  process.exit(2);
}
const name = `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`.trim();
console.log(`conformance: webgpu on ${name}; shader-f16: ${adapter.features.has('shader-f16')}; subgroups: ${adapter.features.has('subgroups')}; ` +
  `maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize}, maxBufferSize ${adapter.limits.maxBufferSize}`);
for (const path of paths) {
  if (path === 'f16' && !adapter.features.has('shader-f16')) {
    console.log('conformance: f16 path skipped: the adapter has no shader-f16');
    continue;
  }
  runConformanceSuite(`webgpu ${path} path on ${name}`, () => webgpuBackend({ gpu, preferF16: path === 'f16' }), { fixturesDir, models: opt('--models')?.split(','), deviceTokens: true, deviceSampling: true });
}
const counts = await run({ filter: opt('--filter') });
process.exit(counts.failed > 0 ? 1 : 0);
