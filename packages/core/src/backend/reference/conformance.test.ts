import { fileURLToPath } from 'node:url';
import { runConformanceSuite } from '../../testing/index.js';
import { ReferenceBackend } from './reference-backend.js';

// The reference backend against the goldens (and, trivially, against itself op by op: that half checks
// the suite's own plumbing).
const fixturesDir = fileURLToPath(new URL('../../../../../fixtures', import.meta.url));
const make = async () => new ReferenceBackend();
runConformanceSuite('reference', make, { fixturesDir, isReference: true, deviceTokens: true, deviceSampling: true, models: ['tiny-f32', 'tiny-bf16-untied', 'tiny-f16-sharded'] });
// The 151936-token fixture costs most (every step is a full-vocabulary lm_head in plain TypeScript):
// its exact formats and q8_0 here; f16/q4_0 are covered by the tiny models above.
runConformanceSuite('reference, full vocabulary', make, { fixturesDir, isReference: true, skipOps: true, models: ['full-vocab-bf16'], formats: ['f32', 'bf16', 'q8_0'] });
