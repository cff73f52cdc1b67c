// Behaviour of the WebGPU backend beyond the conformance suite: weights split across bindings, long
// contexts split along the sequence, one submission per pass, clear errors for small limits, device
// loss and disposal. Results are compared with core's reference backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUsageError, ReferenceBackend, type Backend, type WeightFormat } from '@qwen2-ts/core';
import { hostWeight, TestRandom } from '@qwen2-ts/core/testing';
import { WebGPUBackend, webgpuBackend } from './backend.js';
import { WebGPUDeviceError, WebGPUDeviceLostError } from './errors.js';
import { primaryGpu } from './test-support/node-gpu.js';
import { put, relErr } from './test-support/compare.js';

const g = await primaryGpu();
const FORMATS: WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];


describe('device limits', () => {
  it('names the limit an adapter lacks', async () => {
    const limits = { maxStorageBuffersPerShaderStage: 4, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBufferBindingSize: 1 << 30 };
    const gpu = { requestAdapter: async () => ({ limits, features: new Set() }) } as unknown as GPU;
    const err = await webgpuBackend({ gpu }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebGPUDeviceError);
    expect((err as WebGPUDeviceError).limit).toBe('maxStorageBuffersPerShaderStage');
    expect((err as Error).message).toMatch(/maxStorageBuffersPerShaderStage is 4.*at least 6/);
  });
  it('explains a missing adapter', async () => {
    const gpu = { requestAdapter: async () => null } as unknown as GPU;
    await expect(webgpuBackend({ gpu })).rejects.toThrow(/no adapter/);
  });
});

describe.skipIf(!g.gpu)(`WebGPU backend on ${g.gpu ? g.adapterName : 'no adapter'}`, () => {
  const gpu = g.gpu!;
  let b: WebGPUBackend;
  const ref = new ReferenceBackend();
  beforeAll(async () => {
    // 4 KiB per weight binding: every weight below is split across several buffers.
    b = (await webgpuBackend({ gpu, maxBindingSize: 4096 })) as WebGPUBackend;
  });
  afterAll(async () => {
    await b?.dispose();
    await ref.dispose();
  });

  it('splits weights larger than a binding across buffers: embed and matmul (matvec and GEMM) agree with the reference', async () => {
    const rnd = new TestRandom(7);
    for (const format of FORMATS) {
      const [N, K] = [150, 96];
      const host = hostWeight(format, N, K, rnd.normals(N * K, 0.3));
      const bias = rnd.normals(N, 0.5);
      const [w, wr] = [await b.uploadWeight(host, 'w'), await ref.uploadWeight(host, 'w')];
      const [bb, br] = [await b.uploadWeight({ format: 'f32', rows: 1, cols: N, data: bias }, 'b'), await ref.uploadWeight({ format: 'f32', rows: 1, cols: N, data: bias }, 'b')];
      expect((w as unknown as { chunks: unknown[] }).chunks.length, format).toBeGreaterThan(1);
      for (const T of [1, 3, 9]) {
        const x = rnd.normals(T * K);
        const [o, or] = [b.alloc(T, N), ref.alloc(T, N)];
        b.matmul(put(b, T, K, x), [w], [bb], [o]);
        ref.matmul(put(ref, T, K, x), [wr], [br], [or]);
        const err = relErr(await b.read(o), await ref.read(or));
        expect(err, `${format} T=${T}`).toBeLessThan(format.startsWith('q') ? 2e-2 : 1e-4);
      }
      const ids = Int32Array.from([0, 149, 84, 85, 13, 86, 1]);
      const [e, er] = [b.alloc(ids.length, K), ref.alloc(ids.length, K)];
      b.embed(w, ids, e);
      ref.embed(wr, ids, er);
      expect(Array.from(await b.read(e)), `embed ${format}`).toEqual(Array.from(await ref.read(er)));
      b.free(w);
    }
  });

  it('fuses q/k/v-like weights with biases into one decode dispatch, for every format', async () => {
    const fused = (await webgpuBackend({ gpu })) as WebGPUBackend;
    const rnd = new TestRandom(11);
    const K = 128;
    const Ns = [64, 32, 32];
    for (const format of FORMATS) {
      const hosts = Ns.map((N) => hostWeight(format, N, K, rnd.normals(N * K, 0.1)));
      const biases = [rnd.normals(64, 0.5), undefined, rnd.normals(32, 0.5)];
      for (const T of [1, 3]) {
        const x = rnd.normals(T * K);
        const results: Float32Array[][] = [];
        for (const be of [fused, ref] as Backend[]) {
          const ws = await Promise.all(hosts.map((h, j) => be.uploadWeight(h, `w${j}`)));
          const bs = await Promise.all(biases.map((v, j) => (v ? be.uploadWeight({ format: 'f32', rows: 1, cols: v.length, data: v }, `b${j}`) : undefined)));
          const outs = Ns.map((N) => be.alloc(T, N));
          be.matmul(put(be, T, K, x), ws, bs, outs);
          results.push(await Promise.all(outs.map((o) => be.read(o))));
        }
        results[0]!.forEach((got, i) => expect(relErr(got, results[1]![i]!), `${format} T=${T} output ${i}`).toBeLessThan(format.startsWith('q') ? 2e-2 : 1e-4));
      }
    }
    const keys = [...(fused as unknown as { defs: Map<string, unknown> }).defs.keys()];
    expect(keys.some((k) => k.startsWith('mvs:'))).toBe(true);
    await fused.dispose();
  });

  it('attends over long contexts split along the sequence (full and sliding window), from f32 and f16 caches', async () => {
    // head_dims that are multiples of 4 read key and value rows of an f32 cache as vec4: 64 and 128 (4
    // and 2 groups of keys in the value sum), 20 (12 groups, 4 threads idle), 256 (1 group); 6 reads one
    // value at a time. An f16 cache's rows are read 8 halves at a time for multiples of 8 (64, 128, 256:
    // 8, 4 and 2 groups), one word of 2 halves at a time for 20 and 6. Position 40 is one split (the
    // direct kernel), 1500 several and their merge.
    const rnd = new TestRandom(8);
    const kvHeads = 2, heads = 4;
    for (const [headDim, dtype] of [64, 128, 20, 256, 6].flatMap((d) => [[d, 'f32'], [d, 'f16']] as const)) {
      const width = kvHeads * headDim;
      for (const [T, window, startPos] of [[1, 0, 1500], [3, 0, 1500], [2, 700, 1500], [2, 0, 40]] as const) {
        const k = rnd.normals((startPos + T) * width);
        const v = rnd.normals((startPos + T) * width);
        const q = rnd.normals(T * heads * headDim);
        const spec = { heads, kvHeads, headDim, scale: 0.125, ...(window ? { slidingWindow: window } : {}) };
        const outs: Float32Array[] = [];
        for (const be of [b, ref] as Backend[]) {
          const cache = be.createKVCache({ layers: 1, kvHeads, headDim, maxTokens: startPos + T, dtype });
          be.writeKV(cache, 0, put(be, startPos + T, width, k), put(be, startPos + T, width, v), 0);
          const out = be.alloc(T, heads * headDim);
          be.attention(put(be, T, heads * headDim, q), cache, 0, startPos, spec, out);
          outs.push(await be.read(out));
          be.free(cache);
        }
        expect(relErr(outs[0]!, outs[1]!), `head_dim ${headDim} ${dtype} T=${T} window=${window} at ${startPos}`).toBeLessThan(1e-4);
      }
    }
  });

  it('submits one command buffer per generated token (the pass with its argmax) and reads back only what is asked', async () => {
    const rt = (b as unknown as { rt: { submissions: number } }).rt;
    const host = hostWeight('f16', 64, 32, new TestRandom(9).normals(64 * 32, 0.2));
    const w = await b.uploadWeight(host, 'lm');
    const norm = await b.uploadWeight({ format: 'f32', rows: 1, cols: 32, data: new Float32Array(32).fill(1) }, 'n');
    const x = b.alloc(1, 32);
    const logits = b.alloc(1, 64);
    const before = rt.submissions;
    for (let step = 0; step < 3; step++) {
      b.beginPass(1, step);
      b.embed(w, Int32Array.of(step + 5), x);
      b.rmsNorm(x, norm, 1e-6, x);
      b.matmul(x, [w], [undefined], [logits]);
      b.endPass();
      const id = (await b.argmax(logits))[0]!;
      expect(id).toBeGreaterThanOrEqual(0);
    }
    // The pass waits for the argmax after it: one submission per step (its dispatches, the argmax and
    // the 4-byte copy).
    expect(rt.submissions - before).toBe(3);
  });

  it('fuses a residual add into the matvec before it, only where that is safe, with the same results', async () => {
    const ref = new ReferenceBackend();
    const rnd = new TestRandom(21);
    // 47 rows: quantized rows are computed in pairs, the last one alone.
    for (const format of ['f16', 'q4_0', 'q8_0'] as const) {
      const host = hostWeight(format, 47, 32, rnd.normals(47 * 32, 0.2));
      const bias = { format: 'f32' as const, rows: 1, cols: 47, data: rnd.normals(47, 0.1) };
      const xData = rnd.normals(2 * 32), hData = rnd.normals(2 * 47);
      const run = async (be: Backend): Promise<{ y: Float32Array; h: Float32Array; dispatches: number }> => {
        const w = await be.uploadWeight(host, 'w');
        const bv = await be.uploadWeight(bias, 'b');
        const x = put(be, 2, 32, xData);
        const h = put(be, 2, 47, hData);
        const y = be.alloc(2, 47);
        const before = be instanceof WebGPUBackend ? be.recorded.dispatches : 0;
        be.beginPass(2, 0);
        be.matmul(x, [w], [bv], [y]);
        be.add(h, y, h); // h = h + (x . W^T + bias), in place, as after o_proj and down_proj
        be.endPass();
        const dispatches = be instanceof WebGPUBackend ? be.recorded.dispatches - before : 0;
        return { y: await be.read(y), h: await be.read(h), dispatches };
      };
      const want = await run(ref);
      const got = await run(b);
      expect(got.dispatches, format).toBe(1);
      expect(relErr(got.y, want.y), format).toBeLessThan(1e-4);
      expect(relErr(got.h, want.h), format).toBeLessThan(1e-4);
    }
    const host = hostWeight('f16', 48, 32, rnd.normals(48 * 32, 0.2));
    const xData = rnd.normals(2 * 32), hData = rnd.normals(2 * 48);
    // add(a, b, out) with the matvec output as `a` fuses as well.
    const w2 = await b.uploadWeight(host, 'w2');
    const x2 = put(b, 1, 32, xData.subarray(0, 32)), h2 = put(b, 1, 48, hData.subarray(0, 48)), y2 = b.alloc(1, 48);
    /** Dispatches recorded by one pass of matmul(x2) then `add`. */
    const matvecThen = (add: () => void): number => {
      const before = (b as WebGPUBackend).recorded.dispatches;
      b.beginPass(1, 0);
      b.matmul(x2, [w2], [undefined], [y2]);
      add();
      b.endPass();
      return (b as WebGPUBackend).recorded.dispatches - before;
    };
    expect(matvecThen(() => b.add(y2, h2, h2))).toBe(1);
    // An add that does not consume the matvec's output records both.
    const z = b.alloc(1, 48);
    expect(matvecThen(() => b.add(h2, h2, z))).toBe(2);
    const [yv, hv, zv] = [await b.read(y2), await b.read(h2), await b.read(z)];
    expect(Array.from(zv)).toEqual(Array.from(hv, (v) => v + v));
    expect(yv.every(Number.isFinite)).toBe(true);
  });

  it('rotates q and k at the same positions in one dispatch, in one buffer or two', async () => {
    const ref = new ReferenceBackend();
    const rnd = new TestRandom(24);
    const qData = rnd.normals(3 * 4 * 16), kData = rnd.normals(3 * 2 * 16);
    for (const shared of [false, true]) {
      const results: Float32Array[][] = [];
      for (const be of [ref, b] as Backend[]) {
        // shared: q and k are views of one [3, 96] tensor, as a fused q/k output could be.
        const parent = shared ? be.alloc(6, 64) : undefined;
        const q = parent ? be.view(parent, 0, 3) : be.alloc(3, 64);
        const k = parent ? be.view(parent, 3, 3) : be.alloc(3, 64);
        be.write(q, qData);
        be.write(k, Float32Array.from({ length: 3 * 64 }, (_, i) => kData[i % kData.length]!));
        const before = be instanceof WebGPUBackend ? be.recorded.dispatches : 0;
        be.beginPass(3, 5);
        be.rope(q, 4, 16, 5, 1e6);
        be.rope(k, 4, 16, 5, 1e6);
        be.endPass();
        if (be instanceof WebGPUBackend) expect(be.recorded.dispatches - before, `shared ${shared}`).toBe(1);
        results.push([await be.read(q), await be.read(k)]);
      }
      expect(relErr(results[1]![0]!, results[0]![0]!)).toBeLessThan(1e-5);
      expect(relErr(results[1]![1]!, results[0]![1]!)).toBeLessThan(1e-5);
    }
  });

  it('runs RoPE of q and k and the KV write of k and v as one dispatch, attending as the reference does (f32 and f16 caches)', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const rnd = new TestRandom(25);
      const spec = { heads: 4, kvHeads: 2, headDim: 16, scale: 0.25 };
      const T = 3, startPos = 2;
      const qData = rnd.normals(T * 64), kData = rnd.normals(T * 32), vData = rnd.normals(T * 32);
      const prefix = { k: rnd.normals(startPos * 32), v: rnd.normals(startPos * 32) };
      const outs: Float32Array[] = [];
      for (const be of [new ReferenceBackend(), b] as Backend[]) {
        const cache = be.createKVCache({ layers: 1, kvHeads: 2, headDim: 16, maxTokens: 8, dtype });
        // Earlier positions written the plain way, then this step's q/k/v.
        be.beginPass(startPos, 0);
        be.writeKV(cache, 0, put(be, startPos, 32, prefix.k), put(be, startPos, 32, prefix.v), 0);
        be.endPass();
        const q = be.alloc(T, 64), k = be.alloc(T, 32), v = be.alloc(T, 32);
        be.write(q, qData);
        be.write(k, kData);
        be.write(v, vData);
        const out = be.alloc(T, 64);
        const before = be instanceof WebGPUBackend ? be.recorded.dispatches : 0;
        be.beginPass(T, startPos);
        be.rope(q, 4, 16, startPos, 1e6);
        be.rope(k, 2, 16, startPos, 1e6);
        be.writeKV(cache, 0, k, v, startPos);
        if (be instanceof WebGPUBackend) expect(be.recorded.dispatches - before).toBe(1);
        be.attention(q, cache, 0, startPos, spec, out);
        be.endPass();
        outs.push(await be.read(out));
      }
      expect(relErr(outs[1]!, outs[0]!), dtype).toBeLessThan(1e-4);
    }
  });

  it('does not fuse when the add writes over the matvec input', async () => {
    const host = hostWeight('f32', 32, 32, new TestRandom(22).normals(32 * 32, 0.2));
    const w = await b.uploadWeight(host, 'sq');
    const xData = new TestRandom(23).normals(32);
    const x = put(b, 1, 32, xData), y = b.alloc(1, 32);
    const before = (b as WebGPUBackend).recorded.dispatches;
    b.beginPass(1, 0);
    b.matmul(x, [w], [undefined], [y]);
    b.add(x, y, x); // x = x + W.x: out overlaps the matvec's input
    b.endPass();
    expect((b as WebGPUBackend).recorded.dispatches - before).toBe(2);
    const ref = new ReferenceBackend();
    const rw = await ref.uploadWeight(host, 'sq');
    const rx = put(ref, 1, 32, xData), ry = ref.alloc(1, 32);
    ref.beginPass(1, 0);
    ref.matmul(rx, [rw], [undefined], [ry]);
    ref.add(rx, ry, rx);
    ref.endPass();
    expect(relErr(await b.read(x), await ref.read(rx))).toBeLessThan(1e-5);
  });

  it('reports device loss as a catchable error', async () => {
    const lossy = (await webgpuBackend({ gpu })) as WebGPUBackend;
    const t = lossy.alloc(1, 4);
    lossy.write(t, Float32Array.of(1, 2, 3, 4));
    (lossy as unknown as { device: GPUDevice }).device.destroy();
    await new Promise((r) => setTimeout(r, 50));
    await expect(lossy.read(t)).rejects.toBeInstanceOf(WebGPUDeviceLostError);
    expect(() => lossy.alloc(1, 4)).toThrow(WebGPUDeviceLostError);
    await lossy.dispose();
  });

  it('dispose destroys every buffer and makes the backend unusable', async () => {
    const d = (await webgpuBackend({ gpu })) as WebGPUBackend;
    await d.uploadWeight(hostWeight('q4_0', 8, 64, new TestRandom(10).normals(8 * 64)), 'w');
    d.alloc(2, 2);
    d.createKVCache({ layers: 1, kvHeads: 1, headDim: 8, maxTokens: 4 });
    expect(d.memory().weights).toBeGreaterThan(0);
    await d.dispose();
    expect(d.memory()).toEqual({ weights: 0, activations: 0, kvCache: 0 });
    expect(() => d.alloc(1, 1)).toThrow(BackendUsageError);
  });

  it('rejects a tensor larger than one binding with the limit named', async () => {
    const limit = (b as unknown as { maxBinding: number }).maxBinding;
    expect(() => b.alloc(Math.ceil(limit / 4 / 1024) + 1, 1024)).toThrow(/maxStorageBufferBindingSize/);
    // A weight row wider than the bindings this backend was opened with (maxBindingSize 4096).
    await expect(b.uploadWeight({ format: 'f32', rows: 2, cols: 1040, data: new Float32Array(2080) }, 'wide')).rejects.toThrow(
      "weight 'wide': one row of 4160 bytes exceeds the maxBindingSize option of 4096 bytes");
  });
});
