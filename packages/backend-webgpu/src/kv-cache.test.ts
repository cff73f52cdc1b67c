// The KV cache's storage: the checks and sizes of planKVCache (no GPU), and the f16 cache's words as
// writeKV stores them, read back raw and compared bit by bit with core's roundToF16KV for every half, the
// ties between neighbouring halves and their f32 neighbours, on lavapipe and on SwiftShader (whose
// pack2x16float turns 70000 and Infinity into NaN; the kernels do not use it).
import { describe, expect, it } from 'vitest';
import { BackendUsageError, f16ToF32, f32ToF16, roundToF16KV, type KVCacheDtype, type KVCacheSpec } from '@qwen2-ts/core';
import { TestRandom } from '@qwen2-ts/core/testing';
import { WebGPUBackend, webgpuBackend } from './backend.js';
import { WebGPUDeviceError } from './errors.js';
import { planKVCache } from './kv-cache.js';
import { nodeGpu } from './test-support/node-gpu.js';
import { put } from './test-support/compare.js';
import { USAGE } from './runtime.js';

describe('planKVCache', () => {
  const spec = (maxTokens: number, dtype?: KVCacheDtype, headDim = 128): KVCacheSpec => ({ layers: 28, kvHeads: 4, headDim, maxTokens, ...(dtype ? { dtype } : {}) });

  it('takes 4 bytes per value in an f32 cache (the default) and 2 in an f16 one', () => {
    expect(planKVCache(spec(1000), 1 << 30)).toEqual({ dtype: 'f32', layerBytes: 4 * 128 * 1000 * 4 });
    expect(planKVCache(spec(1000, 'f32'), 1 << 30)).toEqual({ dtype: 'f32', layerBytes: 4 * 128 * 1000 * 4 });
    expect(planKVCache(spec(1000, 'f16'), 1 << 30)).toEqual({ dtype: 'f16', layerBytes: 4 * 128 * 1000 * 2 });
  });

  it('fits twice the tokens of an f32 cache into one binding as f16, and names the limit past it', () => {
    // One layer's keys of 4 heads x 128 take 2048 bytes per token in f32: a 128 MiB binding holds 65536.
    const limit = 128 << 20;
    expect(planKVCache(spec(65536), limit).layerBytes).toBe(limit);
    expect(() => planKVCache(spec(65537), limit)).toThrow(WebGPUDeviceError);
    expect(planKVCache(spec(131072, 'f16'), limit).layerBytes).toBe(limit);
    let err: unknown;
    try {
      planKVCache(spec(131073, 'f16'), limit);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WebGPUDeviceError);
    expect((err as WebGPUDeviceError).limit).toBe('maxStorageBufferBindingSize');
    expect((err as Error).message).toBe(
      "createKVCache: 131073 tokens need 134218752 bytes per layer for f16 keys, over the device's maxStorageBufferBindingSize of 134217728 bytes (lower maxContext)");
    expect(() => planKVCache(spec(65537), limit)).toThrow(/65537 tokens need 134219776 bytes per layer for f32 keys/);
  });

  it("uses core's checks, and wants an even head size for f16 and at most MAX_HEAD_DIM", () => {
    expect(() => planKVCache({ layers: 1, kvHeads: 0, headDim: 64, maxTokens: 4 }, 1 << 30)).toThrow(/kvHeads must be a positive integer, got 0/);
    expect(() => planKVCache({ ...spec(4), dtype: 'bf16' as KVCacheDtype }, 1 << 30)).toThrow(/dtype must be 'f32' or 'f16', got "bf16"/);
    expect(planKVCache(spec(4, 'f16', 6), 1 << 30).layerBytes).toBe(4 * 6 * 4 * 2);
    expect(planKVCache(spec(4, 'f32', 7), 1 << 30).layerBytes).toBe(4 * 7 * 4 * 4);
    expect(() => planKVCache(spec(4, 'f16', 7), 1 << 30)).toThrow(BackendUsageError);
    expect(() => planKVCache(spec(4, 'f16', 7), 1 << 30)).toThrow(/f16 cache needs an even headDim.*got 7/);
    expect(() => planKVCache(spec(4, 'f16', 258), 1 << 30)).toThrow(/headDim 258 exceeds the 256/);
  });
});

/**
 * Values whose rounding to f16 is easy to get wrong, both signs: every finite half, the midpoint between
 * it and the next (a tie; after 65504 the midpoint is 65520, which saturates) and the f32 values just
 * below and above that midpoint; then overflow, infinities, NaN, f32 subnormals and random bit patterns.
 */
function hardValues(): Float32Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const step = (x: number, by: number): number => {
    f[0] = x;
    u[0] = u[0]! + by;
    return f[0]!;
  };
  const out: number[] = [];
  for (let h = 0; h <= 0x7bff; h++) {
    const mid = (f16ToF32(h) + (h === 0x7bff ? 65536 : f16ToF32(h + 1))) / 2;
    for (const x of [f16ToF32(h), mid, step(mid, -1), step(mid, 1)]) out.push(x, -x);
  }
  out.push(Infinity, -Infinity, NaN, 70000, -1e9, 3.4e38, -3.4e38, 1e-45, -1e-45, 2 ** -25, step(2 ** -25, 1), 2 ** -26, 65519.99, 65520, 65536);
  const rnd = new TestRandom(5);
  const bits = new Uint32Array(4096);
  for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rnd.uniform() * 2 ** 32);
  out.push(...new Float32Array(bits.buffer));
  return Float32Array.from(out);
}

/**
 * The first `n` words of a storage buffer. The cache's buffers are storage-only (no COPY_SRC), so a
 * compute pass copies them into one that can be read.
 */
async function readWords(device: GPUDevice, src: GPUBuffer, n: number): Promise<Uint32Array> {
  const code = `@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * 65535u * 64u;
  if (i < ${n}u) { dst[i] = src[i]; }
}`;
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const dst = device.createBuffer({ size: n * 4, usage: USAGE.STORAGE | USAGE.COPY_SRC });
  const read = device.createBuffer({ size: n * 4, usage: USAGE.MAP_READ | USAGE.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] }));
  const groups = Math.ceil(n / 64);
  pass.dispatchWorkgroups(Math.min(groups, 65535), Math.ceil(groups / 65535));
  pass.end();
  enc.copyBufferToBuffer(dst, 0, read, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(1); // GPUMapMode.READ (no WebGPU globals in Node)
  const words = new Uint32Array(read.getMappedRange().slice(0));
  read.destroy();
  dst.destroy();
  return words;
}

for (const adapter of ['llvmpipe', 'SwiftShader'] as const) {
  const g = await nodeGpu(adapter);
  describe.skipIf(!g.gpu)(`f16 KV cache words on ${g.gpu ? g.adapterName : `no ${adapter} adapter`}`, () => {
    it('writeKV stores each value as roundToF16KV rounds it, dimensions i and i + headDim/2 in word i', async () => {
      const be = (await webgpuBackend({ gpu: g.gpu! })) as WebGPUBackend;
      try {
        const kvHeads = 2, headDim = 64, width = kvHeads * headDim, W = headDim / 2;
        const hard = hardValues();
        const T = Math.ceil(hard.length / width);
        const k = new Float32Array(T * width);
        k.set(hard);
        const v = k.map((x) => -x).reverse();
        const cache = be.createKVCache({ layers: 1, kvHeads, headDim, maxTokens: T, dtype: 'f16' });
        expect(cache.bytes).toBe(2 * T * width * 2);
        const kt = put(be, T, width, k);
        be.writeKV(cache, 0, kt, put(be, T, width, v), 0);
        // Submits the recorded write (the copy below goes to the queue on its own).
        await be.read(kt);
        const raw = cache as unknown as { keys: { buffer: GPUBuffer }[]; values: { buffer: GPUBuffer }[] };
        const device = (be as unknown as { device: GPUDevice }).device;
        for (const [what, data, buf] of [['keys', k, raw.keys[0]], ['values', v, raw.values[0]]] as const) {
          const words = await readWords(device, buf.buffer, (T * width) / 2);
          const wrong: string[] = [];
          for (let h = 0; h < kvHeads; h++) {
            for (let t = 0; t < T; t++) {
              for (let i = 0; i < W; i++) {
                const word = words[(h * T + t) * W + i]!;
                for (const [bits, x] of [[word & 0xffff, data[t * width + h * headDim + i]!], [word >>> 16, data[t * width + h * headDim + i + W]!]] as const) {
                  const want = roundToF16KV(x);
                  const ok = Number.isNaN(want) ? Number.isNaN(f16ToF32(bits)) : bits === f32ToF16(want);
                  if (!ok && wrong.length < 8) wrong.push(`${x} stored as 0x${bits.toString(16)} (${f16ToF32(bits)}), want ${want}`);
                }
              }
            }
          }
          expect(wrong, `${what} of ${hard.length} values`).toEqual([]);
        }
      } finally {
        await be.dispose();
      }
    });
  });
}
