import { describe, expect, it } from 'vitest';
import { wasmBackend } from './backend.js';
import { kernelBytes, kernelImports, relaxedSimdAvailable } from './kernels.js';

describe('relaxed SIMD', () => {
  it('is available in Node >= 20 (switched on through V8 where it is still behind a flag)', async () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(20);
    expect(await relaxedSimdAvailable()).toBe(true);
  });

  it('is used by default, named in info.device, and can be turned off', async () => {
    const relaxed = await wasmBackend({ threads: 2 });
    const plain = await wasmBackend({ threads: 2, relaxedSimd: false });
    try {
      expect(relaxed.relaxed).toBe(true);
      expect(relaxed.info.device).toBe('WebAssembly SIMD128 + relaxed SIMD, 2 threads');
      expect(plain.relaxed).toBe(false);
      expect(plain.info.device).toBe('WebAssembly SIMD128, 2 threads');
    } finally {
      await relaxed.dispose();
      await plain.dispose();
    }
  });

  it('both builds pass the self-test of the relaxed instructions (the plain one through its fallback code)', async () => {
    await relaxedSimdAvailable();
    for (const relaxed of [true, false]) {
      const module = await WebAssembly.compile(kernelBytes(false, relaxed));
      const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536 });
      const instance = new WebAssembly.Instance(module, kernelImports(memory));
      expect((instance.exports as { relaxed_selftest(): number }).relaxed_selftest(), `relaxed build: ${relaxed}`).toBe(1);
    }
  });

  it('ships the relaxed builds as separate modules beside the plain ones', () => {
    expect(kernelBytes(false, true)).not.toEqual(kernelBytes(false, false));
    expect(kernelBytes(true, true)).not.toEqual(kernelBytes(true, false));
  });
});
