import { describe, expect, it } from 'vitest';
import { Qwen2Model, type KVCacheDtype, type LayerWeights, type Qwen2ModelConfig } from '@qwen2-ts/core';
import { CudaBackend } from './backend.js';
import { fakeAddon } from './fake-addon.js';

// Record-time fusion of a decode matmul with the residual add, SwiGLU or rope and KV write after it
// (src/fusion.ts), over the stand-in addon: which native calls a pass makes. The fused kernels
// themselves are checked on the CUDA emulation (scripts/test-emulated-kernels.mjs matmul: "gemv
// residual/SwiGLU/rope epilogue").

function setup() {
  const n = fakeAddon();
  const b = new CudaBackend(n, n.init(0), 0);
  const calls = (fn?: string) => n.calls.filter((c) => fn === undefined || c.fn === fn);
  const fns = (): string[] => n.calls.map((c) => c.fn);
  const clear = (): void => {
    n.calls.length = 0;
  };
  const weight = (rows: number, cols: number, format: 'bf16' | 'f16' = 'bf16') =>
    b.uploadWeight({ format, rows, cols, data: new Uint16Array(rows * cols) }, `w${rows}x${cols}`);
  const ptr = (t: unknown) => (t as { ptr: number }).ptr;
  /** The native calls (other than setPassPos) of one pass of `tokens` tokens at `start` recording `body`. */
  const pass = (tokens: number, start: number, body: () => void): string[] => {
    clear();
    b.beginPass(tokens, start);
    body();
    b.endPass();
    return fns().filter((f) => f !== 'setPassPos');
  };
  return { n, b, calls, fns, clear, weight, ptr, pass };
}

describe('decode matmul epilogues', () => {
  it("does core's residual add (x += x·Wᵀ) in the o_proj/down matmul of a decode pass", async () => {
    const { b, calls, fns, clear, weight, ptr } = setup();
    const w = await weight(16, 32);
    const attn = b.alloc(1, 32);
    const o = b.alloc(1, 16);
    const x = b.alloc(1, 16);
    clear();
    b.beginPass(1, 0);
    b.matmul(attn, [w], [undefined], [o]);
    b.add(x, o, x);
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'matmul']);
    const [, xp, tokens, K, params, , epilogue] = calls('matmul')[0]!.args as [number, number, number, number, Float64Array, number, Float64Array];
    expect([xp, tokens, K, params.length]).toEqual([ptr(attn), 1, 32, 11]);
    expect([...epilogue]).toEqual([1, ptr(x), ptr(x)]);
    expect(b.passStats.fused).toBe(1);
  });

  it('does SwiGLU in the gate/up matmul, the result in place of the gate', async () => {
    const { b, calls, fns, clear, weight, ptr } = setup();
    const [gw, uw] = [await weight(24, 16), await weight(24, 16)];
    const xn = b.alloc(3, 16);
    const [g, u] = [b.alloc(3, 24), b.alloc(3, 24)];
    clear();
    b.beginPass(3, 5);
    b.matmul(xn, [gw, uw], [undefined, undefined], [g, u]);
    b.swiglu(g, u, g);
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'matmul']);
    expect([...(calls('matmul')[0]!.args[6] as Float64Array)]).toEqual([2, 0, ptr(g)]);
  });

  it('fuses a graph-captured decode step the same way on every replay', async () => {
    const { b, fns, clear, weight } = setup();
    const w = await weight(16, 32);
    const attn = b.alloc(1, 32);
    const o = b.alloc(1, 16);
    const x = b.alloc(1, 16);
    const step = (pos: number) => {
      b.beginPass(1, pos);
      b.matmul(attn, [w], [undefined], [o]);
      b.add(x, o, x);
      b.endPass();
    };
    step(0);
    step(1);
    clear();
    step(2);
    expect(fns()).toEqual(['setPassPos', 'launchGraph']);
    expect(b.passStats).toEqual({ eager: 1, captured: 1, replayed: 1, fused: 3 });
  });

  it('keeps the ops apart where fusing could change a result or race', async () => {
    const { b, fns, clear, weight, pass: passAt } = setup();
    const w = await weight(16, 32);
    const [gw, uw, fw] = [await weight(24, 16), await weight(24, 16), await weight(24, 16, 'f16')];
    const attn = b.alloc(9, 32);
    const o = b.alloc(9, 16);
    const x = b.alloc(9, 16);
    const other = b.alloc(1, 16);
    const one = (t: Parameters<CudaBackend['view']>[0]) => b.view(t, 0, 1);
    const pass = (tokens: number, body: () => void): string[] => passAt(tokens, 0, body);
    // Outside a pass every op runs at once.
    clear();
    b.matmul(one(attn), [w], [undefined], [one(o)]);
    b.add(one(x), one(o), one(x));
    expect(fns()).toEqual(['matmul', 'add']);
    // Nine tokens take the prefill GEMM, which has no epilogue.
    expect(pass(9, () => {
      b.matmul(attn, [w], [undefined], [o]);
      b.add(x, o, x);
    })).toEqual(['matmul', 'add']);
    // The add does not read the matmul's output.
    expect(pass(1, () => {
      b.matmul(one(attn), [w], [undefined], [one(o)]);
      b.add(one(x), other, one(x));
    })).toEqual(['matmul', 'add']);
    // The sum would be written into the matmul's input (which every warp of the GEMV reads throughout).
    const xin = b.alloc(2, 16);
    const w16 = await weight(16, 16);
    expect(pass(1, () => {
      b.matmul(b.view(xin, 0, 1), [w16], [undefined], [one(o)]);
      b.add(b.view(xin, 1, 1), one(o), b.view(xin, 1, 1));
    })).toEqual(['matmul', 'add']);
    // The sum lands on part of the residual's storage that is not the residual.
    const two = b.alloc(2, 16);
    expect(pass(1, () => {
      b.matmul(one(attn), [w], [undefined], [one(o)]);
      b.add(b.view(two, 0, 1), one(o), b.view(two, 1, 1));
    })).toEqual(['matmul', 'add']);
    // The residual is another view of the matmul output's allocation (views are not told apart).
    expect(pass(1, () => {
      b.matmul(one(attn), [w], [undefined], [b.view(two, 0, 1)]);
      b.add(b.view(two, 1, 1), b.view(two, 0, 1), other);
    })).toEqual(['matmul', 'add']);
    // SwiGLU with gate and up swapped, or over weights of two formats.
    const xn = b.alloc(1, 16);
    const [g, u] = [b.alloc(1, 24), b.alloc(1, 24)];
    expect(pass(1, () => {
      b.matmul(xn, [gw, uw], [undefined, undefined], [g, u]);
      b.swiglu(u, g, g);
    })).toEqual(['matmul', 'swiglu']);
    expect(pass(1, () => {
      b.matmul(xn, [gw, fw], [undefined, undefined], [g, u]);
      b.swiglu(g, u, g);
    })).toEqual(['matmul', 'swiglu']);
    // A read in between runs the matmul first: nothing is left to fuse with.
    clear();
    b.beginPass(1, 0);
    b.matmul(one(attn), [w], [undefined], [one(o)]);
    await b.read(one(o));
    b.add(one(x), one(o), one(x));
    b.endPass();
    expect(fns().filter((f) => f !== 'setPassPos')).toEqual(['matmul', 'download', 'add']);
    expect(b.passStats.fused).toBe(0);
  });

  it("makes 5 native calls (5 kernels) per layer in a decode step of core's Qwen2 graph, 13 unfused", async () => {
    const { b, fns, clear, calls } = setup();
    // Qwen2-0.5B's layer count and head layout at small widths (no kernel runs; only calls are counted).
    const config: Qwen2ModelConfig = {
      vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 24, numAttentionHeads: 14, numKeyValueHeads: 2, headDim: 8,
      rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, maxPositionEmbeddings: 64, maxWindowLayers: 24,
    };
    const up = (rows: number, cols: number, format: 'f32' | 'bf16' = 'bf16') =>
      b.uploadWeight(format === 'f32' ? { format, rows, cols, data: new Float32Array(rows * cols) } : { format, rows, cols, data: new Uint16Array(rows * cols) }, 'w');
    const H = config.hiddenSize, I = config.intermediateSize, qw = config.numAttentionHeads * config.headDim, kvw = config.numKeyValueHeads * config.headDim;
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.numHiddenLayers; l++) {
      layers.push({
        inputNorm: await up(1, H, 'f32'), postNorm: await up(1, H, 'f32'),
        q: await up(qw, H), k: await up(kvw, H), v: await up(kvw, H), qBias: await up(1, qw, 'f32'), kBias: await up(1, kvw, 'f32'), vBias: await up(1, kvw, 'f32'),
        o: await up(H, qw), gate: await up(I, H), up: await up(I, H), down: await up(H, I),
      });
    }
    const embed = await up(config.vocabSize, H);
    const model = new Qwen2Model(b, config, { embed, layers, norm: await up(1, H, 'f32'), lmHead: embed, bytes: 0, fallbacks: [] });
    const seq = model.createSequence(16);
    await b.argmax(model.forward(seq, [1, 2, 3]));
    const launches = (): number => fns().filter((f) => !['setPassPos', 'upload', 'malloc', 'download', 'readKept'].includes(f)).length;
    clear();
    await b.argmax(model.forward(seq, [4])); // first sight of the decode step: runs op by op
    // embed, 24 x (rmsNorm + q/k/v + rope q + rope k + writeKV, attention, o + residual, rmsNorm +
    // gate/up + SwiGLU, down + residual), copy + in-place rmsNorm + lm_head, argmax.
    expect(launches()).toBe(1 + 24 * 5 + 2);
    expect(fns().filter((f) => f === 'matmul').length).toBe(24 * 4 + 1);
    for (const separate of ['add', 'swiglu', 'rope', 'ropeQK', 'writeKV', 'rmsNorm', 'copy']) expect(fns()).not.toContain(separate);
    // Every layer's q/k/v matmul carries the rope epilogue with its own layer's caches.
    const qkv = calls('matmul').filter((c) => (c.args[4] as Float64Array).length === 3 * 11);
    expect(qkv).toHaveLength(24);
    const cache = (seq as unknown as { cache: { keysPtr(l: number): number; valuesPtr(l: number): number } }).cache;
    qkv.forEach((c, l) => {
      expect(Array.from(c.args[6] as Float64Array)).toEqual([3, 0, 0, 8, 1, 0, 1e6, cache.keysPtr(l), cache.valuesPtr(l), 16, 0]);
    });
    // The prompt (3 tokens, also a decode-sized pass) fused the same: per layer 2 matmuls into their
    // norms, 2 adds, 1 SwiGLU, the ropes of q and k and the KV write; then the final norm and lm_head.
    expect(b.passStats.fused).toBe(2 * (24 * 8 + 2));
  });
});

describe('RMSNorm prologue', () => {
  it('does the RMSNorm before q/k/v, and before gate/up together with the SwiGLU after them', async () => {
    const { b, calls, fns, clear, weight, ptr } = setup();
    const [q, k, v, gw, uw] = [await weight(32, 16), await weight(16, 16), await weight(16, 16), await weight(24, 16), await weight(24, 16)];
    const g = await b.uploadWeight({ format: 'f32', rows: 1, cols: 16, data: new Float32Array(16).fill(1) }, 'norm');
    const [x, xn] = [b.alloc(1, 16), b.alloc(1, 16)];
    const [qo, ko, vo, go, uo] = [b.alloc(1, 32), b.alloc(1, 16), b.alloc(1, 16), b.alloc(1, 24), b.alloc(1, 24)];
    clear();
    b.beginPass(1, 0);
    b.rmsNorm(x, g, 1e-6, xn);
    b.matmul(xn, [q, k, v], [undefined, undefined, undefined], [qo, ko, vo]);
    b.rmsNorm(x, g, 1e-6, xn);
    b.matmul(xn, [gw, uw], [undefined, undefined], [go, uo]);
    b.swiglu(go, uo, go);
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'matmul', 'matmul']);
    const [first, second] = calls('matmul');
    // x is the norm's input; the prologue: weight (pointer, scales, f32 = 0, 1 x 16), eps, output.
    expect(first!.args[1]).toBe(ptr(x));
    expect([...(first!.args[7] as Float64Array)]).toEqual([ptr(g), 0, 0, 1, 16, 1e-6, ptr(xn)]);
    expect(first!.args[6]).toBeUndefined();
    expect([...(second!.args[6] as Float64Array)]).toEqual([2, 0, ptr(go)]);
    expect(second!.args[7]).toBeInstanceOf(Float64Array);
    expect(b.passStats.fused).toBe(3);
  });

  it("does core's copy of the last row, its in-place norm and lm_head as one GEMV reading the copy's source", async () => {
    const { b, calls, weight, ptr, pass } = setup();
    const head = await weight(40, 16);
    const g = await b.uploadWeight({ format: 'f32', rows: 1, cols: 16, data: new Float32Array(16).fill(1) }, 'norm');
    const [x, last, logits] = [b.alloc(3, 16), b.alloc(1, 16), b.alloc(1, 40)];
    expect(pass(3, 0, () => {
      b.copy(b.view(x, 2, 1), last);
      b.rmsNorm(last, g, 1e-6, last);
      b.matmul(last, [head], [undefined], [logits]);
    })).toEqual(['matmul']);
    const [call] = calls('matmul');
    expect(call!.args[1]).toBe(ptr(b.view(x, 2, 1)));
    expect((call!.args[7] as Float64Array)[6]).toBe(ptr(last));
    // Without a matmul after them, the copy and the norm are one RMSNorm from the source.
    expect(pass(1, 0, () => {
      b.copy(b.view(x, 0, 1), last);
      b.rmsNorm(last, g, 1e-6, last);
    })).toEqual(['rmsNorm']);
    expect(calls('rmsNorm')[0]!.args[1]).toBe(ptr(b.view(x, 0, 1)));
    // A copy within one allocation stays a copy.
    expect(pass(1, 0, () => {
      b.copy(b.view(x, 0, 1), b.view(x, 1, 1));
      b.rmsNorm(b.view(x, 1, 1), g, 1e-6, b.view(x, 1, 1));
    })).toEqual(['copy', 'rmsNorm']);
  });

  it('keeps the norm apart where blocks would read what others write', async () => {
    const { b, weight, pass: passAt } = setup();
    const w = await weight(16, 16);
    const g = await b.uploadWeight({ format: 'f32', rows: 1, cols: 16, data: new Float32Array(16).fill(1) }, 'norm');
    const [x, xn, o, y] = [b.alloc(1, 16), b.alloc(1, 16), b.alloc(1, 16), b.alloc(1, 16)];
    const pass = (body: () => void): string[] => passAt(1, 0, body);
    // rmsNorm(input -> normed), then a matmul of `read` into `out`: each case stays two launches.
    const refused: [what: string, input: typeof x, normed: typeof x, read: typeof x, out: typeof x][] = [
      ['in place (the final norm before lm_head)', x, x, x, o],
      ["the matmul writes into the norm's input", x, xn, xn, x],
      ['the matmul reads something else', x, xn, o, y],
    ];
    for (const [what, input, normed, read, out] of refused) {
      expect(pass(() => {
        b.rmsNorm(input, g, 1e-6, normed);
        b.matmul(read, [w], [undefined], [out]);
      }), what).toEqual(['rmsNorm', 'matmul']);
    }
    // Norm and matmul fuse, but a residual add into the norm's input stays apart.
    expect(pass(() => {
      b.rmsNorm(x, g, 1e-6, xn);
      b.matmul(xn, [w], [undefined], [o]);
      b.add(x, o, x);
    })).toEqual(['matmul', 'add']);
  });
});

describe('rope and KV write', () => {
  function ropeSetup(dtype: KVCacheDtype = 'f32') {
    const t = setup();
    const cache = t.b.createKVCache({ layers: 2, kvHeads: 2, headDim: 8, maxTokens: 32, dtype });
    const [q, k, v] = [t.b.alloc(2, 32), t.b.alloc(2, 16), t.b.alloc(2, 16)];
    return { ...t, cache, q, k, v };
  }

  it("does core's rope(q), rope(k), writeKV(k, v) as one launch, in any pass", () => {
    const { b, calls, fns, clear, ptr, cache, q, k, v } = ropeSetup();
    clear();
    b.beginPass(2, 5);
    b.rope(q, 4, 8, 5, 1e6);
    b.rope(k, 2, 8, 5, 1e6);
    b.writeKV(cache, 1, k, v, 5);
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'ropeQK']);
    const args = calls('ropeQK')[0]!.args as number[];
    const keys = (cache as unknown as { keysPtr(l: number): number }).keysPtr(1);
    const values = (cache as unknown as { valuesPtr(l: number): number }).valuesPtr(1);
    // ctx, q, q heads, k, k heads, tokens, head_dim, relative position 0, theta, v, caches, max tokens, f32 caches
    expect(args.slice(1)).toEqual([ptr(q), 4, ptr(k), 2, 2, 8, 1, 0, 1e6, ptr(v), keys, values, 32, 0]);
    expect(b.passStats.fused).toBe(2);
  });

  it('writes an f16 cache through the same launch, with its dtype code and half-size layers', () => {
    const { b, calls, fns, clear, ptr, cache, q, k, v } = ropeSetup('f16');
    clear();
    b.beginPass(2, 5);
    b.rope(q, 4, 8, 5, 1e6);
    b.rope(k, 2, 8, 5, 1e6);
    b.writeKV(cache, 1, k, v, 5);
    b.endPass();
    expect(fns()).toEqual(['setPassPos', 'ropeQK']);
    const base = (cache as unknown as { ptr: number }).ptr;
    // Layer 1's keys after layer 0's keys and values: 2 x (2 heads x 32 positions x 8) halves.
    expect((calls('ropeQK')[0]!.args as number[]).slice(10)).toEqual([ptr(v), base + 2 * 2 * 32 * 8 * 2, base + 3 * 2 * 32 * 8 * 2, 32, 1]);
  });

  it('keeps them apart when they do not line up', () => {
    const { b, cache, q, k, v, pass: passAt } = ropeSetup();
    const pass = (body: () => void): string[] => passAt(2, 5, body);
    // Another position or theta for k.
    expect(pass(() => {
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 6, 1e6);
    })).toEqual(['rope', 'rope']);
    expect(pass(() => {
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e4);
    })).toEqual(['rope', 'rope']);
    // q and k in one allocation (blocks rotate both at once).
    const qk = b.alloc(4, 16);
    expect(pass(() => {
      b.rope(b.view(qk, 0, 2), 2, 8, 5, 1e6);
      b.rope(b.view(qk, 2, 2), 2, 8, 5, 1e6);
    })).toEqual(['rope', 'rope']);
    // The KV write of another tensor than the k just rotated, or of a v in k's allocation (v is read
    // while k is rotated).
    const other = b.alloc(2, 16);
    expect(pass(() => {
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
      b.writeKV(cache, 0, other, v, 5);
    })).toEqual(['ropeQK', 'writeKV']);
    const kv = b.alloc(4, 16);
    expect(pass(() => {
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(b.view(kv, 0, 2), 2, 8, 5, 1e6);
      b.writeKV(cache, 0, b.view(kv, 0, 2), b.view(kv, 2, 2), 5);
    })).toEqual(['ropeQK', 'writeKV']);
  });
});

describe('rope and KV write in the q/k/v matmul', () => {
  async function qkvSetup(formats: readonly ('bf16' | 'f16')[] = ['bf16', 'bf16', 'bf16'], dtype: KVCacheDtype = 'f32') {
    const t = setup();
    const cache = t.b.createKVCache({ layers: 2, kvHeads: 2, headDim: 8, maxTokens: 32, dtype });
    const [wq, wk, wv] = [await t.weight(32, 24, formats[0]), await t.weight(16, 24, formats[1]), await t.weight(16, 24, formats[2])];
    const [x, q, k, v] = [t.b.alloc(2, 24), t.b.alloc(2, 32), t.b.alloc(2, 16), t.b.alloc(2, 16)];
    const qkv = (input = x, outs = [q, k, v]) => t.b.matmul(input, [wq, wk, wv], [undefined, undefined, undefined], outs);
    const keys = (cache as unknown as { keysPtr(l: number): number }).keysPtr(1);
    const values = (cache as unknown as { valuesPtr(l: number): number }).valuesPtr(1);
    return { ...t, cache, x, q, k, v, qkv, keys, values };
  }

  it("does core's q/k/v matmul, rope(q), rope(k) and writeKV(k, v) as one GEMV with the rope epilogue", async () => {
    const { b, calls, ptr, cache, x, q, k, v, qkv, keys, values, pass } = await qkvSetup();
    expect(pass(2, 5, () => {
      qkv();
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
      b.writeKV(cache, 1, k, v, 5);
    })).toEqual(['matmul']);
    const [, xp, tokens, K, params, , epilogue, prologue] = calls('matmul')[0]!.args as [number, number, number, number, Float64Array, number, Float64Array, unknown];
    expect([xp, tokens, K, params.length, prologue]).toEqual([ptr(x), 2, 24, 33, undefined]);
    // kind, (no residual, no out), head_dim, relative position 0, theta, caches, max tokens, f32 caches
    expect(Array.from(epilogue)).toEqual([3, 0, 0, 8, 1, 0, 1e6, keys, values, 32, 0]);
    expect(b.passStats.fused).toBe(3);
  });

  it("passes an f16 cache's dtype code in the rope epilogue", async () => {
    const { b, calls, cache, q, k, v, qkv, keys, values, pass } = await qkvSetup(['bf16', 'bf16', 'bf16'], 'f16');
    expect(pass(2, 5, () => {
      qkv();
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
      b.writeKV(cache, 1, k, v, 5);
    })).toEqual(['matmul']);
    const epilogue = calls('matmul')[0]!.args[6] as Float64Array;
    expect(Array.from(epilogue)).toEqual([3, 0, 0, 8, 1, 0, 1e6, keys, values, 32, 1]);
  });

  it('takes a position past the pass start, and the RMSNorm before the matmul as its prologue', async () => {
    const { b, calls, ptr, cache, x, q, k, v, qkv, keys, values, pass } = await qkvSetup();
    const g = await b.uploadWeight({ format: 'f32', rows: 1, cols: 24, data: new Float32Array(24).fill(1) }, 'norm');
    const xn = b.alloc(2, 24);
    expect(pass(2, 5, () => {
      b.rmsNorm(x, g, 1e-6, xn);
      qkv(xn);
      b.rope(q, 4, 8, 9, 1e6);
      b.rope(k, 2, 8, 9, 1e6);
      b.writeKV(cache, 1, k, v, 9);
    })).toEqual(['matmul']);
    const [, xp, , , , , epilogue, prologue] = calls('matmul')[0]!.args as [number, number, number, number, Float64Array, number, Float64Array, Float64Array];
    expect(xp).toBe(ptr(x));
    expect(prologue[prologue.length - 1]).toBe(ptr(xn));
    expect(Array.from(epilogue)).toEqual([3, 0, 0, 8, 1, 4, 1e6, keys, values, 32, 0]);
  });

  it('runs what it recorded as before when the chain breaks off or does not line up', async () => {
    const { b, calls, ptr, cache, q, k, v, qkv, pass } = await qkvSetup();
    // Only rope(q) follows: the matmul, then that rope alone.
    expect(pass(2, 5, () => {
      qkv();
      b.rope(q, 4, 8, 5, 1e6);
    })).toEqual(['matmul', 'rope']);
    expect(calls('matmul')[0]!.args[6]).toBeUndefined();
    // rope(q) and rope(k) without the KV write: the matmul, then both ropes in one launch.
    expect(pass(2, 5, () => {
      qkv();
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
    })).toEqual(['matmul', 'ropeQK']);
    // The KV write of another v than the matmul's third output: rope q+k and that write in one launch.
    const other = b.alloc(2, 16);
    expect(pass(2, 5, () => {
      qkv();
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
      b.writeKV(cache, 1, k, other, 5);
    })).toEqual(['matmul', 'ropeQK']);
    expect((calls('ropeQK')[0]!.args as number[])[10]).toBe(ptr(other));
    // The rope of another tensor than the matmul's first output, or k's rope before q's (the two ropes
    // still pair up with each other).
    const elsewhere = b.alloc(2, 32);
    expect(pass(2, 5, () => {
      qkv();
      b.rope(elsewhere, 4, 8, 5, 1e6);
    })).toEqual(['matmul', 'rope']);
    expect(pass(2, 5, () => {
      qkv();
      b.rope(k, 2, 8, 5, 1e6);
      b.rope(q, 4, 8, 5, 1e6);
    })).toEqual(['matmul', 'ropeQK']);
    expect(calls('matmul')[0]!.args[6]).toBeUndefined();
    // More tokens than a GEMV takes: the prefill GEMM, then the fused rope launch.
    const [x16, q16, k16, v16] = [b.alloc(16, 24), b.alloc(16, 32), b.alloc(16, 16), b.alloc(16, 16)];
    expect(pass(16, 0, () => {
      qkv(x16, [q16, k16, v16]);
      b.rope(q16, 4, 8, 0, 1e6);
      b.rope(k16, 2, 8, 0, 1e6);
      b.writeKV(cache, 1, k16, v16, 0);
    })).toEqual(['matmul', 'ropeQK']);
  });

  it('keeps the rope apart from a matmul of other than three weights of one format', async () => {
    const { b, cache, x, q, k, v, qkv, pass } = await qkvSetup(['bf16', 'f16', 'bf16']);
    const body = (matmul: () => void) => () => {
      matmul();
      b.rope(q, 4, 8, 5, 1e6);
      b.rope(k, 2, 8, 5, 1e6);
      b.writeKV(cache, 1, k, v, 5);
    };
    expect(pass(2, 5, body(() => qkv()))).toEqual(['matmul', 'ropeQK']);
    const wq = await b.uploadWeight({ format: 'bf16', rows: 32, cols: 24, data: new Uint16Array(32 * 24) }, 'q');
    expect(pass(2, 5, body(() => b.matmul(x, [wq], [undefined], [q])))).toEqual(['matmul', 'ropeQK']);
  });
});

