import type { WeightFormat } from '@qwen2-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmBackend, type WasmBackend } from './backend.js';
import { BackendUsageError, roundToF16KV } from '@qwen2-ts/core';
import { maxRelError, randomF32, randomWeight, rng } from './test-helpers.js';

describe('element-wise and attention ops (2 threads)', () => {
  let backend: WasmBackend;
  beforeAll(async () => { backend = await wasmBackend({ threads: 2 }); });
  afterAll(async () => { await backend.dispose(); });

  const upload = (rows: number, cols: number, data: Float32Array) => backend.uploadWeight({ format: 'f32', rows, cols, data }, 'v');
  const tensor = (rows: number, cols: number, data: Float32Array) => {
    const t = backend.alloc(rows, cols);
    backend.write(t, data);
    return t;
  };

  // 160 columns: five 32-value blocks, one group of four that the relaxed build stores interleaved, one
  // not; 51 rows: quantized rows are stored in interleaved sets (q4_0: fours, q8_0: pairs), then rows
  // 48-49 as a pair and row 50 alone.
  it.each<WeightFormat>(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'])('embed dequantizes %s rows exactly', async (format) => {
    const C = 160;
    const { host, values } = randomWeight(format, 51, C, 9);
    const table = await backend.uploadWeight(host, 'embed');
    const ids = new Int32Array([3, 0, 6, 49, 3, 50]);
    const out = backend.alloc(ids.length, C);
    backend.embed(table, ids, out);
    const got = await backend.read(out);
    const want = new Float64Array(ids.length * C);
    ids.forEach((id, t) => want.set(values.subarray(id * C, id * C + C), t * C));
    expect(Array.from(got)).toEqual(Array.from(Float32Array.from(want)));
    expect(() => backend.embed(table, new Int32Array([51]), backend.alloc(1, C))).toThrow(RangeError);
  });

  it.each<WeightFormat>(['f32', 'bf16', 'q8_0', 'q4_0'])('a %s weightBuffer filled in place uploads without a copy, equal to a normal upload', async (format) => {
    const N = 40, K = 160;
    const { host } = randomWeight(format, N, K, 21);
    const before = backend.memory();
    const buf = await backend.weightBuffer(format, N, K, 'w');
    const bytes = backend.memory().weights - before.weights; // counted from the start
    expect(bytes).toBeGreaterThan(0);
    for (const key of ['data', 'quants', 'scales'] as const) if (key in buf) (buf as unknown as Record<string, { set(a: ArrayLike<number>): void }>)[key]!.set((host as unknown as Record<string, ArrayLike<number>>)[key]!);
    const adopted = await backend.uploadWeight(buf, 'w');
    expect(backend.memory().weights - before.weights).toBe(bytes);
    const copied = await backend.uploadWeight(host, 'w2');
    const x = tensor(3, K, Float32Array.from({ length: 3 * K }, (_, i) => Math.sin(i)));
    const o1 = backend.alloc(3, N), o2 = backend.alloc(3, N);
    backend.matmul(x, [adopted], [undefined], [o1]);
    backend.matmul(x, [copied], [undefined], [o2]);
    expect(Array.from(await backend.read(o1))).toEqual(Array.from(await backend.read(o2)));
    const e1 = backend.alloc(2, K), e2 = backend.alloc(2, K);
    backend.embed(adopted, new Int32Array([0, 39]), e1);
    backend.embed(copied, new Int32Array([0, 39]), e2);
    expect(Array.from(await backend.read(e1))).toEqual(Array.from(await backend.read(e2)));
    for (const t of [adopted, copied, x, o1, o2, e1, e2]) backend.free(t);
    // A discarded buffer gives its bytes back; a bad shape is refused by name.
    backend.discardWeightBuffer(await backend.weightBuffer(format, N, K, 'unused'));
    expect(backend.memory().weights).toBe(before.weights);
    await expect(backend.weightBuffer('q4_0', N, 33, 'odd')).rejects.toThrow(/weightBuffer: cannot hold 'odd' as q4_0 \[40, 33\]/);
  });

  it('swiglu (SIMD exp) is within 4e-7 of float64 per element over [-87, 87], and finite beyond', async () => {
    // 10001 values: the vector loop and its 1-value scalar tail.
    const n = 10001;
    const g = Float32Array.from({ length: n }, (_, i) => -87 + (174 * i) / (n - 1));
    const gt = tensor(1, n, g), ut = tensor(1, n, new Float32Array(n).fill(1)), out = backend.alloc(1, n);
    backend.swiglu(gt, ut, out);
    const got = await backend.read(out);
    let worst = 0;
    g.forEach((v, i) => { const want = v / (1 + Math.exp(-v)); worst = Math.max(worst, Math.abs(got[i]! - want) / Math.max(Math.abs(want), 1e-30)); });
    expect(worst).toBeLessThan(4e-7);
    const far = tensor(1, 5, Float32Array.from([-100, -90, 90, 100, 0]));
    backend.swiglu(far, tensor(1, 5, new Float32Array(5).fill(1)), far);
    const [a, b, c, d, e] = await backend.read(far);
    expect([a, b].every((v) => v! <= 0 && v! > -1e-30)).toBe(true);
    expect([c, d]).toEqual([90, 100]);
    expect(e).toBe(0);
  });

  it('rmsNorm, swiglu, add and copy match float64 loops (in place too)', async () => {
    const rows = 3, n = 67;
    const x = randomF32(rows * n, 1, 3), g = randomF32(n, 2), y = randomF32(rows * n, 3, 4);
    const gw = await upload(1, n, g);
    const xt = tensor(rows, n, x);
    backend.rmsNorm(xt, gw, 1e-6, xt);
    const want = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = 0; i < n; i++) ss += x[r * n + i]! ** 2;
      const inv = 1 / Math.sqrt(ss / n + 1e-6);
      for (let i = 0; i < n; i++) want[r * n + i] = x[r * n + i]! * inv * g[i]!;
    }
    expect(maxRelError(await backend.read(xt), want)).toBeLessThan(1e-6);

    const gt = tensor(rows, n, x), ut = tensor(rows, n, y);
    backend.swiglu(gt, ut, gt);
    expect(maxRelError(await backend.read(gt), Array.from(x, (v, i) => (v / (1 + Math.exp(-v))) * y[i]!))).toBeLessThan(1e-6);

    const at = tensor(rows, n, x), bt = tensor(rows, n, y);
    backend.add(at, bt, bt);
    expect(maxRelError(await backend.read(bt), Array.from(x, (v, i) => v + y[i]!))).toBeLessThan(1e-7);

    const last = backend.alloc(1, n);
    backend.copy(backend.view(at, 2, 1), last);
    expect(Array.from(await backend.read(last))).toEqual(Array.from(x.subarray(2 * n)));
  });

  it('rope rotates pairs (i, i + d/2) with angles pos * theta^(-2i/d)', async () => {
    const T = 3, heads = 2, d = 12, start = 5, theta = 10000;
    const x = randomF32(T * heads * d, 4);
    const t = tensor(T, heads * d, x);
    backend.rope(t, heads, d, start, theta);
    const want = Float64Array.from(x);
    for (let r = 0; r < T; r++) {
      for (let i = 0; i < d / 2; i++) {
        const a = (start + r) * theta ** (-(2 * i) / d);
        for (let h = 0; h < heads; h++) {
          const b = r * heads * d + h * d;
          want[b + i] = x[b + i]! * Math.cos(a) - x[b + i + d / 2]! * Math.sin(a);
          want[b + i + d / 2] = x[b + i + d / 2]! * Math.cos(a) + x[b + i]! * Math.sin(a);
        }
      }
    }
    expect(maxRelError(await backend.read(t), want)).toBeLessThan(1e-6);
  });

  // Shapes that reach every path of the kernel: key blocks (64 keys), head pairs and a last odd head,
  // head dims with 16-, 4- and 1-column remainders; 4 threads over one kv head split each group of 7
  // heads into sets of 1 and 2 heads (decode would otherwise leave threads idle).
  const attentionCases = [
    { threads: 2, heads: 4, kvHeads: 2, d: 8, steps: [[0, 5], [5, 1], [6, 3]], window: undefined },
    { threads: 2, heads: 4, kvHeads: 2, d: 8, steps: [[0, 5], [5, 1], [6, 3]], window: 3 },
    { threads: 2, heads: 7, kvHeads: 1, d: 70, steps: [[0, 70], [70, 1], [71, 66]], window: undefined },
    { threads: 4, heads: 14, kvHeads: 2, d: 37, steps: [[0, 9], [9, 1], [10, 1]], window: undefined },
    { threads: 4, heads: 7, kvHeads: 1, d: 64, steps: [[0, 130], [130, 1]], window: 100 },
  ].flatMap((c) => (['f32', 'f16', 'f16 that held a NaN'] as const).map((cache) => ({ ...c, cache })));
  // An f16 cache is read by one of two kernels: the one for finite values, and the one a cache takes
  // for good once an infinity or NaN was stored in it (here in layer 0; the checks read layer 1).
  it.each(attentionCases)('attention (GQA $heads/$kvHeads, head dim $d, $threads threads, window $window, $cache cache) matches a float64 loop', async ({ threads, heads, kvHeads, d, steps, window: slidingWindow, cache: kind }) => {
    const layers = 2, maxTokens = steps.at(-1)![0]! + steps.at(-1)![1]!;
    const own = threads === 2 ? undefined : await wasmBackend({ threads });
    const b = own ?? backend;
    const tensor = (rows: number, cols: number, data: Float32Array) => {
      const t = b.alloc(rows, cols);
      b.write(t, data);
      return t;
    };
    const half = kind !== 'f32';
    const cache = b.createKVCache({ layers, kvHeads, headDim: d, maxTokens, dtype: half ? 'f16' : 'f32' });
    if (kind === 'f16 that held a NaN') {
      const nan = new Float32Array(kvHeads * d).fill(NaN);
      b.writeKV(cache, 0, tensor(1, kvHeads * d, nan), tensor(1, kvHeads * d, nan), 0);
    }
    const spec = { heads, kvHeads, headDim: d, scale: 1 / Math.sqrt(d), slidingWindow };
    const K = new Float32Array(maxTokens * kvHeads * d), V = new Float32Array(maxTokens * kvHeads * d);
    for (const [start, T] of steps as [number, number][]) {
      const q = randomF32(T * heads * d, start + 1, 2), k = randomF32(T * kvHeads * d, start + 2, 2), v = randomF32(T * kvHeads * d, start + 3);
      K.set(half ? k.map(roundToF16KV) : k, start * kvHeads * d);
      V.set(half ? v.map(roundToF16KV) : v, start * kvHeads * d);
      b.writeKV(cache, 1, tensor(T, kvHeads * d, k), tensor(T, kvHeads * d, v), start);
      const out = b.alloc(T, heads * d);
      b.attention(tensor(T, heads * d, q), cache, 1, start, spec, out);
      const want = new Float64Array(T * heads * d);
      for (let t = 0; t < T; t++) {
        const pos = start + t, first = slidingWindow ? Math.max(0, pos - slidingWindow + 1) : 0;
        for (let h = 0; h < heads; h++) {
          const g = Math.floor(h / (heads / kvHeads));
          const s: number[] = [];
          for (let j = first; j <= pos; j++) {
            let dot = 0;
            for (let i = 0; i < d; i++) dot += q[t * heads * d + h * d + i]! * K[j * kvHeads * d + g * d + i]!;
            s.push(dot * spec.scale);
          }
          const m = Math.max(...s), e = s.map((v) => Math.exp(v - m)), sum = e.reduce((a, b) => a + b, 0);
          for (let i = 0; i < d; i++) {
            let acc = 0;
            for (let j = first; j <= pos; j++) acc += e[j - first]! * V[j * kvHeads * d + g * d + i]!;
            want[t * heads * d + h * d + i] = acc / sum;
          }
        }
      }
      expect(maxRelError(await b.read(out), want)).toBeLessThan(1e-5);
    }
    await own?.dispose();
  });

  it('argmax returns the first maximum of each row', async () => {
    const t = tensor(2, 5, new Float32Array([1, 7, 7, -1, 0, -3, -2, -9, -2, -5]));
    expect(Array.from(await backend.argmax(t))).toEqual([1, 1]);
  });

  it('rejects bad shapes, foreign and freed objects with BackendUsageError', async () => {
    const a = backend.alloc(2, 4);
    expect(() => backend.add(a, backend.alloc(2, 5), a)).toThrow(BackendUsageError);
    expect(() => backend.view(a, 1, 2)).toThrow(BackendUsageError);
    await expect(backend.uploadWeight({ format: 'q8_0', rows: 2, cols: 20, scales: new Uint16Array(2), quants: new Int8Array(40) }, 'bad')).rejects.toThrow(/cols % 32/);
    await expect(backend.uploadWeight({ format: 'f32', rows: 2, cols: 3, data: new Float32Array(5) }, 'short')).rejects.toThrow(/5 elements, expected 6/);
    const other = await wasmBackend({ threads: 1 });
    expect(() => other.add(a, a, a)).toThrow(/not a tensor of this wasm backend/);
    await other.dispose();
    backend.free(a);
    expect(() => backend.write(a, new Float32Array(8))).toThrow(/after free/);
    expect(() => backend.endPass()).toThrow(BackendUsageError);
  });
});

describe('weights split across several wasm memories', () => {
  it('places weights in extra memories and computes the same results', async () => {
    // Tiny per-memory budgets force the weights out of memory 0 and over two more memories (the 7B layout in miniature).
    const split = await wasmBackend({ threads: 2, firstMemoryWeightBytes: 0, memoryWeightBytes: 40_000 });
    const single = await wasmBackend({ threads: 1 });
    try {
      const K = 128;
      const r = rng(1);
      // T = 4: matvec-style tiles and int16 activations; T = 20: GEMM panels.
      for (const [format, T] of [['q4_0', 4], ['q8_0', 4], ['q4_0', 20], ['q8_0', 20], ['bf16', 20], ['f32', 4]] as const) {
        const { host } = randomWeight(format, 64, K, Math.floor(r() * 1000));
        const bias = randomF32(64, 5);
        const xData = randomF32(T * K, 6);
        const results = [];
        for (const b of [split, single]) {
          const w = await b.uploadWeight(host, 'w');
          const bw = await b.uploadWeight({ format: 'f32', rows: 1, cols: 64, data: bias }, 'b');
          const x = b.alloc(T, K);
          b.write(x, xData);
          const out = b.alloc(T, 64);
          b.matmul(x, [w], [bw], [out]);
          const emb = b.alloc(2, K);
          b.embed(w, new Int32Array([7, 63]), emb);
          results.push([await b.read(out), await b.read(emb)]);
        }
        expect(results[0]).toEqual(results[1]);
      }
      // 75 KB of weights (never freed here) over memories of 40 KB: memory 0 plus at least two more.
      expect(split.memories).toBeGreaterThanOrEqual(3);
      expect(single.memories).toBe(1);
    } finally {
      await split.dispose();
      await single.dispose();
    }
  });
});
