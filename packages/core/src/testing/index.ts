/**
 * The conformance suite every qwen2-ts backend runs in its own tests (Node, vitest):
 *
 * ```ts
 * import { runConformanceSuite } from '@qwen2-ts/core/testing';
 * runConformanceSuite('wasm', () => createWasmBackend(), { fixturesDir: new URL('../../../fixtures', import.meta.url).pathname });
 * ```
 * @packageDocumentation
 */
import { describe } from 'vitest';
import type { Backend, WeightFormat } from '../backend/types.js';
import { registerOpSuite } from './op-suite.js';
import { registerGgufModelSuite } from './gguf-model-suite.js';
import { registerModelSuite } from './model-suite.js';

export { MODEL_TOLERANCE, OP_TOLERANCE, matmulTolerance } from './tolerances.js';
export { FIXTURE_MODELS, loadFixture, type Fixture, type Golden, type GoldenSequence, type TopK } from './fixtures.js';
export { hostWeight } from './op-suite.js';
export { TestRandom, maxAbsDiff, maxAbs } from './random.js';
export { ggmlBytes, randomGgmlBlocks, writeGgufFixture, writeRandomGguf, type GgufFixtureOptions, type RandomGgufOptions } from './gguf-fixtures.js';
export { quantizeMatrix, writeQuantizedFixture, type LayerQuantization, type QuantizedMatrix } from './quantized-checkpoints.js';

/** Options of {@link runConformanceSuite}. */
export interface ConformanceOptions {
  /**
   * The repository's `fixtures` folder (absolute, or relative to the working directory). Without it the
   * whole-model tests are not registered, and a line says so.
   */
  fixturesDir?: string;
  /** Seed of the random shapes and values (default 1234). */
  seed?: number;
  /** Fixture models to run (default: all four). */
  models?: readonly string[];
  /** Weight formats for the whole-model tests (default: all the backend supports). */
  formats?: readonly WeightFormat[];
  /** Skip the per-op tests (only the fixtures). */
  skipOps?: boolean;
  /**
   * How long one whole-model test (one fixture in one format) may run before it counts as hung (default
   * 120 s). Software adapters (SwiftShader) need more for the full-vocabulary fixture.
   */
  modelTimeoutMs?: number;
  /**
   * The backend offers {@link Backend.argmaxOnDevice} and {@link Backend.embedOnDevice}: the per-op tests
   * then check them against `argmax` and `embed`, and the whole-model tests decode the golden greedy
   * continuations through them too. Without it the suite only checks that neither is offered alone.
   */
  deviceTokens?: boolean;
  /**
   * The backend also offers {@link Backend.sampleOnDevice}: the per-op tests check its draws against
   * `sample` with the previous device token counted in the history.
   */
  deviceSampling?: boolean;
  /**
   * The backend offers {@link Backend.quantizeBlocks}: the per-op tests check its bits against core's
   * quantizers. Without it the suite checks that it is not offered.
   */
  quantizer?: boolean;
  /** @internal the candidate is the reference backend itself (no self-comparison). */
  isReference?: boolean;
}

/**
 * Registers vitest `describe`/`it` blocks that check a backend: every op against the reference backend
 * on seeded random shapes and values, then every fixture model's golden logits, greedy continuations
 * and incremental (KV-cache) schedule, for each weight format the backend supports, and a random GGUF
 * Q4_K model against the reference backend (its blocks as q4_k where the backend stores q4_k, as q4_0
 * otherwise).
 * @param name - shown in the test names
 * @param makeBackend - creates the backend under test (called once per group; disposed afterwards)
 * @param options - fixtures folder, seed, subsets
 */
export function runConformanceSuite(name: string, makeBackend: () => Promise<Backend>, options?: ConformanceOptions): void;
/** The contract's form: the name is taken from the backend. */
export function runConformanceSuite(makeBackend: () => Promise<Backend>, options?: ConformanceOptions): void;
export function runConformanceSuite(a: string | (() => Promise<Backend>), b?: (() => Promise<Backend>) | ConformanceOptions, c?: ConformanceOptions): void {
  const name = typeof a === 'string' ? a : 'backend';
  const makeBackend = typeof a === 'string' ? (b as () => Promise<Backend>) : a;
  const options = (typeof a === 'string' ? c : (b as ConformanceOptions | undefined)) ?? {};
  describe(`conformance: ${name}`, () => {
    if (!options.skipOps) describe('ops vs reference backend', () => registerOpSuite(makeBackend, options.seed ?? 1234, options.deviceTokens ?? false, options.deviceSampling ?? false, options.quantizer ?? false));
    if (options.fixturesDir) {
      describe('fixture models', () => registerModelSuite(makeBackend, { fixturesDir: options.fixturesDir!, models: options.models, formats: options.formats, timeoutMs: options.modelTimeoutMs }, options.isReference ?? false));
      if (!options.isReference && (options.formats === undefined || options.formats.includes('q4_k'))) describe('GGUF Q4_K model', () => registerGgufModelSuite(makeBackend));
    }
  });
}
