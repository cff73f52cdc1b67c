import { describe, expect, it } from 'vitest';
import type { AttentionSpec, DeviceTokens, SamplingParams } from '@qwen2-ts/core';
import { attentionKeyCapacity, CudaBackend } from './backend.js';
import { CudaOutOfMemoryError } from './errors.js';
import { fakeAddon } from './fake-addon.js';
import { openCudaBackend } from './open.js';

// Host-side logic of the CUDA backend over a stand-in addon: what reaches the native layer, with which
// pointers and sizes, and how passes turn into CUDA graphs. No kernel runs here (there is no GPU).

function setup() {
  const n = fakeAddon();
  const b = new CudaBackend(n, n.init(0), 0);
  const fns = (): string[] => n.calls.map((c) => c.fn);
  const clear = (): void => {
    n.calls.length = 0;
  };
  return { n, b, fns, clear };
}

const spec: AttentionSpec = { heads: 4, kvHeads: 2, headDim: 8, scale: 1 / Math.sqrt(8) };

describe('CudaBackend memory', () => {
  it('uploads a q4_0 weight as quants then scales into one allocation', async () => {
    const { n, b } = setup();
    const quants = new Uint8Array(3 * 16);
    const scales = new Uint16Array(3);
    const w = await b.uploadWeight({ format: 'q4_0', rows: 3, cols: 32, scales, quants }, 'w');
    expect(w.bytes).toBe(256 + 6);
    const malloc = n.calls.find((c) => c.fn === 'malloc')!;
    expect(malloc.args[1]).toBe(262);
    const uploads = n.calls.filter((c) => c.fn === 'upload');
    expect(uploads.map((u) => [u.args[2], u.args[3]])).toEqual([[0, quants], [256, scales]]);
    expect(uploads[0]!.args[1]).toBe(uploads[1]!.args[1]);
    expect(b.memory()).toEqual({ weights: 262, activations: 0, kvCache: 0 });
  });

  it('rejects a malformed weight before touching the device', async () => {
    const { n, b } = setup();
    await expect(b.uploadWeight({ format: 'bf16', rows: 2, cols: 2, data: new Uint16Array(3) }, 'lm_head')).rejects.toThrow(/lm_head/);
    expect(n.calls).toHaveLength(0);
  });

  it('views address rows of their parent and are freed with it', async () => {
    const { n, b } = setup();
    const t = b.alloc(6, 10);
    const v = b.view(b.view(t, 1, 5), 2, 3);
    b.write(v, new Float32Array(30));
    const up = n.calls.find((c) => c.fn === 'upload')!;
    const base = n.calls.find((c) => c.fn === 'malloc')!;
    expect(up.args[1]).toBe((n.live.keys().next().value as number) + 3 * 10 * 4);
    expect(base.args[1]).toBe(240);
    b.free(v); // a view: nothing happens
    expect(n.live.size).toBe(1);
    b.free(t);
    expect(n.live.size).toBe(0);
    await expect(b.read(v)).rejects.toThrow(/after free/);
    expect(() => b.view(t, 0, 1)).toThrow(/after free/);
    expect(() => b.view(b.alloc(2, 2), 1, 2)).toThrow(/outside a tensor of 2 rows/);
  });

  it('sizes KV caches as f32 keys and values per layer and kv head', () => {
    const { b } = setup();
    const c = b.createKVCache({ layers: 24, kvHeads: 2, headDim: 64, maxTokens: 4096 });
    expect(c.bytes).toBe(2 * 24 * 2 * 64 * 4096 * 4);
    expect(b.memory().kvCache).toBe(c.bytes);
    expect(() => b.createKVCache({ layers: 0, kvHeads: 2, headDim: 64, maxTokens: 1 })).toThrow(/layers must be a positive integer/);
    b.free(c);
    expect(b.memory().kvCache).toBe(0);
  });

  it('sizes f16 KV caches at half the bytes, and refuses an unknown dtype before allocating', () => {
    const { n, b } = setup();
    const wide = b.createKVCache({ layers: 24, kvHeads: 2, headDim: 64, maxTokens: 4096, dtype: 'f32' });
    const c = b.createKVCache({ layers: 24, kvHeads: 2, headDim: 64, maxTokens: 4096, dtype: 'f16' });
    expect(c.bytes * 2).toBe(wide.bytes);
    expect(c.spec.dtype).toBe('f16');
    expect(n.calls.filter((x) => x.fn === 'malloc').map((x) => x.args[1])).toEqual([wide.bytes, c.bytes]);
    expect(b.memory().kvCache).toBe(wide.bytes + c.bytes);
    expect(b.createKVCache({ layers: 1, kvHeads: 1, headDim: 8, maxTokens: 2 }).spec.dtype).toBe('f32');
    n.calls.length = 0;
    expect(() => b.createKVCache({ layers: 1, kvHeads: 1, headDim: 8, maxTokens: 2, dtype: 'bf16' as never })).toThrow(/dtype must be 'f32' or 'f16', got "bf16"/);
    expect(n.calls).toHaveLength(0);
  });

  it("passes an f16 cache's dtype code and its half-size layer addresses to writeKV and attention", () => {
    const { n, b } = setup();
    const cache = b.createKVCache({ layers: 3, kvHeads: 2, headDim: 8, maxTokens: 4, dtype: 'f16' });
    const base = (cache as unknown as { ptr: number }).ptr;
    const kv = b.alloc(1, 16);
    n.calls.length = 0;
    b.writeKV(cache, 2, kv, kv, 1);
    b.attention(b.alloc(1, 32), cache, 2, 1, spec, b.alloc(1, 32));
    const layer = 2 * 4 * 8 * 2;  // bytes of one layer's keys: 2 heads x 4 positions x 8 halves
    const write = n.calls.find((x) => x.fn === 'writeKV')!.args;
    expect([write[1], write[2], write[11]]).toEqual([base + 4 * layer, base + 5 * layer, 1]);
    const attend = n.calls.find((x) => x.fn === 'attention')!.args;
    expect([attend[2], attend[3], attend[16]]).toEqual([base + 4 * layer, base + 5 * layer, 1]);
  });

  it('reports out-of-memory with the requested and free sizes', () => {
    const n = fakeAddon({
      malloc: () => {
        throw Object.assign(new Error('cudaErrorMemoryAllocation: out of device memory allocating 400 bytes (100 bytes free of 1000)'), {
          code: 'cudaErrorMemoryAllocation', cudaError: 2, requestedBytes: 400, freeBytes: 100, totalBytes: 1000,
        });
      },
    });
    const b = new CudaBackend(n, n.init(0), 0);
    let err: unknown;
    try {
      b.alloc(10, 10);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CudaOutOfMemoryError);
    expect(err).toMatchObject({ requestedBytes: 400, freeBytes: 100 });
  });
});

describe('CudaBackend ops', () => {
  it('checks shapes like the reference backend and names the problem', async () => {
    const { b } = setup();
    const x = b.alloc(2, 8);
    const w = await b.uploadWeight({ format: 'f32', rows: 3, cols: 8, data: new Float32Array(24) }, 'q_proj');
    expect(() => b.matmul(x, [w], [undefined], [b.alloc(2, 4)])).toThrow(/matmul out of 'q_proj': expected \[2, 3\], got \[2, 4\]/);
    expect(() => b.matmul(x, [w], [], [b.alloc(2, 3)])).toThrow(/1 weights, 0 biases/);
    expect(() => b.matmul(b.alloc(2, 9), [w], [undefined], [b.alloc(2, 3)])).toThrow(/'q_proj' \[3, 8\] against x \[2, 9\]/);
    expect(() => b.rope(b.alloc(1, 10), 2, 5, 0, 1e6)).toThrow(/even 5/);
    const g = await b.uploadWeight({ format: 'f32', rows: 1, cols: 7, data: new Float32Array(7) }, 'norm');
    expect(() => b.rmsNorm(x, g, 1e-6, x)).toThrow(/norm.*rows of 8/);
    expect(() => b.add(x, b.alloc(1, 8), x)).toThrow(/add b/);
    const table = await b.uploadWeight({ format: 'f32', rows: 4, cols: 8, data: new Float32Array(32) }, 'embed');
    expect(() => b.embed(table, Int32Array.of(1, 4), x)).toThrow(RangeError);
    const c = b.createKVCache({ layers: 2, kvHeads: 2, headDim: 8, maxTokens: 4 });
    expect(() => b.writeKV(c, 0, b.alloc(2, 16), b.alloc(2, 16), 3)).toThrow(/positions 3..4 outside a cache of 4/);
    expect(() => b.writeKV(c, 2, b.alloc(1, 16), b.alloc(1, 16), 0)).toThrow(/layer 2 outside/);
    expect(() => b.attention(b.alloc(1, 32), c, 0, 0, { ...spec, kvHeads: 3 }, b.alloc(1, 32))).toThrow(/not a multiple/);
    expect(() => b.attention(b.alloc(1, 32), c, 0, 0, { ...spec, headDim: 4, heads: 8 }, b.alloc(1, 32))).toThrow(/does not match the cache/);
  });

  it('marshals a fused q/k/v matmul with biases into one native call', async () => {
    const { n, b, clear } = setup();
    const x = b.alloc(1, 64);
    const mk = (rows: number, name: string) => b.uploadWeight({ format: 'bf16', rows, cols: 64, data: new Uint16Array(rows * 64) }, name);
    const [q, k, v] = await Promise.all([mk(32, 'q'), mk(16, 'k'), mk(16, 'v')]);
    const qb = await b.uploadWeight({ format: 'f32', rows: 1, cols: 32, data: new Float32Array(32) }, 'qb');
    const outs = [b.alloc(1, 32), b.alloc(1, 16), b.alloc(1, 16)];
    clear();
    b.matmul(x, [q, k, v], [qb, undefined, undefined], outs);
    const calls = n.calls.filter((c) => c.fn === 'matmul');
    expect(calls).toHaveLength(1);
    const [, xp, tokens, K, params] = calls[0]!.args as [number, number, number, number, Float64Array];
    expect([xp, tokens, K]).toEqual([(x as unknown as { ptr: number }).ptr, 1, 64]);
    expect(params.length).toBe(33);
    // weight q: ptr, no scales, bf16 = 2, 32 x 64; bias: f32 = 0, 1 x 32; then the output pointer.
    expect([...params.subarray(1, 5)]).toEqual([0, 2, 32, 64]);
    expect([...params.subarray(7, 10)]).toEqual([0, 1, 32]);
    expect(params[10]).toBe((outs[0] as unknown as { ptr: number }).ptr);
    expect(params[11 + 7]).toBe(-1); // k has no bias
    expect(calls[0]!.args[5]).toBe(0); // activations split into hi + lo by default
  });

  it('passes the prefill precision to every matmul and attention and rejects unknown ones', async () => {
    const { n, b, clear } = setup();
    const x = b.alloc(12, 64);
    const w = await b.uploadWeight({ format: 'f16', rows: 8, cols: 64, data: new Uint16Array(8 * 64) }, 'w');
    const cache = b.createKVCache({ layers: 1, kvHeads: 2, headDim: 8, maxTokens: 64 });
    const attend = (): void => b.attention(b.alloc(12, 32), cache, 0, 0, spec, b.alloc(12, 32));
    expect(b.prefillPrecision).toBe('f32');
    clear();
    b.matmul(x, [w], [undefined], [b.alloc(12, 8)]);
    attend();
    b.prefillPrecision = '16-bit';
    b.matmul(x, [w], [undefined], [b.alloc(12, 8)]);
    attend();
    expect(n.calls.filter((c) => c.fn === 'matmul').map((c) => c.args[5])).toEqual([0, 1]);
    // attention's last argument lets the native side pick the bf16 tensor-core kernel
    expect(n.calls.filter((c) => c.fn === 'attention').map((c) => c.args[15])).toEqual([0, 1]);
    expect(() => {
      b.prefillPrecision = 'bf16' as never;
    }).toThrow(/prefillPrecision must be 'f32' or '16-bit', got bf16/);
    expect(b.prefillPrecision).toBe('16-bit');
    const opened = openCudaBackend(fakeAddon(), undefined, { prefillPrecision: '16-bit' });
    expect(opened.prefillPrecision).toBe('16-bit');
  });

  it('passes split-K (on by default) with the precision in the matmul GEMM flags and rejects non-booleans', async () => {
    const { n, b, clear } = setup();
    const x = b.alloc(12, 64);
    const w = await b.uploadWeight({ format: 'bf16', rows: 8, cols: 64, data: new Uint16Array(8 * 64) }, 'w');
    expect(b.prefillSplitK).toBe(true);
    clear();
    const flags: number[] = [];
    for (const precision of ['f32', '16-bit'] as const) {
      for (const splitK of [true, false]) {
        b.prefillPrecision = precision;
        b.prefillSplitK = splitK;
        b.matmul(x, [w], [undefined], [b.alloc(12, 8)]);
      }
    }
    flags.push(...n.calls.filter((c) => c.fn === 'matmul').map((c) => c.args[5] as number));
    // 1: x rounded once to 16 bits; 2: one k-range (native GEMM_ROUND_X16, GEMM_ONE_K_RANGE)
    expect(flags).toEqual([0, 2, 1, 3]);
    expect(() => {
      b.prefillSplitK = 'no' as never;
    }).toThrow(/prefillSplitK must be a boolean, got no/);
    expect(b.prefillSplitK).toBe(false);
  });

  it('passes positions relative to the pass start inside a pass, absolute outside', () => {
    const { n, b, clear } = setup();
    const x = b.alloc(1, 16);
    clear();
    b.rope(x, 2, 8, 5, 1e6);
    expect(n.calls[0]!.args.slice(5)).toEqual([0, 5, 1e6]);
    b.beginPass(1, 7);
    b.rope(x, 2, 8, 7, 1e6);
    expect(n.calls).toHaveLength(1); // deferred
    b.endPass();
    expect(n.calls.map((c) => c.fn)).toEqual(['rope', 'setPassPos', 'rope']);
    expect(n.calls[1]!.args[1]).toBe(7);
    expect(n.calls[2]!.args.slice(5)).toEqual([1, 0, 1e6]);
  });

  it('captures a repeated decode pass into a CUDA graph and replays it with new ids and positions', async () => {
    const { n, b, fns, clear } = setup();
    const table = await b.uploadWeight({ format: 'f32', rows: 10, cols: 16, data: new Float32Array(160) }, 'embed');
    const x = b.alloc(1, 16);
    const q = b.alloc(1, 32);
    const o = b.alloc(1, 32);
    const cache = b.createKVCache({ layers: 1, kvHeads: 2, headDim: 8, maxTokens: 64 });
    const step = (pos: number, id: number): void => {
      b.beginPass(1, pos);
      b.embed(table, Int32Array.of(id), x);
      b.rope(q, 4, 8, pos, 1e6);
      b.writeKV(cache, 0, x, x, pos);
      b.attention(q, cache, 0, pos, spec, o);
      b.endPass();
    };
    clear();
    step(0, 3);
    // The first embed allocates the token-id staging buffer.
    expect(fns()).toEqual(['malloc', 'setPassPos', 'upload', 'embed', 'rope', 'writeKV', 'attention']);
    // A single-token pass may be replayed at any later position: attention covers the whole cache.
    expect(n.calls[6]!.args[14]).toBe(64);
    clear();
    step(1, 4);
    expect(fns()).toEqual(['upload', 'setPassPos', 'beginCapture', 'embed', 'rope', 'writeKV', 'attention', 'endCapture', 'launchGraph']);
    clear();
    step(2, 5);
    expect(fns()).toEqual(['upload', 'setPassPos', 'launchGraph']);
    expect(n.calls[0]!.args[3]).toEqual(Int32Array.of(5));
    expect(n.calls[1]!.args[1]).toBe(2);
    expect((b as CudaBackend).passStats).toEqual({ eager: 1, captured: 1, replayed: 1, fused: 0 });
    // Freeing memory a graph may point at drops the graphs.
    clear();
    b.free(b.alloc(1, 1));
    expect(fns()).toContain('destroyGraph');
    clear();
    step(3, 6);
    expect(fns()).toContain('embed');
    // Switching programmatic dependent launch drops the graphs too (their launches keep the old mode),
    // and the next step is captured again.
    step(4, 7);
    expect(fns()).toContain('launchGraph');
    clear();
    (b as CudaBackend).programmaticDependentLaunch = true;
    expect((b as CudaBackend).programmaticDependentLaunch).toBe(true);
    expect(fns()).toEqual(['setProgrammaticLaunch', 'destroyGraph']);
    clear();
    step(5, 8);
    expect(fns()).toEqual(['upload', 'setPassPos', 'beginCapture', 'embed', 'rope', 'writeKV', 'attention', 'endCapture', 'launchGraph']);
    expect(() => {
      (b as CudaBackend).programmaticDependentLaunch = 1 as never;
    }).toThrow(/programmaticDependentLaunch must be a boolean, got 1/);
  });

  it('runs the recorded ops before a read in the middle of a pass', async () => {
    const { b, fns, clear } = setup();
    const x = b.alloc(1, 4);
    clear();
    b.beginPass(1, 0);
    b.add(x, x, x);
    const r = await b.read(x);
    expect(r).toBeInstanceOf(Float32Array);
    expect(r.length).toBe(4);
    expect(fns()).toEqual(['setPassPos', 'add', 'download']);
    b.endPass();
  });

  it('keeps the data of a write made inside a pass, in order with the ops', () => {
    const { n, b, fns, clear } = setup();
    const x = b.alloc(1, 2);
    const data = Float32Array.of(1, 2);
    clear();
    b.beginPass(1, 0);
    b.add(x, x, x);
    b.write(x, data);
    data[0] = 99;
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'add', 'upload']);
    expect(n.calls[2]!.args[3]).toEqual(Float32Array.of(1, 2));
  });

  it('keeps greedy ids on the device: the next pass embeds them from the token buffer, graphs replay, slots are read before reuse', async () => {
    const tokenBuffer = 0x7e0000000000;
    const n = fakeAddon({ readKept: (ctx, slot, rows) => {
      n.calls.push({ fn: 'readKept', args: [ctx, slot, rows] });
      return Int32Array.of(100 + slot);
    } });
    const b = new CudaBackend(n, n.init(0), 0);
    const fns = (): string[] => n.calls.map((c) => c.fn);
    const table = await b.uploadWeight({ format: 'f32', rows: 8, cols: 4, data: new Float32Array(32) }, 'embed');
    const [logits, out] = [b.alloc(1, 8), b.alloc(1, 4)];
    const tokens: DeviceTokens[] = [];
    for (let i = 0; i < 6; i++) {
      n.calls.length = 0;
      const t = b.argmaxOnDevice(logits);
      tokens.push(t);
      expect(n.calls.find((c) => c.fn === 'argmaxKeep')!.args.slice(2), `step ${i}`).toEqual([1, 8, i % 4]);
      // Slot 0 is taken again at step 4: the ids it held (step 0's, never read) are read out first.
      expect(fns().filter((f) => f === 'readKept' || f === 'argmaxKeep'), `step ${i}`).toEqual(i >= 4 ? ['readKept', 'argmaxKeep'] : ['argmaxKeep']);
      b.beginPass(1, i);
      b.embedOnDevice(table, t, out);
      b.endPass();
      if (i === 0) {
        expect(n.calls.find((c) => c.fn === 'embed')!.args.slice(6, 8)).toEqual([tokenBuffer, 1]);
        expect(fns()).not.toContain('upload');
      }
    }
    // The embed reads the token buffer (no host upload): the second pass is captured, later ones replay.
    expect(b.passStats).toEqual({ eager: 1, captured: 1, replayed: 4, fused: 0 });
    n.calls.length = 0;
    expect(Array.from(await tokens[0]!.ids())).toEqual([100]); // read out when slot 0 was reused
    expect(fns()).toEqual([]);
    expect(Array.from(await tokens[5]!.ids())).toEqual([101]);
    expect(n.calls).toEqual([{ fn: 'readKept', args: [0, 1, 1] }]);
    expect(await tokens[5]!.ids()).toBe(await tokens[5]!.ids());
    // Only the latest ids are still on the device; another backend's are not embeddable here.
    b.beginPass(1, 6);
    expect(() => b.embedOnDevice(table, tokens[4]!, out)).toThrow(/later argmaxOnDevice/);
    expect(() => b.embedOnDevice(table, { count: 1, ids: async () => Int32Array.of(1) }, out)).toThrow(/another backend/);
    expect(() => b.embedOnDevice(table, tokens[5]!, b.alloc(2, 4))).toThrow(/embedOnDevice out/);
    b.endPass();
  });

  it('does not replay a decode graph whose embed read a token buffer that has since moved', async () => {
    // The native token buffer grows (to a new address) when more rows are drawn at once than before.
    let held = 0;
    let address = 0x7e0000000000;
    const n = fakeAddon({ argmaxKeep: (ctx, logits, rows, cols, slot) => {
      n.calls.push({ fn: 'argmaxKeep', args: [ctx, logits, rows, cols, slot] });
      if (rows > held) [held, address] = [rows, address + 0x10000];
      return address;
    } });
    const b = new CudaBackend(n, n.init(0), 0);
    const table = await b.uploadWeight({ format: 'f32', rows: 8, cols: 4, data: new Float32Array(32) }, 'embed');
    const out = b.alloc(1, 4);
    const step = (pos: number): number => {
      const t = b.argmaxOnDevice(b.alloc(1, 8));
      n.calls.length = 0;
      b.beginPass(1, pos);
      b.embedOnDevice(table, t, out);
      b.endPass();
      const embed = n.calls.find((c) => c.fn === 'embed');
      return embed ? (embed.args[6] as number) : -1;
    };
    for (let i = 0; i < 3; i++) step(i); // eager, captured, replayed
    expect(b.passStats).toMatchObject({ eager: 1, captured: 1, replayed: 1 });
    b.argmaxOnDevice(b.alloc(3, 8)); // the buffer moves
    expect(step(3)).toBe(address); // a new pass key: run (and captured) again, reading the new address
    expect(b.passStats).toMatchObject({ eager: 2, replayed: 1 });
  });

  it('keeps sampled ids on the device: the history goes with the draw, the previous draw is counted there, the next pass embeds it', async () => {
    const tokenBuffer = 0x7e0000000000;
    const n = fakeAddon({ readKept: (ctx, slot, rows) => {
      n.calls.push({ fn: 'readKept', args: [ctx, slot, rows] });
      return Int32Array.of(200 + slot);
    } });
    const b = new CudaBackend(n, n.init(0), 0);
    const fns = (): string[] => n.calls.map((c) => c.fn);
    const table = await b.uploadWeight({ format: 'f32', rows: 8, cols: 4, data: new Float32Array(32) }, 'embed');
    const [logits, out] = [b.alloc(1, 8), b.alloc(1, 4)];
    const params: SamplingParams = {
      temperature: 0.7, topK: 20, topP: 0.8, minP: 0, repetitionPenalty: 1.05, presencePenalty: 0, frequencyPenalty: 0,
      history: { ids: Int32Array.of(3, 99, 5), counts: Int32Array.of(1, 2, 0) }, uniform: 0.25,
    };
    let previous: DeviceTokens | undefined;
    const drawn: DeviceTokens[] = [];
    for (let i = 0; i < 5; i++) {
      n.calls.length = 0;
      // Work recorded before the draw runs first (the logits come from it).
      b.add(logits, logits, logits);
      const t = b.sampleOnDevice(logits, params, previous);
      drawn.push(t);
      expect(fns().filter((f) => f !== 'readKept'), `step ${i}`).toEqual(['add', 'sampleKeep']);
      const args = n.calls.find((c) => c.fn === 'sampleKeep')!.args;
      // Id 99 is outside the vocabulary of 8 and dropped; the zero count stays (see deviceHistory).
      expect([...(args[3] as Int32Array)]).toEqual([3, 5]);
      expect([...(args[4] as Int32Array)]).toEqual([1, 0]);
      expect([...(args[5] as Float64Array)]).toEqual([0.7, 20, 0.8, 0, 1.05, 0, 0, 0.25, 0]);
      expect(args.slice(6), `step ${i}`).toEqual([i % 4, i > 0]);
      b.beginPass(1, i);
      b.embedOnDevice(table, t, out);
      b.endPass();
      if (i === 0) expect(n.calls.find((c) => c.fn === 'embed')!.args.slice(6, 8)).toEqual([tokenBuffer, 1]);
      expect(fns()).not.toContain('upload');
      previous = t;
    }
    expect(b.passStats).toMatchObject({ eager: 1, captured: 1, replayed: 3 });
    expect(Array.from(await drawn[0]!.ids())).toEqual([200]); // read out when slot 0 was reused
    expect(Array.from(await drawn[4]!.ids())).toEqual([200]);
    expect(await b.sample(logits, params)).toBe(201);
    // The previous token must be the latest, of one row, of this backend.
    expect(() => b.sampleOnDevice(logits, params, drawn[3])).toThrow(/later argmaxOnDevice or sampleOnDevice/);
    expect(() => b.sampleOnDevice(logits, params, b.argmaxOnDevice(b.alloc(2, 8)))).toThrow(/previous holds 2 ids, expected 1/);
    expect(() => b.sampleOnDevice(logits, params, { count: 1, ids: async () => Int32Array.of(1) })).toThrow(/another backend/);
    expect(() => b.sampleOnDevice(logits, { ...params, topK: -1 })).toThrow(/topK/);
  });

  it('argmax and sample report all-NaN rows as RangeError and validate parameters', async () => {
    // argmax's two rows are kept in slot 0, the draw in slot 1.
    const n = fakeAddon({ readKept: (_c, slot, rows) => (slot === 0 ? Int32Array.from({ length: rows }, (_, i) => (i === 1 ? -1 : 0)) : Int32Array.of(-1)) });
    const b = new CudaBackend(n, n.init(0), 0);
    await expect(b.argmax(b.alloc(2, 5))).rejects.toThrow(/row 1/);
    const params: SamplingParams = {
      temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
      history: { ids: new Int32Array(0), counts: new Int32Array(0) }, uniform: 0.5,
    };
    await expect(b.sample(b.alloc(1, 5), params)).rejects.toThrow(/NaN/);
    await expect(b.sample(b.alloc(2, 5), params)).rejects.toThrow(/one row/);
    await expect(b.sample(b.alloc(1, 5), { ...params, topP: 1.5 })).rejects.toThrow(/topP/);
  });

  it('dispose frees every allocation once and makes the backend unusable', async () => {
    const { n, b } = setup();
    await b.uploadWeight({ format: 'f32', rows: 1, cols: 4, data: new Float32Array(4) }, 'w');
    b.alloc(2, 2);
    b.createKVCache({ layers: 1, kvHeads: 1, headDim: 2, maxTokens: 2 });
    b.embed(await b.uploadWeight({ format: 'f32', rows: 2, cols: 2, data: new Float32Array(4) }, 'e'), Int32Array.of(1), b.alloc(1, 2));
    await b.dispose();
    expect(n.live.size).toBe(0);
    expect(n.calls.at(-1)!.fn).toBe('destroy');
    expect(() => b.alloc(1, 1)).toThrow(/disposed/);
  });
});

describe('attentionKeyCapacity', () => {
  it('covers the whole cache for single-token passes and exactly the reached positions otherwise', () => {
    expect(attentionKeyCapacity(1, 1, 10, 4096)).toBe(4096);
    expect(attentionKeyCapacity(8, 8, 10, 4096)).toBe(18);
    expect(attentionKeyCapacity(0, 1, 10, 4096)).toBe(11);
  });
});
