// Core's conformance suite on the CUDA backend, as one script (bundled with scripts/device/vitest-shim.mjs
// standing in for vitest by scripts/device-prepare.mjs; the shim lives in the repository's scripts/device/). Usage, from the repository root:
//   node packages/backend-cuda/build/device/conformance.mjs [--reference] [--filter TEXT] [--fixtures DIR]
// --reference runs the suite on core's reference backend instead: it checks the harness itself where
// there is no GPU.
import { resolve } from 'node:path';
import { ReferenceBackend } from '@qwen2-ts/core';
import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { cudaAvailability, cudaBackend } from '../../dist/index.js';
import { run } from '../../../../scripts/device/vitest-shim.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const fixturesDir = resolve(opt('--fixtures') ?? 'fixtures');
const reference = args.includes('--reference');

if (reference) {
  runConformanceSuite('reference (harness check)', async () => new ReferenceBackend(), { fixturesDir, isReference: true, models: opt('--models')?.split(',') });
} else {
  const a = cudaAvailability();
  if (!a.available) {
    console.log(`conformance: cuda not run: ${a.reason}`);
    process.exit(2);
  }
  console.log(`conformance: cuda on ${JSON.stringify(a.probe)}`);
  runConformanceSuite('cuda', () => cudaBackend(), { fixturesDir, models: opt('--models')?.split(',') });
}
const counts = await run({ filter: opt('--filter') });
process.exit(counts.failed > 0 ? 1 : 0);
