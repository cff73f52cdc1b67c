import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { wasmBackend } from './backend.js';

// Every op against core's reference backend, then the fixture models' float64 goldens in every format.
runConformanceSuite('wasm (2 threads)', () => wasmBackend({ threads: 2 }), { fixturesDir: '../../fixtures' });
