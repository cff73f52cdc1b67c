// q4_k weights (ggml's Q4_K blocks, repacked at upload: assembly/q4_k_layout.ts) on both kernel builds:
// matmuls against float64 loops over core's dequantization, embedding rows exactly as core's
// dequantizeQ4_KRow, the in-place upload through weightBuffer, and the shapes q4_k refuses.
import { dequantizeQ4_KRow, quantizeQ4_K, type HostWeight } from '@qwen2-ts/core';
import { OP_TOLERANCE } from '@qwen2-ts/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmBackend, type WasmBackend } from './backend.js';
import { matmulRef, maxRelError, quantizeActivations, randomF32, randomWeight } from './test-helpers.js';

/** int8 activations (ggml's q8_0 rounding) in the relaxed build, int16 in the plain one, as for q4_0. */
function levels(backend: WasmBackend): number {
  return backend.relaxed ? 127 : 32767;
}

/**
 * One matmul of T tokens against a q4_k weight [N, K] (optionally with a bias), checked two ways: exact
 * integer dot products against the activation quantization the backend documents (f32 rounding only),
 * and within core's quantized-matmul tolerance of the exact activations.
 */
async function expectQ4kMatmul(backend: WasmBackend, T: number, K: number, N: number, withBias: boolean, seed: number): Promise<void> {
  const { host, values } = randomWeight('q4_k', N, K, seed);
  const w = await backend.uploadWeight(host, 'w');
  const bias = withBias ? randomF32(N, seed + 1) : undefined;
  const b = bias ? await backend.uploadWeight({ format: 'f32', rows: 1, cols: N, data: bias }, 'b') : undefined;
  const xData = randomF32(T * K, seed + 2, 2);
  const x = backend.alloc(T, K);
  backend.write(x, xData);
  const out = backend.alloc(T, N);
  backend.matmul(x, [w], [b], [out]);
  const got = await backend.read(out);
  const what = `T = ${T}, K = ${K}, N = ${N}, bias ${withBias}`;
  expect(maxRelError(got, matmulRef(quantizeActivations(xData, levels(backend)), values, T, K, N, bias)), what).toBeLessThan(2e-6);
  expect(maxRelError(got, matmulRef(xData, values, T, K, N, bias)), what).toBeLessThan(levels(backend) === 127 ? OP_TOLERANCE.matmulQuant : 1e-4);
  for (const o of [w, x, out, ...(b ? [b] : [])]) backend.free(o);
}

/** Every row of a q4_k table looked up through embed, against core's dequantizeQ4_KRow (bit for bit). */
async function expectEmbedExact(backend: WasmBackend, host: Extract<HostWeight, { format: 'q4_k' }>): Promise<void> {
  const table = await backend.uploadWeight({ ...host, blocks: host.blocks.slice() }, 'table');
  const ids = Int32Array.from({ length: host.rows }, (_, i) => host.rows - 1 - i);
  const out = backend.alloc(ids.length, host.cols);
  backend.embed(table, ids, out);
  const got = await backend.read(out);
  const want = new Float32Array(ids.length * host.cols);
  ids.forEach((id, t) => dequantizeQ4_KRow(host.blocks, host.cols, id, want.subarray(t * host.cols, (t + 1) * host.cols)));
  expect(got).toEqual(want);
  backend.free(table);
  backend.free(out);
}

describe.each([
  [1, true], [2, true], [1, false], [2, false],
])('q4_k on %i thread(s), relaxed SIMD %s', (threads, relaxedSimd) => {
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads, relaxedSimd }); });
  afterAll(async () => { await backend.dispose(); });

  it('stores q4_k', () => {
    expect(backend.info.formats).toContain('q4_k');
    expect(backend.relaxed).toBe(relaxedSimd);
  });

  // K: one, two and three super-blocks, and 19 (Qwen2-0.5B's 4864: an odd count, so a row's metadata
  // is not a multiple of 16 bytes). N: 69 = sets of four and a row alone, 70 = and a pair, 71 = both,
  // 3 = no full set. T: decode kernels (1, 2, 3, 5: token pairs and one left over) and GEMMs (16, 64;
  // relaxed: from 16 tokens, plain: from 4, so T = 5 is a GEMM there).
  const Ns = [69, 70, 71, 3];
  describe.each([256, 512, 768, 4864])('K = %i', (K) => {
    it.each([1, 2, 3, 5, 16, 64])('T = %i, with and without bias, matches a float64 loop', async (T) => {
      await expectQ4kMatmul(backend, T, K, Ns[(T + K / 256) % 4]!, true, 100 + T + K);
      await expectQ4kMatmul(backend, T, K, Ns[(T + K / 256 + 1) % 4]!, false, 200 + T + K);
    });
  });

  it('embeds q4_k rows exactly as core dequantizes them (sets, a pair, a row alone; subnormal d)', async () => {
    for (const [rows, cols] of [[71, 256], [6, 768], [3, 4864]] as const) {
      const { host } = randomWeight('q4_k', rows, cols, rows + cols);
      if (host.format !== 'q4_k') throw new Error('q4_k expected');
      // One super-block with a subnormal d and dmin, one with zero scales.
      host.blocks.set([0x07, 0x00, 0x15, 0x80], 0);
      host.blocks.set([0x00, 0x00, 0x00, 0x00], 144);
      await expectEmbedExact(backend, host);
    }
  });

  it('embeds and multiplies ggml-quantized weights (core\'s quantizeQ4_K)', async () => {
    const K = 512, N = 9, T = 3;
    const data = randomF32(N * K, 5, 0.5);
    const host = quantizeQ4_K(data, N, K);
    await expectEmbedExact(backend, host);
    const values = new Float32Array(N * K);
    for (let r = 0; r < N; r++) dequantizeQ4_KRow(host.blocks, K, r, values.subarray(r * K, (r + 1) * K));
    const w = await backend.uploadWeight(host, 'w');
    const xData = randomF32(T * K, 6);
    const x = backend.alloc(T, K);
    backend.write(x, xData);
    const out = backend.alloc(T, N);
    backend.matmul(x, [w], [undefined], [out]);
    expect(maxRelError(await backend.read(out), matmulRef(quantizeActivations(xData, levels(backend)), Float64Array.from(values), T, K, N))).toBeLessThan(2e-6);
    for (const o of [w, x, out]) backend.free(o);
  });

  it('fills a weightBuffer in place: the same weight as uploadWeight from host arrays', async () => {
    const N = 70, K = 768, T = 2;
    const { host } = randomWeight('q4_k', N, K, 77);
    if (host.format !== 'q4_k') throw new Error('q4_k expected');
    const buffer = await backend.weightBuffer('q4_k', N, K, 'buffered');
    if (buffer.format !== 'q4_k') throw new Error('q4_k expected');
    expect(buffer.blocks.length).toBe(host.blocks.length);
    buffer.blocks.set(host.blocks);
    const a = await backend.uploadWeight(buffer, 'buffered');
    const b = await backend.uploadWeight(host, 'copied');
    const x = backend.alloc(T, K);
    backend.write(x, randomF32(T * K, 8));
    const oa = backend.alloc(T, N), ob = backend.alloc(T, N);
    backend.matmul(x, [a, b], [undefined, undefined], [oa, ob]);
    expect(await backend.read(oa)).toEqual(await backend.read(ob));
    for (const o of [a, b, x, oa, ob]) backend.free(o);
  });

  it('uses q4_k alongside q4_0 and q8_0 in one call (one activation quantization per layout)', async () => {
    const T = 3, K = 256;
    const ws = [randomWeight('q4_k', 20, K, 1), randomWeight('q4_0', 16, K, 2), randomWeight('q8_0', 8, K, 3), randomWeight('q4_k', 5, K, 4)];
    const uploaded = await Promise.all(ws.map((w, i) => backend.uploadWeight(w.host, `w${i}`)));
    const xData = randomF32(T * K, 5);
    const x = backend.alloc(T, K);
    backend.write(x, xData);
    const outs = ws.map((w) => backend.alloc(T, w.host.rows));
    backend.matmul(x, uploaded, uploaded.map(() => undefined), outs);
    for (let i = 0; i < ws.length; i++) {
      const l = ws[i]!.host.format === 'q8_0' ? 32767 : levels(backend);
      expect(maxRelError(await backend.read(outs[i]!), matmulRef(quantizeActivations(xData, l), ws[i]!.values, T, K, ws[i]!.host.rows)), ws[i]!.host.format).toBeLessThan(2e-6);
    }
    for (const o of [...uploaded, x, ...outs]) backend.free(o);
  });

  it('takes a q4_k vector (stored as f32) as a bias', async () => {
    const N = 256, K = 256, T = 1;
    const bias = randomWeight('q4_k', 1, N, 9);
    const { host, values } = randomWeight('q4_k', N, K, 10);
    const w = await backend.uploadWeight(host, 'w');
    const b = await backend.uploadWeight(bias.host, 'b');
    const xData = randomF32(T * K, 11);
    const x = backend.alloc(T, K);
    backend.write(x, xData);
    const out = backend.alloc(T, N);
    backend.matmul(x, [w], [b], [out]);
    const ref = matmulRef(quantizeActivations(xData, levels(backend)), values, T, K, N, Float32Array.from(bias.values));
    expect(maxRelError(await backend.read(out), ref)).toBeLessThan(2e-6);
    for (const o of [w, b, x, out]) backend.free(o);
  });

  it('refuses q4_k shapes that are not whole super-blocks, and short block arrays', async () => {
    const blocks = new Uint8Array(144 * 4);
    await expect(backend.uploadWeight({ format: 'q4_k', rows: 8, cols: 128, blocks }, 'half')).rejects.toThrow(/uploadWeight 'half': q4_k needs cols % 256 === 0 \(whole super-blocks of 256 values\), got 128/);
    await expect(backend.uploadWeight({ format: 'q4_k', rows: 8, cols: 256, blocks }, 'short')).rejects.toThrow(/'short' \(q4_k \[8, 256\]\): blocks \(bytes\) has 576 elements, expected 1152/);
    await expect(backend.weightBuffer('q4_k', 8, 288, 'odd')).rejects.toThrow(/weightBuffer: cannot hold 'odd' as q4_k \[8, 288\]: q4_k needs cols % 256 === 0/);
  });
});

describe.each([true, false])('q4_k GEMMs on as few tokens as a pass can have (quantGemmMinTokens: 1), relaxed SIMD %s', (relaxedSimd) => {
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads: 2, relaxedSimd, quantGemmMinTokens: 1 }); });
  afterAll(async () => { await backend.dispose(); });
  it.each([1, 2, 3, 5])('T = %i', async (T) => {
    await expectQ4kMatmul(backend, T, 512, 71, true, 300 + T);
  });
});

describe('q4_k weights outside the first memory', () => {
  // firstMemoryWeightBytes: 0 puts every matrix in a memory of its own: the matmul stages its input
  // and output through it, embed its rows.
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads: 2, firstMemoryWeightBytes: 0 }); });
  afterAll(async () => { await backend.dispose(); });
  it('matmul and embed', async () => {
    await expectQ4kMatmul(backend, 1, 768, 70, true, 400);
    await expectQ4kMatmul(backend, 20, 768, 70, true, 401);
    expect(backend.memories).toBeGreaterThan(1);
    const { host } = randomWeight('q4_k', 10, 512, 402);
    if (host.format !== 'q4_k') throw new Error('q4_k expected');
    await expectEmbedExact(backend, host);
  });
});
