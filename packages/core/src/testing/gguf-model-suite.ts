// Whole-model check of q4_k on a backend: the fixture checkpoints cannot hold q4_k (their rows are
// 64-128 wide, q4_k needs whole 256-value super-blocks and comes only from GGUF files), so a random
// Qwen2 model with Q4_K matrices and embedding, 256 wide, is written as llama.cpp writes Q4_K_M files
// and loaded with dtype 'auto' on the backend and on the reference backend.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Qwen2Config } from '@qwen2-ts/loader';
import type { Backend } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { Qwen2 } from '../api/qwen2.js';
import { writeRandomGguf } from './gguf-fixtures.js';
import { maxAbsDiff } from './random.js';
import { MODEL_TOLERANCE } from './tolerances.js';

const CONFIG: Qwen2Config = {
  modelType: 'qwen2', vocabSize: 512, hiddenSize: 256, intermediateSize: 768, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  headDim: 64, maxPositionEmbeddings: 4096, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: false, maxWindowLayers: 28, eosTokenIds: [],
};

/** Relative RMS of `a - b` against the RMS of `b`. */
function relativeRms(a: Float32Array, b: Float32Array): number {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    s += b[i]! ** 2;
  }
  return Math.sqrt(d / Math.max(s, 1e-30));
}

/**
 * Registers the test: passes of 1, 2, 3, 9 and 40 tokens (a backend's decode kernels, its
 * several-token variants and its GEMM) give the reference backend's logits within the q4_k same-format
 * tolerance; a backend that does not store q4_k gets the file's blocks as q4_0 instead.
 */
export function registerGgufModelSuite(makeBackend: () => Promise<Backend>): void {
  let backend: Backend;
  let dir: string;
  let path: string;
  beforeAll(async () => {
    backend = await makeBackend();
    dir = mkdtempSync(join(tmpdir(), 'qwen2-q4k-'));
    path = join(dir, 'q4_k.gguf');
    await writeRandomGguf(path, { config: CONFIG, matrixType: 'Q4_K', embeddingType: 'Q4_K', byteVocabulary: true, seed: 21 });
  });
  afterAll(async () => {
    await backend?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a GGUF Q4_K model (q4_k embedding, matrices and head) as the reference backend does', async () => {
    const ref = new ReferenceBackend();
    const want = await Qwen2.load(path, { backend: ref });
    const got = await Qwen2.load(path, { backend });
    try {
      const native = backend.info.formats.includes('q4_k');
      expect(got.weightFormat).toBe(native ? 'q4_k' : 'q4_0');
      const report: string[] = [];
      for (const T of [1, 2, 3, 9, 40]) {
        const ids = Array.from({ length: T }, (_, i) => (i * 97 + T * 31 + 5) % CONFIG.vocabSize);
        const a = await got.logits(ids, { allPositions: true });
        const b = await want.logits(ids, { allPositions: true });
        for (let t = 0; t < T; t++) {
          const rel = relativeRms(a[t]!, b[t]!);
          report.push(`T=${T} position ${t}: max ${maxAbsDiff(a[t]!, b[t]!).toExponential(2)} rel ${rel.toExponential(2)}`);
          if (native) expect(maxAbsDiff(a[t]!, b[t]!), report.at(-1)).toBeLessThanOrEqual(MODEL_TOLERANCE.sameFormat.q4_k);
          // Requantized to q4_0: a second rounding, held to the lossy sanity bound.
          else expect(rel, report.at(-1)).toBeLessThanOrEqual(MODEL_TOLERANCE.lossyRelativeRms.q4_0);
        }
      }
    } finally {
      await got.dispose();
      await want.dispose();
      await ref.dispose();
    }
  }, 240_000);
}
