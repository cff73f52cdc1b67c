// Core's conformance suite on the CUDA backend, as one script (bundled with scripts/device/vitest-shim.mjs
// standing in for vitest by scripts/device-prepare.mjs; the shim lives in the repository's scripts/device/). Usage, from the repository root:
//   node packages/backend-cuda/build/device/conformance.mjs [--reference] [--pdl] [--filter TEXT] [--fixtures DIR] [--models A,B] [--formats f,g]
// --reference runs the suite on core's reference backend instead: it checks the harness itself where
// there is no GPU. --pdl opens the backend with programmatic dependent launch (exit status 3 where the
// GPU does not have it).
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
  runConformanceSuite('reference (harness check)', async () => new ReferenceBackend(), { fixturesDir, isReference: true, deviceTokens: true, deviceSampling: true, models: opt('--models')?.split(',') });
} else {
  const a = cudaAvailability();
  if (!a.available) {
    console.log(`conformance: cuda not run: ${a.reason}`);
    process.exit(2);
  }
  console.log(`conformance: cuda on ${JSON.stringify(a.probe)}`);
  const pdl = args.includes('--pdl');
  if (pdl) {
    const b = await cudaBackend({ programmaticDependentLaunch: true });
    const granted = b.programmaticDependentLaunch;
    await b.dispose();
    if (!granted) {
      console.log('conformance: --pdl: this GPU has no programmatic dependent launch (compute capability below 9.0)');
      process.exit(3);
    }
  }
  runConformanceSuite(pdl ? 'cuda (programmatic dependent launch)' : 'cuda', () => cudaBackend({ programmaticDependentLaunch: pdl }), { fixturesDir, models: opt('--models')?.split(','), formats: opt('--formats')?.split(','), deviceTokens: true, deviceSampling: true });
}
const counts = await run({ filter: opt('--filter') });
process.exit(counts.failed > 0 ? 1 : 0);
