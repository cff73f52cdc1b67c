import { fileURLToPath } from 'node:url';
import { runConformanceSuite } from '../../testing/index.js';
import { ReferenceBackend } from './reference-backend.js';

// The reference backend against the goldens (and, trivially, against itself op by op: that half checks
// the suite's own plumbing).
runConformanceSuite('reference', async () => new ReferenceBackend(), {
  fixturesDir: fileURLToPath(new URL('../../../../../fixtures', import.meta.url)),
  isReference: true,
});
