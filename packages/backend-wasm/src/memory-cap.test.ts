import { afterEach, describe, expect, it } from 'vitest';
import { wasmBackend } from './backend.js';

// A browser on a phone or a 32-bit system may refuse to reserve 4 GiB of address space for a memory.
describe('when the engine refuses 4 GiB memories', () => {
  const Original = WebAssembly.Memory;
  afterEach(() => { (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = Original; });

  it('caps each memory at what it grants, says so, and spreads weights over more memories', async () => {
    const granted: number[] = [];
    (WebAssembly as { Memory: unknown }).Memory = function Memory(d: WebAssembly.MemoryDescriptor) {
      if ((d.maximum ?? 0) > 16384) throw new RangeError('WebAssembly.Memory(): could not allocate memory');
      granted.push(d.maximum!);
      return new Original(d);
    };
    const b = await wasmBackend({ threads: 1 });
    try {
      expect(b.info.device).toMatch(/memories capped at 1024 MiB each/);
      // 3 weights of 400 MB: 768 MiB (3/4 of 1 GiB) fits one in memory 0, each further memory two.
      const rows = 100_000, cols = 1000;
      const data = new Float32Array(rows * cols).fill(0.5);
      const ws = [];
      for (let i = 0; i < 3; i++) ws.push(await b.uploadWeight({ format: 'f32', rows, cols, data }, `w${i}`));
      expect(b.memories).toBe(2);
      expect(granted.every((p) => p === 16384)).toBe(true);
      const x = b.alloc(1, cols);
      b.write(x, new Float32Array(cols).fill(1));
      const out = b.alloc(1, rows);
      b.matmul(x, [ws[2]!], [undefined], [out]);
      expect((await b.read(out))[rows - 1]).toBe(500);
      await expect(b.uploadWeight({ format: 'f32', rows: 300_000, cols: 1000, data: new Float32Array(300_000_000) }, 'huge')).rejects.toThrow(/exceeds one memory's share/);
    } finally {
      await b.dispose();
    }
  }, 60_000);
});
