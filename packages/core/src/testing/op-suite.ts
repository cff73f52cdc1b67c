import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { Backend, HostWeight, KVCacheDtype, SamplingParams, Tensor, WeightFormat } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { quantizeBlocksQ4_0, quantizeQ4_0 } from '../quant/q4_0.js';
import { quantizeBlocksQ8_0, quantizeQ8_0 } from '../quant/q8_0.js';
import { quantizeQ4_K } from '../quant/q4_k.js';
import { f32ToBf16, f32ToF16, roundToF16KV } from '../numeric/half.js';
import { matmulTolerance, OP_TOLERANCE } from './tolerances.js';
import { maxAbs, maxAbsDiff, TestRandom } from './random.js';
import { withOccurrence } from '../sampling/history.js';
import { decodeToF32 } from '../weights/convert.js';

/** A host weight of `format` from f32 values (rounded or quantized the way the loader would). */
export function hostWeight(format: WeightFormat, rows: number, cols: number, values: Float32Array): HostWeight {
  switch (format) {
    case 'f32':
      return { format, rows, cols, data: values.slice() };
    case 'f16':
      return { format, rows, cols, data: Uint16Array.from(values, f32ToF16) };
    case 'bf16':
      return { format, rows, cols, data: Uint16Array.from(values, f32ToBf16) };
    case 'q8_0':
      return quantizeQ8_0(values, rows, cols);
    case 'q4_0':
      return quantizeQ4_0(values, rows, cols);
    case 'q4_k':
      return quantizeQ4_K(values, rows, cols);
  }
}

/** Fresh copies, since a backend may adopt what it is given. */
function copyWeight(w: HostWeight): HostWeight {
  if (w.format === 'q4_k') return { ...w, blocks: w.blocks.slice() };
  return w.format === 'q8_0' || w.format === 'q4_0' ? { ...w, scales: w.scales.slice(), quants: w.quants.slice() } as HostWeight : { ...w, data: w.data.slice() } as HostWeight;
}

function tensor(b: Backend, rows: number, cols: number, data?: Float32Array): Tensor {
  const t = b.alloc(rows, cols);
  if (data) b.write(t, data);
  return t;
}

function expectClose(what: string, got: Float32Array, want: Float32Array, tol: number): void {
  const err = maxAbsDiff(got, want) / Math.max(1, maxAbs(want));
  expect(err, `${what}: relative error ${err.toExponential(2)} > ${tol}`).toBeLessThanOrEqual(tol);
}

/**
 * Registers the per-op conformance tests: every op of `candidate` against the reference backend on
 * seeded random shapes and values; with `deviceTokens`, argmaxOnDevice and embedOnDevice too, with
 * `deviceSampling` sampleOnDevice, and with `quantizer` quantizeBlocks.
 */
export function registerOpSuite(makeBackend: () => Promise<Backend>, seed: number, deviceTokens = false, deviceSampling = false, quantizer = false): void {
  let cand: Backend;
  const ref = new ReferenceBackend();
  /** Runs the same work on both backends (inside one pass) and returns [candidate, reference]. */
  // `setup` uploads what it needs (outside any pass) and returns the ops to run inside one pass.
  const both = async (setup: (b: Backend) => Promise<() => Tensor> | (() => Tensor)): Promise<[Float32Array, Float32Array]> => {
    const out: Float32Array[] = [];
    for (const b of [cand, ref]) {
      const run = await setup(b);
      b.beginPass(1, 0);
      const t = run();
      b.endPass();
      out.push(await b.read(t));
    }
    return [out[0]!, out[1]!];
  };

  beforeAll(async () => {
    cand = await makeBackend();
  });
  afterAll(async () => {
    await cand?.dispose();
    await ref.dispose();
  });

  describe('embed', () => {
    it('looks up rows of every weight format exactly', async () => {
      const rnd = new TestRandom(seed + 1);
      for (const format of cand.info.formats) {
        // 160 quantized columns: a group of four blocks and one more (backends may store groups differently).
        for (const cols of format === 'q4_k' ? [256, 512, 1280] : format.startsWith('q') ? [64, 96, 160] : [45, 64]) {
          const V = 37;
          const host = hostWeight(format, V, cols, rnd.normals(V * cols, 0.5));
          const ids = Int32Array.from([0, 36, 5, 5, 17, 1, 30]);
          const [got, want] = await both(async (b) => {
            const w = await b.uploadWeight(copyWeight(host), `embed.${format}`);
            return () => {
              const out = tensor(b, ids.length, cols);
              b.embed(w, ids, out);
              return out;
            };
          });
          expectClose(`embed ${format} cols ${cols}`, got, want, OP_TOLERANCE.exact);
        }
      }
    });
  });

  describe('rmsNorm', () => {
    for (const [rows, cols, eps] of [[1, 64, 1e-6], [7, 896, 1e-6], [3, 45, 1e-5], [5, 128, 1e-5]] as const) {
      it(`[${rows}, ${cols}] eps ${eps}, out of place and in place`, async () => {
        const rnd = new TestRandom(seed + 2 + cols);
        const x = rnd.normals(rows * cols, 1.5);
        // A row of tiny values makes the result depend on eps.
        for (let i = 0; i < cols; i++) x[i] = x[i]! * 1e-3;
        const g = rnd.normals(cols, 1);
        for (const inPlace of [false, true]) {
          const [got, want] = await both(async (b) => {
            const w = await b.uploadWeight({ format: 'f32', rows: 1, cols, data: g.slice() }, 'norm');
            return () => {
              const xt = tensor(b, rows, cols, x);
              const out = inPlace ? xt : tensor(b, rows, cols);
              b.rmsNorm(xt, w, eps, out);
              return out;
            };
          });
          expectClose(`rmsNorm inPlace=${inPlace}`, got, want, OP_TOLERANCE.f32);
        }
      });
    }
  });

  describe('matmul', () => {
    // [40, 1024, 72]: a prefill whose few output tiles and long rows make a GPU backend cut K into ranges
    // (the CUDA backend's split-K on a many-SM GPU).
    const shapes: [number, number, number][] = [[1, 64, 17], [5, 96, 50], [33, 160, 31], [1, 896, 128], [2, 4864 / 4, 40], [40, 1024, 72]];
    const oddShapes: [number, number, number][] = [[1, 45, 7], [9, 77, 13]];
    // q4_k rows are whole super-blocks of 256: Qwen2's widths (1536 ... 18944) and one, two, five and 19.
    const superBlockShapes: [number, number, number][] = [[1, 256, 17], [5, 512, 50], [33, 1280, 31], [1, 1536, 128], [2, 4864, 40], [40, 1024, 72], [3, 768, 9]];
    it('x·Wᵀ for every weight format and shape, T = 1 and T > 1', async () => {
      const rnd = new TestRandom(seed + 3);
      for (const format of cand.info.formats) {
        const list = format === 'q4_k' ? superBlockShapes : format.startsWith('q') ? shapes : [...shapes, ...oddShapes];
        for (const [T, K, N] of list) {
          const x = rnd.normals(T * K, 1);
          const host = hostWeight(format, N, K, rnd.normals(N * K, 1 / Math.sqrt(K)));
          const [got, want] = await both(async (b) => {
            const w = await b.uploadWeight(copyWeight(host), `w.${format}`);
            return () => {
              const out = tensor(b, T, N);
              b.matmul(tensor(b, T, K, x), [w], [undefined], [out]);
              return out;
            };
          });
          expectClose(`matmul ${format} [${T},${K}]x[${N},${K}]ᵀ`, got, want, matmulTolerance(format));
        }
      }
    });
    it('fuses several weights with optional biases (q/k/v, gate/up)', async () => {
      const rnd = new TestRandom(seed + 4);
      for (const format of cand.info.formats) {
        const T = 6;
        const K = format === 'q4_k' ? 256 : 128;
        const Ns = [64, 32, 32];
        const x = rnd.normals(T * K, 1);
        const hosts = Ns.map((N) => hostWeight(format, N, K, rnd.normals(N * K, 0.1)));
        const biases = [rnd.normals(64, 0.5), undefined, rnd.normals(32, 0.5)];
        for (let i = 0; i < Ns.length; i++) {
          const [got, want] = await both(async (b) => {
            const ws = await Promise.all(hosts.map((h, j) => b.uploadWeight(copyWeight(h), `w${j}`)));
            const bs = await Promise.all(biases.map((v, j) => (v ? b.uploadWeight({ format: 'f32', rows: 1, cols: v.length, data: v.slice() }, `b${j}`) : undefined)));
            return () => {
              const outs = Ns.map((N) => tensor(b, T, N));
              b.matmul(tensor(b, T, K, x), ws, bs, outs);
              return outs[i]!;
            };
          });
          expectClose(`fused matmul ${format} output ${i}`, got, want, matmulTolerance(format));
        }
      }
    });
  });

  describe('rope', () => {
    for (const headDim of [64, 128]) {
      for (const [startPos, theta] of [[0, 1e6], [7, 1e4], [1000, 1e6], [4000, 1e6]] as const) {
        it(`head_dim ${headDim}, startPos ${startPos}, theta ${theta}`, async () => {
          const rnd = new TestRandom(seed + 5 + headDim + startPos);
          const heads = 3;
          const T = 5;
          const x = rnd.normals(T * heads * headDim, 1);
          const [got, want] = await both((b) => () => {
            const t = tensor(b, T, heads * headDim, x);
            b.rope(t, heads, headDim, startPos, theta);
            return t;
          });
          expectClose('rope', got, want, OP_TOLERANCE.rope);
        });
      }
    }
  });

  describe('attention over the KV cache', () => {
    const cases: { ratio: number; headDim: number; startPos: number; T: number; window?: number; dtype?: KVCacheDtype }[] = [];
    for (const ratio of [1, 2, 4, 7]) {
      for (const headDim of [64, 128]) {
        cases.push({ ratio, headDim, startPos: 0, T: 1 });
        cases.push({ ratio, headDim, startPos: 0, T: 23 });
        cases.push({ ratio, headDim, startPos: 37, T: 1 });
      }
    }
    cases.push({ ratio: 7, headDim: 64, startPos: 13, T: 40 });
    cases.push({ ratio: 2, headDim: 64, startPos: 300, T: 1 });
    cases.push({ ratio: 2, headDim: 128, startPos: 0, T: 130 });
    cases.push({ ratio: 4, headDim: 64, startPos: 0, T: 30, window: 8 });
    cases.push({ ratio: 2, headDim: 64, startPos: 20, T: 5, window: 8 });
    cases.push({ ratio: 1, headDim: 64, startPos: 40, T: 1, window: 16 });
    // A prefill long enough that a GPU backend takes its prefill path on a large GPU (CUDA's estimate
    // picks its tiled kernel for this one on an H100/H200's 132 SMs, and for none of the shorter ones).
    cases.push({ ratio: 7, headDim: 128, startPos: 60, T: 700 });
    // f16 caches: decode, prefill, a long history, a window, and the long prefill again, so that every
    // attention path of a backend reads halves at least once.
    for (const c of [
      { ratio: 1, headDim: 64, startPos: 37, T: 1 }, { ratio: 7, headDim: 64, startPos: 0, T: 23 },
      { ratio: 4, headDim: 128, startPos: 37, T: 1 }, { ratio: 7, headDim: 64, startPos: 13, T: 40 },
      { ratio: 2, headDim: 64, startPos: 300, T: 1 }, { ratio: 2, headDim: 128, startPos: 0, T: 130 },
      { ratio: 2, headDim: 64, startPos: 20, T: 5, window: 8 }, { ratio: 7, headDim: 128, startPos: 60, T: 700 },
    ]) cases.push({ ...c, dtype: 'f16' });
    // The reference's float64 attention over 700 tokens takes seconds alone on a loaded CI machine (it
    // once ran past vitest's 5 s default next to the WASM backend): a minute for the long case.
    const timeout = (c: { T: number }): number | undefined => (c.T > 200 ? 60_000 : undefined);
    for (const c of cases) {
      it(`GQA ${c.ratio}, head_dim ${c.headDim}, startPos ${c.startPos}, T ${c.T}${c.window ? `, window ${c.window}` : ''}${c.dtype ? `, ${c.dtype} cache` : ''}`, async () => {
        const rnd = new TestRandom(seed + 6 + c.ratio * 1000 + c.headDim + c.startPos + c.T);
        const kvHeads = 2;
        const heads = kvHeads * c.ratio;
        const width = kvHeads * c.headDim;
        const total = c.startPos + c.T;
        const kPrefix = rnd.normals(Math.max(1, c.startPos) * width, 1);
        const vPrefix = rnd.normals(Math.max(1, c.startPos) * width, 1);
        const k = rnd.normals(c.T * width, 1);
        const v = rnd.normals(c.T * width, 1);
        const q = rnd.normals(c.T * heads * c.headDim, 1);
        const spec = { heads, kvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), ...(c.window ? { slidingWindow: c.window } : {}) };
        const [got, want] = await both((b) => () => {
          const cache = b.createKVCache({ layers: 2, kvHeads, headDim: c.headDim, maxTokens: total + 3, ...(c.dtype ? { dtype: c.dtype } : {}) });
          if (c.startPos > 0) b.writeKV(cache, 1, tensor(b, c.startPos, width, kPrefix), tensor(b, c.startPos, width, vPrefix), 0);
          b.writeKV(cache, 1, tensor(b, c.T, width, k), tensor(b, c.T, width, v), c.startPos);
          const out = tensor(b, c.T, heads * c.headDim);
          b.attention(tensor(b, c.T, heads * c.headDim, q), cache, 1, c.startPos, spec, out);
          return out;
        });
        expectClose('attention', got, want, OP_TOLERANCE.f32);
      }, timeout(c));
    }
    for (const dtype of ['f32', 'f16'] as const) it(`keeps layers apart and reads what writeKV stored in earlier passes (${dtype} cache)`, async () => {
      const rnd = new TestRandom(seed + 7);
      const kvHeads = 2, headDim = 64, heads = 4, width = kvHeads * headDim;
      const steps = [4, 1, 1, 3].map((T) => ({ T, k: rnd.normals(T * width), v: rnd.normals(T * width), q: rnd.normals(T * heads * headDim) }));
      const other = rnd.normals(10 * width, 5);
      const results: Float32Array[][] = [];
      for (const b of [cand, ref]) {
        const cache = b.createKVCache({ layers: 3, kvHeads, headDim, maxTokens: 16, dtype });
        b.beginPass(10, 0);
        b.writeKV(cache, 2, tensor(b, 10, width, other), tensor(b, 10, width, other), 0);
        b.endPass();
        let pos = 0;
        const outs: Float32Array[] = [];
        for (const s of steps) {
          b.beginPass(s.T, pos);
          b.writeKV(cache, 0, tensor(b, s.T, width, s.k), tensor(b, s.T, width, s.v), pos);
          const out = tensor(b, s.T, heads * headDim);
          b.attention(tensor(b, s.T, heads * headDim, s.q), cache, 0, pos, { heads, kvHeads, headDim, scale: 0.125 }, out);
          b.endPass();
          outs.push(await b.read(out));
          pos += s.T;
        }
        results.push(outs);
      }
      results[0]!.forEach((got, i) => expectClose(`attention step ${i}`, got, results[1]![i]!, OP_TOLERANCE.f32));
    });
    it('an f16 cache stores each value as roundToF16KV rounds it, and takes half the bytes', async () => {
      // One key per query: the softmax weight is exactly 1, so attention returns the stored values.
      const headDim = 64;
      const special = [0.1, -0.1, 1 / 3, 65504, 65519, 65520, 70000, -1e9, 1e-6, -3e-8, 2.9e-8, 6.1e-5, 0, -0, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN];
      const rnd = new TestRandom(seed + 8);
      const v = rnd.normals(headDim, 100);
      v.set(special);
      const want = Float32Array.from(v, roundToF16KV);
      const q = rnd.normals(headDim);
      const k = rnd.normals(headDim);
      const cache = cand.createKVCache({ layers: 1, kvHeads: 1, headDim, maxTokens: 2, dtype: 'f16' });
      const wide = cand.createKVCache({ layers: 1, kvHeads: 1, headDim, maxTokens: 2 });
      expect(cache.bytes * 2).toBe(wide.bytes);
      cand.beginPass(1, 0);
      cand.writeKV(cache, 0, tensor(cand, 1, headDim, k), tensor(cand, 1, headDim, v), 0);
      const out = tensor(cand, 1, headDim);
      cand.attention(tensor(cand, 1, headDim, q), cache, 0, 0, { heads: 1, kvHeads: 1, headDim, scale: 0.125 }, out);
      cand.endPass();
      const got = await cand.read(out);
      cand.free(cache);
      cand.free(wide);
      for (let i = 0; i < headDim; i++) {
        const [g, w] = [got[i]!, want[i]!];
        const ok = Number.isNaN(w) ? Number.isNaN(g) : g === w || Math.abs(g - w) <= 1e-6 * Math.abs(w);
        expect(ok, `value ${v[i]} stored as ${g}, want ${w}`).toBe(true);
      }
    });
    it('refuses an unknown cache dtype', () => {
      expect(() => cand.createKVCache({ layers: 1, kvHeads: 1, headDim: 64, maxTokens: 2, dtype: 'bf16' as KVCacheDtype })).toThrow(/dtype must be 'f32' or 'f16'/);
    });
  });

  describe('element-wise ops', () => {
    it('swiglu, out of place and in place, large magnitudes included', async () => {
      const rnd = new TestRandom(seed + 8);
      const rows = 3, cols = 4864 / 16;
      const g = rnd.normals(rows * cols, 3);
      g[0] = 90; g[1] = -90; g[2] = 0;
      const u = rnd.normals(rows * cols, 1);
      for (const inPlace of [false, true]) {
        const [got, want] = await both((b) => () => {
          const gt = tensor(b, rows, cols, g);
          const out = inPlace ? gt : tensor(b, rows, cols);
          b.swiglu(gt, tensor(b, rows, cols, u), out);
          return out;
        });
        expectClose(`swiglu inPlace=${inPlace}`, got, want, OP_TOLERANCE.f32);
      }
    });
    it('add into a, into b and into a third tensor', async () => {
      const rnd = new TestRandom(seed + 9);
      const a = rnd.normals(5 * 33), c = rnd.normals(5 * 33);
      for (const into of ['a', 'b', 'new'] as const) {
        const [got, want] = await both((b) => () => {
          const at = tensor(b, 5, 33, a), bt = tensor(b, 5, 33, c);
          const out = into === 'a' ? at : into === 'b' ? bt : tensor(b, 5, 33);
          b.add(at, bt, out);
          return out;
        });
        expectClose(`add into ${into}`, got, want, OP_TOLERANCE.exact);
      }
    });
    it('views share storage; copy selects rows; write and read round-trip exactly', async () => {
      const rnd = new TestRandom(seed + 10);
      const x = rnd.normals(6 * 20);
      const row = rnd.normals(2 * 20);
      const [got, want] = await both((b) => () => {
        const t = tensor(b, 6, 20, x);
        b.write(b.view(t, 3, 2), row); // writes rows 3..4 of t
        const v = b.view(b.view(t, 1, 5), 2, 3); // rows 3..5 of t
        const dst = tensor(b, 3, 20);
        b.copy(v, dst);
        const last = tensor(b, 1, 20);
        b.copy(b.view(t, 5, 1), last);
        b.add(dst, dst, dst);
        b.copy(last, b.view(dst, 0, 1));
        return dst;
      });
      expect(Array.from(got)).toEqual(Array.from(want));
      const expected = new Float32Array(60);
      expected.set(x.subarray(100, 120), 0);
      for (let i = 20; i < 40; i++) expected[i] = row[i]! * 2;
      for (let i = 40; i < 60; i++) expected[i] = x[60 + i]! * 2;
      expect(Array.from(got)).toEqual(Array.from(expected));
    });
  });

  describe('ops on views at a row offset', () => {
    it('matmul, rmsNorm, rope, add, swiglu, embed, writeKV and attention touch only their rows', async () => {
      const rnd = new TestRandom(seed + 13);
      const K = 64, N = 32, rows = 7;
      const x = rnd.normals(rows * K);
      const host = hostWeight('f32', N, K, rnd.normals(N * K, 0.2));
      const g = rnd.normals(K);
      const table = hostWeight(cand.info.formats.includes('bf16') ? 'bf16' : 'f32', 11, K, rnd.normals(11 * K));
      const kv = rnd.normals(4 * K);
      const results: Float32Array[][] = [];
      for (const b of [cand, ref]) {
        const w = await b.uploadWeight(copyWeight(host), 'w');
        const gw = await b.uploadWeight({ format: 'f32', rows: 1, cols: K, data: g.slice() }, 'g');
        const tw = await b.uploadWeight(copyWeight(table), 'table');
        const xt = tensor(b, rows, K, x);
        const out = tensor(b, rows, N, new Float32Array(rows * N).fill(7));
        const kvt = tensor(b, 4, K, kv);
        const att = tensor(b, 3, K, new Float32Array(3 * K).fill(-1));
        const cache = b.createKVCache({ layers: 1, kvHeads: 1, headDim: K, maxTokens: 4 });
        b.beginPass(2, 0);
        b.matmul(b.view(xt, 2, 3), [w], [undefined], [b.view(out, 4, 3)]);
        b.rmsNorm(b.view(xt, 1, 2), gw, 1e-6, b.view(xt, 5, 2));
        b.rope(b.view(xt, 3, 2), 1, K, 9, 1e4);
        b.add(b.view(xt, 0, 1), b.view(xt, 6, 1), b.view(xt, 6, 1));
        b.swiglu(b.view(out, 0, 2), b.view(out, 5, 2), b.view(out, 1, 2));
        b.writeKV(cache, 0, b.view(kvt, 1, 2), b.view(kvt, 2, 2), 0);
        b.attention(b.view(xt, 4, 2), cache, 0, 0, { heads: 1, kvHeads: 1, headDim: K, scale: 0.125 }, b.view(att, 1, 2));
        b.embed(tw, Int32Array.from([10, 3]), b.view(xt, 0, 2));
        b.endPass();
        results.push([await b.read(xt), await b.read(out), await b.read(att)]);
      }
      ['x', 'out', 'attention'].forEach((what, i) => expectClose(`views: ${what}`, results[0]![i]!, results[1]![i]!, OP_TOLERANCE.f32));
    });
  });

  describe('argmax and sample', () => {
    it('argmax per row, first index on ties', async () => {
      const rnd = new TestRandom(seed + 11);
      const V = 1003;
      const l = rnd.normals(4 * V);
      l[5] = 50; l[900] = 50; // row 0 tie -> 5
      l[V + 1002] = 40;
      for (const b of [cand, ref]) {
        const t = tensor(b, 4, V, l);
        const got = await b.argmax(t);
        expect(got[0]).toBe(5);
        expect(got[1]).toBe(1002);
        const want = await ref.argmax(tensor(ref, 4, V, l));
        expect(Array.from(got)).toEqual(Array.from(want));
      }
    });
    it('argmax over long rows: ties far apart, the last element, NaN', async () => {
      // Long enough for kernels that read several elements per thread per step, with a remainder.
      const rnd = new TestRandom(seed + 13);
      const V = 5003;
      const l = rnd.normals(4 * V);
      l[4500] = 50; l[2100] = 50; l[2101] = 50; // row 0: ties far apart and side by side -> 2100
      l[V + V - 1] = 40; // row 1: the last element
      for (let i = 0; i < V; i += 3) l[2 * V + i] = NaN; // row 2: NaN among values, and as the largest index
      l[2 * V + 3000] = 30;
      l[2 * V + 4998] = NaN;
      l[3 * V + 1] = 60; l[3 * V + 2] = 60; l[3 * V + 257] = 60; // row 3: ties close together -> 1
      const want = await ref.argmax(tensor(ref, 4, V, l));
      expect(Array.from(want)).toEqual([2100, V - 1, 3000, 1]);
      expect(Array.from(await cand.argmax(tensor(cand, 4, V, l)))).toEqual(Array.from(want));
    });
    it('sample follows sampleFromLogits for every kind of parameter', async () => {
      const rnd = new TestRandom(seed + 12);
      const V = 999;
      const l = rnd.normals(V, 2);
      const history = { ids: Int32Array.from([3, 17, 500]), counts: Int32Array.from([1, 4, 2]) };
      const none = { ids: new Int32Array(0), counts: new Int32Array(0) };
      const base: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history: none, uniform: 0 };
      const variants: Partial<SamplingParams>[] = [
        { temperature: 0 }, { temperature: 0, repetitionPenalty: 1.3, history }, {}, { temperature: 0.7 }, { temperature: 1.3, topK: 20 },
        { topP: 0.9 }, { topK: 50, topP: 0.5 }, { minP: 0.1 }, { topK: 1 }, { presencePenalty: 1.5, frequencyPenalty: 0.5, history },
        { temperature: 0.5, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, history },
      ];
      const lc = tensor(cand, 1, V, l);
      const lr = tensor(ref, 1, V, l);
      for (const v of variants) {
        for (let i = 0; i < 8; i++) {
          const params = { ...base, ...v, uniform: rnd.uniform() };
          expect(await cand.sample(lc, params), JSON.stringify({ ...v, history: undefined, uniform: params.uniform })).toBe(await ref.sample(lr, params));
        }
      }
    });
  });

  describe('quantizeBlocks', () => {
    it(quantizer ? 'offers quantizeBlocks' : 'offers no quantizeBlocks', () => {
      expect(typeof cand.quantizeBlocks === 'function').toBe(quantizer);
    });
    if (!quantizer) return;
    // Random values with every kind of edge a checkpoint could hold: ties of a step (q8_0 rounds them
    // away from zero), zeros of both signs, a zero block, subnormals, values beyond f16's range (their
    // scale overflows), infinities and NaN. 5000 blocks so that a threaded quantizer splits them.
    const special = [0, -0, 0.5, -0.5, 1e-40, -1e-40, 1e-8, -1e-8, 65504, -65504, 3e38, -3e38, Infinity, -Infinity, NaN];
    const blocks = 5000;
    // Blocks 400-655 make scales that are exact ties between two f16 values (subnormal and normal), for
    // q8_0 (amax = 127 t) and q4_0 (max = -8 t), so that the scale's rounding to even is checked.
    const values = (rnd: TestRandom): Float32Array => {
      const v = rnd.normals(blocks * 32);
      for (let i = 0; i < 32 * 100; i++) v[i] = ((i % 255) - 127) / 2;
      v.fill(0, 32 * 100, 32 * 101);
      for (let i = 32 * 200; i < 32 * 400; i += 3) v[i] = special[(i / 3) % special.length]!;
      for (let k = 0; k < 64; k++) {
        const ties = [(2 * k + 1) * 2 ** -25, 1 + (2 * k + 1) * 2 ** -11];
        [127 * ties[0]!, 127 * ties[1]!, -8 * ties[0]!, -8 * ties[1]!].forEach((big, i) => {
          const b = 400 + i * 64 + k;
          for (let j = 0; j < 32; j++) v[b * 32 + j] = (big * (j % 7)) / 10;
          v[b * 32 + (k % 32)] = big;
        });
      }
      return v;
    };
    for (const format of ['q8_0', 'q4_0'] as const) {
      it(`${format}: the bits of core's quantizer from f32 and bf16 input, written from block firstBlock on`, () => {
        const rnd = new TestRandom(seed + (format === 'q8_0' ? 41 : 42));
        const v = values(rnd);
        // Slices of 1, 37 and all blocks, each into arrays with room before and after it (a marker that
        // must survive), the way the loader quantizes a large matrix a slice at a time.
        for (const n of [1, 37, blocks]) {
          const first = 3, total = n + 5, perBlock = format === 'q8_0' ? 32 : 16;
          const make = () => ({ scales: new Uint16Array(total).fill(0xabcd), quants: format === 'q8_0' ? new Int8Array(total * 32).fill(-99) : new Uint8Array(total * 16).fill(0xee) });
          const part = v.subarray(0, n * 32);
          // f32 input, and bf16 input (bit patterns) against core's quantizer of the same values widened.
          const bf16 = Uint16Array.from(part, f32ToBf16);
          const widened = decodeToF32(new Uint8Array(bf16.buffer), 'BF16');
          for (const [input, exact, what] of [[part, part, 'f32'], [bf16, widened, 'bf16']] as const) {
            const got = make(), want = make();
            cand.quantizeBlocks!(format, input, got.scales, got.quants, first);
            (format === 'q8_0' ? quantizeBlocksQ8_0 : quantizeBlocksQ4_0)(exact, want.scales, want.quants as Int8Array & Uint8Array, first);
            const nanScale = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
            for (let b = 0; b < total; b++) {
              const g = got.scales[b]!, w = want.scales[b]!;
              if (!(nanScale(g) && nanScale(w))) expect(g, `${what}, ${n} blocks: scale of block ${b}`).toBe(w);
            }
            for (let i = 0; i < total * perBlock; i++) {
              if (got.quants[i] !== want.quants[i]) expect(got.quants[i], `${what}, ${n} blocks: quant byte ${i} (block ${Math.floor(i / perBlock)})`).toBe(want.quants[i]);
            }
          }
        }
      });
    }
  });

  describe('device tokens', () => {
    it(deviceTokens ? 'offers argmaxOnDevice and embedOnDevice' : 'offers neither argmaxOnDevice nor embedOnDevice alone', () => {
      expect(typeof cand.argmaxOnDevice === 'function', 'argmaxOnDevice').toBe(typeof cand.embedOnDevice === 'function');
      if (deviceTokens) expect(typeof cand.argmaxOnDevice).toBe('function');
    });
    if (!deviceTokens) return;
    it('argmaxOnDevice picks what argmax picks, also when the logits are overwritten before the ids are read', async () => {
      const rnd = new TestRandom(seed + 14);
      const V = 1003;
      const first = rnd.normals(3 * V);
      first[V + 7] = 30; first[V + 900] = 30; // a tie: the first index
      const second = rnd.normals(3 * V);
      const want = [await ref.argmax(tensor(ref, 3, V, first)), await ref.argmax(tensor(ref, 3, V, second))];
      const l = tensor(cand, 3, V, first);
      const a = cand.argmaxOnDevice!(l);
      // The next step's logits land in the same tensor before the first ids are read (pipelined decoding).
      cand.write(l, second);
      const b = cand.argmaxOnDevice!(l);
      expect(a.count).toBe(3);
      expect(Array.from(await b.ids())).toEqual(Array.from(want[1]!));
      expect(Array.from(await a.ids())).toEqual(Array.from(want[0]!));
      expect(await a.ids()).toBe(await a.ids());
      const nan = new Float32Array(V).fill(NaN);
      await expect(cand.argmaxOnDevice!(tensor(cand, 1, V, nan)).ids()).rejects.toThrow(RangeError);
    });
    it('embedOnDevice embeds the picked ids of every weight format, in a pass, before they are read', async () => {
      const rnd = new TestRandom(seed + 15);
      const V = 37;
      for (const format of cand.info.formats) {
        const cols = format === 'q4_k' ? 256 : 64;
        const host = hostWeight(format, V, cols, rnd.normals(V * cols, 0.5));
        const logits = rnd.normals(2 * V);
        const ids = await ref.argmax(tensor(ref, 2, V, logits));
        const rw = await ref.uploadWeight(copyWeight(host), 'embed');
        const want = tensor(ref, 2, cols);
        ref.embed(rw, ids, want);
        const w = await cand.uploadWeight(copyWeight(host), 'embed');
        const out = tensor(cand, 2, cols);
        const picked = cand.argmaxOnDevice!(tensor(cand, 2, V, logits));
        cand.beginPass(2, 0);
        cand.embedOnDevice!(w, picked, out);
        cand.endPass();
        expectClose(`embedOnDevice ${format}`, await cand.read(out), await ref.read(want), OP_TOLERANCE.exact);
        expect(Array.from(await picked.ids())).toEqual(Array.from(ids));
        // Ids another backend holds, or older than the latest, cannot be embedded here.
        const foreign = ref.argmaxOnDevice(tensor(ref, 2, V, logits));
        cand.argmaxOnDevice!(tensor(cand, 2, V, logits));
        cand.beginPass(2, 0);
        try {
          expect(() => cand.embedOnDevice!(w, foreign, out)).toThrow(/another backend/);
          expect(() => cand.embedOnDevice!(w, picked, out)).toThrow(/later/);
        } finally {
          cand.endPass();
        }
      }
    });
  });

  describe('sampling on the device', () => {
    it(deviceSampling ? 'offers sampleOnDevice' : 'offers no sampleOnDevice', () => {
      expect(typeof cand.sampleOnDevice === 'function').toBe(deviceSampling);
    });
    if (!deviceSampling) return;
    it('sampleOnDevice draws what sample draws, counting the previous device token in the history', async () => {
      const rnd = new TestRandom(seed + 16);
      const V = 999;
      const history = { ids: Int32Array.from([3, 17, 500]), counts: Int32Array.from([1, 4, 2]) };
      const base: SamplingParams = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history, uniform: 0 };
      const variants: Partial<SamplingParams>[] = [
        { temperature: 0, repetitionPenalty: 1.3 }, {}, { temperature: 0.7, topK: 40, presencePenalty: 1.5, frequencyPenalty: 0.5 },
        { temperature: 0.5, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1 },
      ];
      // A row whose argmax is `id`: the previous token, drawn on the device and not yet read.
      const peakAt = (b: Backend, id: number): Tensor => {
        const row = rnd.normals(V);
        row[id] = 50;
        return tensor(b, 1, V, row);
      };
      for (const v of variants) {
        // The previous token in the history (17), not in it (42), or none.
        for (const prev of [17, 42, -1]) {
          const l = rnd.normals(V, 3);
          // The logits of the previous token's peak dominate, so its penalty changes the draw.
          l[17] = 8; l[42] = 8.5; l[3] = 7;
          const params = { ...base, ...v, uniform: rnd.uniform() };
          const want = await ref.sample(tensor(ref, 1, V, l), { ...params, history: prev >= 0 ? withOccurrence(history, prev) : history });
          const previous = prev >= 0 ? cand.argmaxOnDevice!(peakAt(cand, prev)) : undefined;
          const got = cand.sampleOnDevice!(tensor(cand, 1, V, l), params, previous);
          expect(Array.from(await got.ids()), `${JSON.stringify({ ...v, uniform: params.uniform })} after ${prev}`).toEqual([want]);
        }
      }
      // Greedy with a frequency penalty, where one more occurrence decides: the previous token listed in
      // the history (17, 4 times: 10 - 0.5 * 5 < 7.6) and not listed (42: 10 - 0.5 * 1 < 9.6).
      for (const [prev, top, runnerUp] of [[17, 10, 7.6], [42, 10, 9.6]] as const) {
        const l = new Float32Array(V).fill(-5);
        l[prev] = top;
        l[99] = runnerUp;
        const params = { ...base, temperature: 0, frequencyPenalty: 0.5 };
        expect(await ref.sample(tensor(ref, 1, V, l), { ...params, history: withOccurrence(history, prev) })).toBe(99);
        const got = cand.sampleOnDevice!(tensor(cand, 1, V, l), params, cand.argmaxOnDevice!(peakAt(cand, prev)));
        expect(Array.from(await got.ids()), `frequency penalty after ${prev}`).toEqual([99]);
        expect(Array.from(await cand.sampleOnDevice!(tensor(cand, 1, V, l), params).ids()), `no previous token (${prev})`).toEqual([prev === 17 ? 17 : 42]);
      }
      // Chained as in decoding: each draw's token counted in the next draw.
      const chain = { ...base, temperature: 0, repetitionPenalty: 2, history: { ids: new Int32Array(0), counts: new Int32Array(0) } };
      const flat = new Float32Array(V).fill(1);
      flat[5] = 1.5; flat[6] = 1.4;
      const first = cand.sampleOnDevice!(tensor(cand, 1, V, flat), chain);
      const second = cand.sampleOnDevice!(tensor(cand, 1, V, flat), chain, first);
      // 5 wins first; counted once (penalty 2: 1.5 -> 0.75), 6 wins next.
      expect([...(await first.ids()), ...(await second.ids())]).toEqual([5, 6]);
      // Only the latest device token can be counted; two rows cannot.
      const stale = cand.argmaxOnDevice!(peakAt(cand, 1));
      cand.argmaxOnDevice!(peakAt(cand, 2));
      expect(() => cand.sampleOnDevice!(tensor(cand, 1, V, flat), chain, stale)).toThrow(/later/);
      expect(() => cand.sampleOnDevice!(tensor(cand, 2, V), chain)).toThrow(/one row/);
    });
  });

  describe('memory accounting', () => {
    it('counts weights and KV caches, and frees them', async () => {
      const before = cand.memory();
      const w = await cand.uploadWeight(hostWeight('f32', 64, 64, new Float32Array(64 * 64)), 'm');
      const cache = cand.createKVCache({ layers: 2, kvHeads: 2, headDim: 64, maxTokens: 32 });
      const during = cand.memory();
      expect(during.weights - before.weights).toBeGreaterThanOrEqual(w.bytes);
      expect(w.bytes).toBeGreaterThanOrEqual(64 * 64 * 4);
      expect(during.kvCache - before.kvCache).toBe(cache.bytes);
      expect(cache.bytes).toBeGreaterThanOrEqual(2 * 2 * 2 * 64 * 32 * 2);
      cand.free(w);
      cand.free(cache);
      const after = cand.memory();
      expect(after.weights).toBe(before.weights);
      expect(after.kvCache).toBe(before.kvCache);
    });
  });
}
