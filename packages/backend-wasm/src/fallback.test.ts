import { afterEach, describe, expect, it } from 'vitest';
import { wasmBackend } from './backend.js';

describe('without SharedArrayBuffer (a page that is not cross-origin isolated)', () => {
  const g = globalThis as { crossOriginIsolated?: boolean };
  afterEach(() => { delete g.crossOriginIsolated; });

  it('runs on one thread over a plain memory and says why', async () => {
    g.crossOriginIsolated = false;
    const b = await wasmBackend({ threads: 4 });
    try {
      expect(b.info.threads).toBe(1);
      expect(b.info.device).toMatch(/SharedArrayBuffer unavailable.*1 thread/);
      const w = await b.uploadWeight({ format: 'f32', rows: 3, cols: 2, data: new Float32Array([1, 2, 3, 4, 5, 6]) }, 'w');
      const x = b.alloc(1, 2);
      b.write(x, new Float32Array([1, -1]));
      const out = b.alloc(1, 3);
      b.matmul(x, [w], [undefined], [out]);
      expect(Array.from(await b.read(out))).toEqual([-1, -1, -1]);
    } finally {
      await b.dispose();
    }
  });

  it('rejects an invalid thread count', async () => {
    await expect(wasmBackend({ threads: 0 })).rejects.toThrow(/threads must be an integer/);
  });
});
