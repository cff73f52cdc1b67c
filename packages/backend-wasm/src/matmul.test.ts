import type { WeightFormat } from '@qwen2-ts/core';
import { OP_TOLERANCE } from '@qwen2-ts/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmBackend, type WasmBackend } from './backend.js';
import { matmulRef, maxRelError, quantizeActivations, randomF32, randomWeight } from './test-helpers.js';

const FORMATS: WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

/** The activation rounding a quantized matmul documents: int8 for q4_0 in the relaxed build, else int16. */
function activationLevels(backend: WasmBackend, format: WeightFormat): number {
  return format === 'q4_0' && backend.relaxed ? 127 : 32767;
}

/** One matmul with bias (K = 160) on random values against a float64 loop. */
async function expectMatmulMatches(backend: WasmBackend, format: WeightFormat, T: number, N: number): Promise<void> {
  const K = 160;
  const { host, values } = randomWeight(format, N, K, 11 + T);
  const w = await backend.uploadWeight(host, 'w');
  const bias = randomF32(N, 3);
  const b = await backend.uploadWeight({ format: 'f32', rows: 1, cols: N, data: bias }, 'b');
  const xData = randomF32(T * K, 7 + T, 2);
  const x = backend.alloc(T, K);
  backend.write(x, xData);
  const out = backend.alloc(T, N);
  backend.matmul(x, [w], [b], [out]);
  const got = await backend.read(out);
  const quant = format === 'q8_0' || format === 'q4_0';
  // Quantized weights (integer dot products, decode and GEMM): exact against the activation
  // quantization they document; float weights: f32 rounding.
  const ref = matmulRef(quant ? quantizeActivations(xData, activationLevels(backend, format)) : xData, values, T, K, N, bias);
  expect(maxRelError(got, ref)).toBeLessThan(2e-6);
  // Against exact activations: int16 rounding is invisible; int8 (ggml's) stays within core's op tolerance.
  if (quant) expect(maxRelError(got, matmulRef(xData, values, T, K, N, bias))).toBeLessThan(activationLevels(backend, format) === 127 ? OP_TOLERANCE.matmulQuant : 1e-4);
  for (const o of [w, b, x, out]) backend.free(o);
}

describe.each([
  [1, true], [2, true], [1, false], [2, false],
])('matmul on %i thread(s), relaxed SIMD %s', (threads, relaxedSimd) => {
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads, relaxedSimd }); });
  afterAll(async () => { await backend.dispose(); });
  const levels = (format: WeightFormat): number => activationLevels(backend, format);

  // N = 69, 70 and 71 exercise the row tails (not a multiple of 4 or 16) and the rows after the last
  // full set of the interleaved storage (q4_0: sets of four, then a pair and/or a row alone; q8_0:
  // pairs, then a row alone); T = 5, 13 and 33 the token tails of the GEMM tiles, T = 10 to 17 each side
  // of where the quantized matmuls switch from decode kernels to GEMMs (quantGemmMinTokens: 10 for q8_0,
  // 16 for q4_0 under relaxed SIMD), odd T the token left over by the q4_0 kernel's pairs; K = 160 is
  // five 32-value blocks, one group of four and one left over in the integer kernels.
  describe.each(FORMATS)('%s weights', (format) => {
    it.each([[1, 69], [1, 70], [1, 71], [2, 70], [2, 71], [3, 71], [4, 70], [5, 69], [5, 70], [5, 71], [10, 71], [11, 71], [12, 71], [13, 70], [13, 71], [15, 71], [16, 71], [17, 71], [33, 70], [33, 71]])('matches a float64 loop for T = %i, N = %i (with bias)', async (T, N) => {
      await expectMatmulMatches(backend, format, T, N);
    });
  });

  it.each(['f32', 'f16', 'bf16'] as const)('%s handles K not a multiple of 8 (lane tails)', async (format) => {
    const K = 43, N = 9;
    for (const T of [1, 2, 3]) {
      const { host, values } = randomWeight(format, N, K, 21 + T);
      const w = await backend.uploadWeight(host, 'w');
      const xData = randomF32(T * K, 8 + T);
      const x = backend.alloc(T, K);
      backend.write(x, xData);
      const out = backend.alloc(T, N);
      backend.matmul(x, [w], [undefined], [out]);
      expect(maxRelError(await backend.read(out), matmulRef(xData, values, T, K, N))).toBeLessThan(2e-6);
    }
  });

  it('bf16 rows longer than 2048 (two rows at a time) for passes of 1 to 5 tokens', async () => {
    const K = 2080, N = 7;
    const { host, values } = randomWeight('bf16', N, K, 31);
    const w = await backend.uploadWeight(host, 'w');
    for (const T of [1, 2, 3, 4, 5]) {
      const xData = randomF32(T * K, 40 + T);
      const x = backend.alloc(T, K);
      backend.write(x, xData);
      const out = backend.alloc(T, N);
      backend.matmul(x, [w], [undefined], [out]);
      expect(maxRelError(await backend.read(out), matmulRef(xData, values, T, K, N)), `T = ${T}`).toBeLessThan(2e-6);
      backend.free(x);
      backend.free(out);
    }
    backend.free(w);
  });

  it('fuses several weights reading one input (q/k/v) and handles mixed formats', async () => {
    const T = 3, K = 64;
    const ws = [randomWeight('q8_0', 32, K, 1), randomWeight('q4_0', 16, K, 2), randomWeight('bf16', 8, K, 3)];
    const uploaded = await Promise.all(ws.map((w, i) => backend.uploadWeight(w.host, `w${i}`)));
    const xData = randomF32(T * K, 5);
    const x = backend.alloc(T, K);
    backend.write(x, xData);
    const outs = ws.map((w) => backend.alloc(T, w.host.rows));
    backend.matmul(x, uploaded, [undefined, undefined, undefined], outs);
    for (let i = 0; i < ws.length; i++) {
      const format = ws[i]!.host.format;
      const xr = format === 'bf16' ? xData : quantizeActivations(xData, levels(format));
      expect(maxRelError(await backend.read(outs[i]!), matmulRef(xr, ws[i]!.values, T, K, ws[i]!.host.rows))).toBeLessThan(2e-6);
    }
  });
});

describe.each([true, false])('quantized GEMMs on as few tokens as a pass can have (quantGemmMinTokens: 1), relaxed SIMD %s', (relaxedSimd) => {
  // The measured thresholds keep passes under 11-12 tokens on the decode kernels; the GEMMs' own
  // handling of one token, an odd count and a partial 4-token tile is checked here.
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads: 2, relaxedSimd, quantGemmMinTokens: 1 }); });
  afterAll(async () => { await backend.dispose(); });
  it.each([['q8_0', 1], ['q8_0', 2], ['q8_0', 5], ['q4_0', 1], ['q4_0', 3], ['q4_0', 5]] as const)('%s at T = %i', async (format, T) => {
    await expectMatmulMatches(backend, format, T, 71);
  });
});

it('refuses a quantGemmMinTokens that is not a positive integer', async () => {
  await expect(wasmBackend({ threads: 1, quantGemmMinTokens: 0 })).rejects.toThrow(/quantGemmMinTokens must be a positive integer, got 0/);
});
