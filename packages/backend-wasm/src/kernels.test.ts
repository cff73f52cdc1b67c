import { describe, expect, it } from 'vitest';
import { instantiateKernels } from './kernels.js';

describe('wasm kernels', () => {
  it('dot_f32 matches a plain loop on odd lengths', async () => {
    const { memory, exports } = await instantiateKernels();
    for (const n of [0, 1, 3, 4, 7, 33, 1001]) {
      const a = new Float32Array(memory.buffer, 0, n);
      const b = new Float32Array(memory.buffer, 8192, n);
      let ref = 0;
      for (let i = 0; i < n; i++) {
        a[i] = Math.sin(i + n);
        b[i] = Math.cos(3 * i);
        ref += a[i]! * b[i]!;
      }
      expect(exports.dot_f32(0, 8192, n)).toBeCloseTo(ref, 3);
    }
  });
});
