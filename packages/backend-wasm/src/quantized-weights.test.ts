// Pre-quantized (AWQ / GPTQ) checkpoints go into this backend's weight buffers through core's own
// q4_0 / q8_0 builder: every stored matrix, read back column by column through matmul with one-hot rows,
// must hold what the reference backend holds from the same checkpoint.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelWeights, freeModelWeights, ReferenceBackend, type Backend, type ModelWeights, type Weight } from '@qwen2-ts/core';
import { maxAbs, maxAbsDiff, writeQuantizedFixture } from '@qwen2-ts/core/testing';
import { openModel } from '@qwen2-ts/loader';
import { afterAll, describe, expect, it } from 'vitest';
import { wasmBackend } from './backend.js';

const MODEL = new URL('../../../fixtures/models/tiny-f16-sharded', import.meta.url).pathname;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** `W` ([rows, cols]) as the backend computes it: x = the identity, so out = W transposed. */
async function readBack(backend: Backend, w: Weight): Promise<Float32Array> {
  const x = backend.alloc(w.cols, w.cols);
  const out = backend.alloc(w.cols, w.rows);
  const eye = new Float32Array(w.cols * w.cols);
  for (let i = 0; i < w.cols; i++) eye[i * w.cols + i] = 1;
  backend.write(x, eye);
  backend.matmul(x, [w], [undefined], [out]);
  const t = await backend.read(out);
  backend.free(x);
  backend.free(out);
  return t;
}

async function load(dir: string, backend: Backend): Promise<ModelWeights> {
  const opened = await openModel(dir);
  try {
    return await loadModelWeights(opened.checkpoint, opened.config, backend, { format: 'auto' });
  } finally {
    await opened.close();
  }
}

describe('pre-quantized checkpoints on the wasm backend', { timeout: 120_000 }, () => {
  it.each([
    ['AWQ 4-bit', 'awq', { bits: 4, groupSize: 32, symmetric: false }, { quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm' }, 'q4_0'],
    ['GPTQ 8-bit', 'gptq', { bits: 8, groupSize: 32, symmetric: true }, { quant_method: 'gptq', bits: 8, group_size: 32, sym: true }, 'q8_0'],
  ] as const)('%s: every matrix holds the reference backend\'s values', async (_, method, opt, config, format) => {
    const dir = mkdtempSync(join(tmpdir(), 'qwen2-wasm-quantized-'));
    const values = mkdtempSync(join(tmpdir(), 'qwen2-wasm-quantized-values-'));
    dirs.push(dir, values);
    await writeQuantizedFixture(MODEL, dir, values, method, opt, config);
    const wasm = await wasmBackend({ threads: 2 });
    const ref = new ReferenceBackend();
    try {
      const a = await load(dir, wasm), b = await load(dir, ref);
      const pairs: [string, Weight, Weight][] = [['embed', a.embed, b.embed], ['lm_head', a.lmHead, b.lmHead]];
      for (const [i, l] of a.layers.entries()) for (const k of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) pairs.push([`layers.${i}.${k}`, l[k], b.layers[i]![k]]);
      for (const [name, wa, wb] of pairs) {
        expect(wa.format, name).toBe(name === 'embed' || name === 'lm_head' ? 'q8_0' : format);
        const got = await readBack(wasm, wa), want = await readBack(ref, wb);
        // One-hot rows pass through the int8 activations unchanged but for the activation scale's rounding.
        expect(maxAbsDiff(got, want), name).toBeLessThan(1e-3 * maxAbs(want));
      }
      freeModelWeights(wasm, a);
      freeModelWeights(ref, b);
    } finally {
      await wasm.dispose();
      await ref.dispose();
    }
  });
});
