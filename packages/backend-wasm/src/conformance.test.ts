import { runConformanceSuite } from '@qwen2-ts/core/testing';
import { wasmBackend } from './backend.js';

// Every op against core's reference backend, then the fixture models' float64 goldens in every format,
// for both kernel builds: relaxed SIMD (the default where the engine has it) and plain SIMD128.
runConformanceSuite('wasm (2 threads)', () => wasmBackend({ threads: 2 }), { fixturesDir: '../../fixtures', quantizer: true });
runConformanceSuite('wasm (2 threads, plain SIMD128)', () => wasmBackend({ threads: 2, relaxedSimd: false }), { fixturesDir: '../../fixtures', quantizer: true });
