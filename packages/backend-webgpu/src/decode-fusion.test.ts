// Record-time fusions around the decode matvec: the RMSNorm before it (q/k/v, gate/up, lm_head after
// the copy of the last row), the SwiGLU after gate/up, and RoPE of q and k with the KV write after
// q/k/v. Each fused sequence must give the reference
// backend's results for every tensor the unfused ops write, in one dispatch, on both reduction paths
// (subgroups and the shared-memory tree) and for rows narrower and wider than a workgroup; sequences
// where a fused dispatch would read memory that another workgroup writes must not fuse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBackend, type Backend, type HostWeight, type KVCache, type KVCacheDtype, type Tensor, type Weight, type WeightFormat } from '@qwen2-ts/core';
import { hostWeight, TestRandom } from '@qwen2-ts/core/testing';
import { WebGPUBackend, webgpuBackend } from './backend.js';
import { primaryGpu } from './test-support/node-gpu.js';
import { put, relErr } from './test-support/compare.js';

const g = await primaryGpu();


/** Dispatches `record` adds inside one pass (0 for the reference backend). */
function dispatchesOf(be: Backend, T: number, record: () => void): number {
  const before = be instanceof WebGPUBackend ? be.recorded.dispatches : 0;
  be.beginPass(T, 0);
  record();
  be.endPass();
  return be instanceof WebGPUBackend ? be.recorded.dispatches - before : 0;
}

const vector = (be: Backend, data: Float32Array, name: string): Promise<Weight> => be.uploadWeight({ format: 'f32', rows: 1, cols: data.length, data }, name);

/** Uploads stacked weights with their biases and a norm weight, as one layer's q/k/v would be. */
async function uploadLayer(be: Backend, hosts: HostWeight[], biases: Float32Array[], gain: Float32Array): Promise<{ ws: Weight[]; bs: Weight[]; gw: Weight }> {
  const ws = await Promise.all(hosts.map((h, i) => be.uploadWeight(h, `w${i}`)));
  const bs = await Promise.all(biases.map((v, i) => vector(be, v, `b${i}`)));
  return { ws, bs, gw: await vector(be, gain, 'g') };
}

describe.skipIf(!g.gpu)(`WebGPU decode fusions on ${g.gpu ? g.adapterName : 'no adapter'}`, () => {
  const gpu = g.gpu!;
  const ref = new ReferenceBackend();
  let withSubgroups: WebGPUBackend;
  let tree: WebGPUBackend;
  beforeAll(async () => {
    withSubgroups = (await webgpuBackend({ gpu })) as WebGPUBackend;
    tree = (await webgpuBackend({ gpu, useSubgroups: false })) as WebGPUBackend;
  });
  afterAll(async () => {
    await withSubgroups?.dispose();
    await tree?.dispose();
    await ref.dispose();
  });

  // K = 96 gives 16 lanes per row (four rows per workgroup); K = 544 gives 64 (subgroup sums when
  // offered) and two steps of loads at once, the second partly past the row; K = 2080 four steps at
  // once, twice for the first 4 lanes, the second time past the row after its first step. K = 90 (not
  // a multiple of 4) reads x and the norm weight one value at a time, the others 4 at a time.
  const cases: [WeightFormat, number][] = [['f16', 96], ['q4_0', 96], ['q8_0', 544], ['bf16', 544], ['f16', 2080], ['f16', 90]];
  const tol = (format: WeightFormat): number => (format.startsWith('q') ? 2e-2 : 1e-4);

  it('normalizes on the fly in the stacked q/k/v matvec and still writes the normalized input', async () => {
    for (const [format, K] of cases) {
      const rnd = new TestRandom(K);
      const Ns = [K, 32, 32];
      const hosts = Ns.map((N) => hostWeight(format, N, K, rnd.normals(N * K, 0.1)));
      const biases = Ns.map((N) => rnd.normals(N, 0.3));
      const gain = rnd.normals(K, 0.5);
      for (const T of [1, 3]) {
        const x = rnd.normals(T * K, 2);
        const results: Float32Array[][] = [];
        for (const be of [ref, withSubgroups, tree] as Backend[]) {
          const { ws, bs, gw } = await uploadLayer(be, hosts, biases, gain);
          const xt = put(be, T, K, x);
          const xn = be.alloc(T, K);
          const outs = Ns.map((N) => be.alloc(T, N));
          const n = dispatchesOf(be, T, () => {
            be.rmsNorm(xt, gw, 1e-6, xn);
            be.matmul(xn, ws, bs, outs);
          });
          if (be !== ref) expect(n, `${format} K=${K} T=${T}`).toBe(1);
          results.push(await Promise.all([xn, ...outs].map((t) => be.read(t))));
        }
        for (const got of results.slice(1)) {
          expect(relErr(got[0]!, results[0]![0]!), `normalized x ${format} T=${T}`).toBeLessThan(1e-5);
          got.slice(1).forEach((o, i) => expect(relErr(o, results[0]![i + 1]!), `${format} K=${K} T=${T} output ${i}`).toBeLessThan(tol(format)));
        }
      }
    }
  });

  it('runs norm, gate/up and SwiGLU as one dispatch, whichever tensor SwiGLU writes', async () => {
    for (const [format, K] of cases) {
      const rnd = new TestRandom(K + 1);
      const N = 80;
      const hosts = [0, 1].map(() => hostWeight(format, N, K, rnd.normals(N * K, 0.1)));
      const gain = rnd.normals(K, 0.5);
      const x = rnd.normals(2 * K, 2);
      // Core writes SwiGLU into gate; the other targets once (each is a pipeline to compile on a CPU driver).
      for (const target of format === 'f16' ? (['gate', 'up', 'own'] as const) : (['gate'] as const)) {
        const results: Float32Array[][] = [];
        for (const be of [ref, withSubgroups, tree] as Backend[]) {
          const ws = await Promise.all(hosts.map((h, i) => be.uploadWeight(h, `w${i}`)));
          const gw = await vector(be, gain, 'g');
          const xt = put(be, 2, K, x);
          const xn = be.alloc(2, K);
          const [gate, up, own] = [be.alloc(2, N), be.alloc(2, N), be.alloc(2, N)];
          const out = target === 'gate' ? gate : target === 'up' ? up : own;
          const n = dispatchesOf(be, 2, () => {
            be.rmsNorm(xt, gw, 1e-6, xn);
            be.matmul(xn, ws, [undefined, undefined], [gate, up]);
            be.swiglu(gate, up, out);
          });
          if (be !== ref) expect(n, `${format} into ${target}`).toBe(1);
          results.push(await Promise.all([xn, gate, up, out].map((t) => be.read(t))));
        }
        for (const got of results.slice(1)) {
          got.forEach((t, i) => expect(relErr(t, results[0]![i]!), `${format} K=${K} into ${target}, tensor ${i}`).toBeLessThan(tol(format)));
        }
      }
    }
  });

  it('keeps an infinite weight infinite: steps past the row end load its last columns but add nothing', async () => {
    // K = 2080 in f16: the first 4 lanes' second round has 3 steps past the row, which load the row's
    // last 8 columns again; an infinity there times x = 0 would be NaN if those steps were not zeroed.
    const K = 2080;
    const values = new Float32Array(2 * K).fill(0.5);
    values[K - 5] = Infinity; // the first half of the last 8 columns (one vec4 of a load) ...
    values[2 * K - 1] = -Infinity; // ... and the second half
    const host = hostWeight('f16', 2, K, values);
    const x = new Float32Array(K).fill(1);
    for (const be of [ref, withSubgroups, tree] as Backend[]) {
      const w = await be.uploadWeight(host, 'w');
      const out = be.alloc(1, 2);
      be.matmul(put(be, 1, K, x), [w], [undefined], [out]);
      expect(Array.from(await be.read(out))).toEqual([Infinity, -Infinity]);
    }
  });

  it('turns copy, in-place norm and lm_head into one dispatch per weight chunk', async () => {
    // The final step of a forward pass: the last row is copied out, normalized in place, projected.
    const chunked = (await webgpuBackend({ gpu, maxBindingSize: 4096 })) as WebGPUBackend;
    try {
      // Rows of up to 4096 bytes (the bindings' size here): not K = 2080 in f16.
      for (const [format, K] of cases.filter(([, K]) => K < 2048)) {
        const rnd = new TestRandom(K + 2);
        const V = 200;
        const host = hostWeight(format, V, K, rnd.normals(V * K, 0.1));
        const gain = rnd.normals(K, 0.5);
        const h = rnd.normals(3 * K, 2);
        const results: Float32Array[][] = [];
        const counts: number[] = [];
        for (const be of [ref, withSubgroups, chunked] as Backend[]) {
          const w = await be.uploadWeight(host, 'lm_head');
          const gw = await vector(be, gain, 'norm');
          const hidden = put(be, 3, K, h);
          const last = be.alloc(1, K);
          const logits = be.alloc(1, V);
          counts.push(dispatchesOf(be, 1, () => {
            be.copy(be.view(hidden, 2, 1), last);
            be.rmsNorm(last, gw, 1e-6, last);
            be.matmul(last, [w], [undefined], [logits]);
          }));
          results.push(await Promise.all([last, logits, hidden].map((t) => be.read(t))));
        }
        const chunks = (await chunked.uploadWeight(host, 'probe') as unknown as { chunks: unknown[] }).chunks.length;
        expect(chunks, format).toBeGreaterThan(1);
        expect(counts.slice(1), format).toEqual([1, chunks]);
        for (const got of results.slice(1)) got.forEach((t, i) => expect(relErr(t, results[0]![i]!), `${format} tensor ${i}`).toBeLessThan(tol(format)));
      }
    } finally {
      await chunked.dispose();
    }
  });

  it('rotates q and k and writes the KV cache in the q/k/v matvec, then attends as the reference does', async () => {
    // heads x headDim: 4 x 16 with K = 96 (16 lanes per row), 2 x 64 with K = 544 (32 lanes: pairs of
    // rows; three steps of loads at once) and K = 1056 (four steps at once, twice for the first 4 lanes).
    // Each rotary pair is one word of an f16 cache, written by the thread that holds both rows' sums.
    const shapes: [WeightFormat, number, number, number, KVCacheDtype][] = [
      ['f16', 96, 4, 16, 'f32'], ['bf16', 544, 2, 64, 'f32'], ['q4_0', 96, 4, 16, 'f32'], ['q4_0', 1056, 2, 64, 'f32'],
      ['f16', 96, 4, 16, 'f16'], ['bf16', 544, 2, 64, 'f16'],
    ];
    for (const [format, K, heads, D, dtype] of shapes) {
      const kvHeads = heads / 2;
      const rnd = new TestRandom(K + D);
      const Ns = [heads * D, kvHeads * D, kvHeads * D];
      const hosts = Ns.map((N) => hostWeight(format, N, K, rnd.normals(N * K, 0.1)));
      const biases = Ns.map((N) => rnd.normals(N, 0.3));
      const gain = rnd.normals(K, 0.5);
      const spec = { heads, kvHeads, headDim: D, scale: 1 / Math.sqrt(D) };
      for (const T of [1, 3]) {
        const startPos = 5;
        const prefix = [rnd.normals(startPos * kvHeads * D), rnd.normals(startPos * kvHeads * D)];
        const x = rnd.normals(T * K, 2);
        const results: Float32Array[][] = [];
        for (const be of [ref, withSubgroups, tree] as Backend[]) {
          const { ws, bs, gw } = await uploadLayer(be, hosts, biases, gain);
          const cache: KVCache = be.createKVCache({ layers: 2, kvHeads, headDim: D, maxTokens: 16, dtype });
          be.beginPass(startPos, 0);
          be.writeKV(cache, 1, put(be, startPos, kvHeads * D, prefix[0]!), put(be, startPos, kvHeads * D, prefix[1]!), 0);
          be.endPass();
          const xt = put(be, T, K, x);
          const xn = be.alloc(T, K);
          const [q, k, v, out] = [be.alloc(T, Ns[0]!), be.alloc(T, Ns[1]!), be.alloc(T, Ns[2]!), be.alloc(T, Ns[0]!)];
          const n = dispatchesOf(be, T, () => {
            be.rmsNorm(xt, gw, 1e-6, xn);
            be.matmul(xn, ws, bs, [q, k, v]);
            be.rope(q, heads, D, startPos, 1e6);
            be.rope(k, kvHeads, D, startPos, 1e6);
            be.writeKV(cache, 1, k, v, startPos);
          });
          if (be !== ref) expect(n, `${format} ${dtype} cache T=${T}`).toBe(1);
          be.beginPass(T, startPos);
          be.attention(q, cache, 1, startPos, spec, out);
          be.endPass();
          results.push(await Promise.all([xn, q, k, v, out].map((t) => be.read(t))));
        }
        for (const got of results.slice(1)) {
          got.forEach((t, i) => expect(relErr(t, results[0]![i]!), `${format} K=${K} T=${T} ${dtype} cache, tensor ${i}`).toBeLessThan(tol(format)));
        }
      }
    }
  });

  it('records the q/k/v matvec and its RoPEs apart when no KV write follows', async () => {
    const K = 96, D = 16, heads = 4, kvHeads = 2;
    const rnd = new TestRandom(99);
    const Ns = [heads * D, kvHeads * D, kvHeads * D];
    const hosts = Ns.map((N) => hostWeight('f32', N, K, rnd.normals(N * K, 0.1)));
    const x = rnd.normals(K, 2);
    // After q's RoPE only (then an add), and after both RoPEs (then a KV write of other tensors).
    for (const stop of ['q', 'k'] as const) {
      const results: Float32Array[][] = [];
      for (const be of [ref, withSubgroups] as Backend[]) {
        const ws = await Promise.all(hosts.map((h, i) => be.uploadWeight(h, `w${i}`)));
        const cache = be.createKVCache({ layers: 1, kvHeads, headDim: D, maxTokens: 4 });
        const xt = put(be, 1, K, x);
        const [q, k, v, k2, v2] = [be.alloc(1, Ns[0]!), be.alloc(1, Ns[1]!), be.alloc(1, Ns[2]!), be.alloc(1, Ns[1]!), be.alloc(1, Ns[2]!)];
        const n = dispatchesOf(be, 1, () => {
          be.matmul(xt, ws, [undefined, undefined, undefined], [q, k, v]);
          be.rope(q, heads, D, 2, 1e6);
          if (stop === 'q') {
            be.add(v, v, v2);
            return;
          }
          be.rope(k, kvHeads, D, 2, 1e6);
          be.copy(k, k2);
          be.writeKV(cache, 0, k2, v, 2);
        });
        // matvec, RoPE of q (or of q and k), then the add (or the copy and the KV write).
        if (be !== ref) expect(n, stop).toBe(stop === 'q' ? 3 : 4);
        const att = be.alloc(1, Ns[0]!);
        if (stop === 'k') {
          be.beginPass(1, 2);
          be.attention(q, cache, 0, 2, { heads, kvHeads, headDim: D, scale: 0.25 }, att);
          be.endPass();
        }
        results.push(await Promise.all([q, k, v, v2, k2, att].map((t) => be.read(t))));
      }
      results[1]!.forEach((t, i) => expect(relErr(t, results[0]![i]!), `${stop}, tensor ${i}`).toBeLessThan(1e-5));
    }
  });

  it('fuses less where the device binds fewer storage buffers, with the same results', async () => {
    // 16: everything; 14: RoPE and KV write without the norm; 12: the norm and q/k/v without RoPE;
    // 8 (WebGPU's default): one matvec per weight.
    const expected: [number, number][] = [[16, 1], [14, 2], [12, 2], [8, 5]];
    const K = 96, D = 16, heads = 4, kvHeads = 2, startPos = 3;
    const rnd = new TestRandom(314);
    const Ns = [heads * D, kvHeads * D, kvHeads * D];
    const hosts = Ns.map((N) => hostWeight('q8_0', N, K, rnd.normals(N * K, 0.1)));
    const biases = Ns.map((N) => rnd.normals(N, 0.3));
    const gain = rnd.normals(K, 0.5);
    const x = rnd.normals(2 * K, 2);
    const run = async (be: Backend): Promise<{ n: number; out: Float32Array[] }> => {
      const { ws, bs, gw } = await uploadLayer(be, hosts, biases, gain);
      const cache = be.createKVCache({ layers: 1, kvHeads, headDim: D, maxTokens: 8 });
      const xt = put(be, 2, K, x);
      const [xn, q, k, v, att] = [be.alloc(2, K), be.alloc(2, Ns[0]!), be.alloc(2, Ns[1]!), be.alloc(2, Ns[2]!), be.alloc(2, Ns[0]!)];
      const n = dispatchesOf(be, 2, () => {
        be.rmsNorm(xt, gw, 1e-6, xn);
        be.matmul(xn, ws, bs, [q, k, v]);
        be.rope(q, heads, D, startPos, 1e6);
        be.rope(k, kvHeads, D, startPos, 1e6);
        be.writeKV(cache, 0, k, v, startPos);
      });
      be.beginPass(2, startPos);
      be.attention(q, cache, 0, startPos, { heads, kvHeads, headDim: D, scale: 0.25 }, att);
      be.endPass();
      return { n, out: await Promise.all([xn, q, k, v, att].map((t) => be.read(t))) };
    };
    const want = await run(ref);
    for (const [limit, dispatches] of expected) {
      const be = (await webgpuBackend({ gpu, maxStorageBuffers: limit })) as WebGPUBackend;
      try {
        const got = await run(be);
        expect(got.n, `limit ${limit}`).toBe(dispatches);
        got.out.forEach((t, i) => expect(relErr(t, want.out[i]!), `limit ${limit}, tensor ${i}`).toBeLessThan(2e-2));
      } finally {
        await be.dispose();
      }
    }
  });

  it('does not fuse where a workgroup would read what another one writes', async () => {
    const K = 64;
    const rnd = new TestRandom(77);
    const host = hostWeight('f32', K, K, rnd.normals(K * K, 0.1));
    const gain = rnd.normals(K, 0.5);
    const x = rnd.normals(K, 2);
    // Each scenario: its ops, and the dispatches it may take on the WebGPU backend.
    const scenarios: [string, number, (be: Backend, t: { x: Tensor; xn: Tensor; y: Tensor; z: Tensor; w: Weight; w2: Weight; g: Weight }) => void][] = [
      // In place without a copy before it: workgroup 0 would overwrite the input the others read.
      ['in-place norm', 2, (be, t) => {
        be.rmsNorm(t.x, t.g, 1e-6, t.x);
        be.matmul(t.x, [t.w], [undefined], [t.y]);
      }],
      // The matvec writes over the norm's input.
      ['matvec over the norm input', 2, (be, t) => {
        be.rmsNorm(t.x, t.g, 1e-6, t.xn);
        be.matmul(t.xn, [t.w], [undefined], [t.x]);
      }],
      // SwiGLU into the normalized input, which workgroup 0 writes.
      ['SwiGLU over the normalized input', 2, (be, t) => {
        be.rmsNorm(t.x, t.g, 1e-6, t.xn);
        be.matmul(t.xn, [t.w, t.w2], [undefined, undefined], [t.y, t.z]);
        be.swiglu(t.y, t.z, t.xn);
      }],
      // Something else reads the norm's output first: the norm runs on its own.
      ['norm read by an add', 3, (be, t) => {
        be.rmsNorm(t.x, t.g, 1e-6, t.xn);
        be.add(t.xn, t.xn, t.y);
        be.matmul(t.xn, [t.w], [undefined], [t.x]);
      }],
      // Gate/up not followed by SwiGLU: the held-back stack is recorded as it is.
      ['gate/up then add', 2, (be, t) => {
        be.matmul(t.x, [t.w, t.w2], [undefined, undefined], [t.y, t.xn]);
        be.add(t.y, t.xn, t.y);
      }],
    ];
    for (const [name, expected, ops] of scenarios) {
      const results: Float32Array[][] = [];
      for (const be of [ref, withSubgroups] as Backend[]) {
        const t = { x: put(be, 1, K, x), xn: be.alloc(1, K), y: be.alloc(1, K), z: be.alloc(1, K), w: await be.uploadWeight(host, 'w'), w2: await be.uploadWeight(host, 'w2'), g: await vector(be, gain, 'g') };
        const n = dispatchesOf(be, 1, () => ops(be, t));
        if (be !== ref) expect(n, name).toBe(expected);
        results.push(await Promise.all([t.x, t.xn, t.y, t.z].map((v) => be.read(v))));
      }
      results[1]!.forEach((t, i) => expect(relErr(t, results[0]![i]!), `${name}, tensor ${i}`).toBeLessThan(1e-5));
    }
  });
});
