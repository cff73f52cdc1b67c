import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { BackendUsageError } from '../../errors.js';
import { ReferenceBackend } from './reference-backend.js';

const golden = JSON.parse(await readFile(new URL('../../../../../fixtures/models/tiny-f32/golden.json', import.meta.url), 'utf8')) as {
  debug: { position: number; rope_cos_last_position: number[]; rope_sin_last_position: number[] };
  model: { head_dim: number; rope_theta: number };
};

describe('ReferenceBackend ops against hand-computed values', () => {
  it('rope matches the golden cos/sin tables (rotate-half, theta from the config)', async () => {
    const b = new ReferenceBackend();
    const D = golden.model.head_dim;
    const half = D / 2;
    const { rope_cos_last_position: cos, rope_sin_last_position: sin, position } = golden.debug;
    // Rotating e_i gives cos_i at i and sin_i at i + half, for i < half.
    for (let i = 0; i < half; i++) {
      const x = b.alloc(1, D);
      const e = new Float32Array(D);
      e[i] = 1;
      b.write(x, e);
      b.rope(x, 1, D, position, golden.model.rope_theta);
      const out = await b.read(x);
      expect(out[i]).toBeCloseTo(cos[i]!, 6);
      expect(out[i + half]).toBeCloseTo(sin[i + half]!, 6);
    }
  });

  it('attention with a window of 1 returns each position\'s own value; a wide window equals full attention', async () => {
    const b = new ReferenceBackend();
    const kvHeads = 1, headDim = 4, heads = 2, T = 5;
    const cache = b.createKVCache({ layers: 1, kvHeads, headDim, maxTokens: T });
    const k = b.alloc(T, 4), v = b.alloc(T, 4), q = b.alloc(T, 8), out = b.alloc(T, 8), full = b.alloc(T, 8);
    const vals = Float32Array.from({ length: T * 4 }, (_, i) => i * 0.5 - 3);
    b.write(k, Float32Array.from({ length: T * 4 }, (_, i) => Math.sin(i)));
    b.write(v, vals);
    b.write(q, Float32Array.from({ length: T * 8 }, (_, i) => Math.cos(i)));
    b.writeKV(cache, 0, k, v, 0);
    b.attention(q, cache, 0, 0, { heads, kvHeads, headDim, scale: 0.5, slidingWindow: 1 }, out);
    const got = await b.read(out);
    for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) for (let d = 0; d < 4; d++) expect(got[t * 8 + h * 4 + d]).toBeCloseTo(vals[t * 4 + d]!, 6);
    b.attention(q, cache, 0, 0, { heads, kvHeads, headDim, scale: 0.5, slidingWindow: T }, out);
    b.attention(q, cache, 0, 0, { heads, kvHeads, headDim, scale: 0.5 }, full);
    expect(Array.from(await b.read(out))).toEqual(Array.from(await b.read(full)));
    // Position 0 attends only to itself, so its output is v[0] whatever the window.
    expect(Array.from((await b.read(full)).subarray(0, 4)).map((x) => +x.toFixed(5))).toEqual(Array.from(vals.subarray(0, 4)));
  });

  it('rmsNorm and swiglu follow their formulas', async () => {
    const b = new ReferenceBackend();
    const x = b.alloc(1, 4);
    b.write(x, Float32Array.from([1, 2, 3, 4]));
    const w = await b.uploadWeight({ format: 'f32', rows: 1, cols: 4, data: Float32Array.from([1, 1, 2, 0.5]) }, 'g');
    b.rmsNorm(x, w, 0, x);
    const r = Math.sqrt((1 + 4 + 9 + 16) / 4);
    expect(Array.from(await b.read(x))).toEqual(Array.from(Float32Array.from([1 / r, 2 / r, 6 / r, 2 / r])));
    const g = b.alloc(1, 2), u = b.alloc(1, 2);
    b.write(g, Float32Array.from([0, 2]));
    b.write(u, Float32Array.from([5, 3]));
    b.swiglu(g, u, g);
    const out = await b.read(g);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo((2 / (1 + Math.exp(-2))) * 3, 6);
  });
});

describe('ReferenceBackend misuse gets a clear error', () => {
  it('shape mismatches name the op and shapes', async () => {
    const b = new ReferenceBackend();
    const w = await b.uploadWeight({ format: 'f32', rows: 3, cols: 4, data: new Float32Array(12) }, 'proj');
    expect(() => b.matmul(b.alloc(2, 5), [w], [undefined], [b.alloc(2, 3)])).toThrow(/'proj' \[3, 4\] against x \[2, 5\]/);
    expect(() => b.add(b.alloc(2, 2), b.alloc(2, 3), b.alloc(2, 2))).toThrow(BackendUsageError);
    expect(() => b.view(b.alloc(2, 2), 1, 2)).toThrow(/outside a tensor of 2 rows/);
    await expect(b.uploadWeight({ format: 'q8_0', rows: 1, cols: 40, scales: new Uint16Array(1), quants: new Int8Array(40) }, 'bad')).rejects.toThrow(/multiple of 32/);
  });
  it('out-of-vocabulary ids, cache overflow, use after free and nested passes', async () => {
    const b = new ReferenceBackend();
    const table = await b.uploadWeight({ format: 'f32', rows: 3, cols: 2, data: new Float32Array(6) }, 'embed');
    expect(() => b.embed(table, Int32Array.from([3]), b.alloc(1, 2))).toThrow(/token id 3 outside the vocabulary of 3/);
    const cache = b.createKVCache({ layers: 1, kvHeads: 1, headDim: 2, maxTokens: 2 });
    expect(() => b.writeKV(cache, 0, b.alloc(3, 2), b.alloc(3, 2), 0)).toThrow(/outside a cache of 2 tokens/);
    const t = b.alloc(1, 2);
    b.free(t);
    expect(() => b.write(t, new Float32Array(2))).toThrow(/after free/);
    b.free(table);
    expect(() => b.embed(table, Int32Array.from([0]), b.alloc(1, 2))).toThrow(/after free/);
    b.beginPass(1, 0);
    expect(() => b.beginPass(1, 0)).toThrow(/already open/);
    b.endPass();
    expect(() => b.endPass()).toThrow(/no pass/);
    await b.dispose();
    expect(() => b.alloc(1, 1)).toThrow(/disposed/);
  });
});
