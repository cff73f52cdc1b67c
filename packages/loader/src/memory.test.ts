// Lazy reads, proven on a 7B-shaped checkpoint (15 GB as a sparse file: no disk used): opening it and
// reading one tensor must cost memory in proportion to that tensor, not to the checkpoint.
import { closeSync, copyFileSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseQwen2Config } from './config.js';
import { openModel } from './model.js';
import { qwen2CheckpointLayout } from './qwen2-layout.js';
import { safetensorsHeaderFor } from './safetensors-writer.js';

const CONFIG = fileURLToPath(new URL('../../../fixtures/configs/Qwen2-7B/config.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'qwen2-loader-7b-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lazy reads on a 7B-shaped checkpoint', () => {
  it('reads one tensor of a 15 GB sparse checkpoint with memory close to that tensor', async () => {
    copyFileSync(CONFIG, join(dir, 'config.json'));
    const config = parseQwen2Config(JSON.parse(readFileSync(CONFIG, 'utf8')));
    const layout = qwen2CheckpointLayout(config);
    const { header, dataBytes } = safetensorsHeaderFor(Object.fromEntries(layout.map((t) => [t.name, { dtype: 'BF16' as const, shape: t.shape }])));
    const fd = openSync(join(dir, 'model.safetensors'), 'w');
    writeSync(fd, header);
    ftruncateSync(fd, header.byteLength + dataBytes); // sparse: the data section reads as zeros
    closeSync(fd);
    expect(dataBytes).toBeGreaterThan(15e9);

    const before = process.memoryUsage();
    const model = await openModel(dir);
    try {
      expect(model.checkpoint.tensors.size).toBe(layout.length);
      const name = 'model.layers.27.mlp.down_proj.weight'; // 3584 x 18944 bf16 = 136 MB, near the end of the file
      const bytes = await model.checkpoint.read(name);
      expect(bytes.byteLength).toBe(3584 * 18944 * 2);
      const after = process.memoryUsage();
      // Memory grows by about the tensor (136 MB), not by the checkpoint (15 GB).
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(2 * bytes.byteLength);
      expect(after.rss - before.rss).toBeLessThan(2 * bytes.byteLength + 64 * 2 ** 20);
      expect(bytes[0] | bytes[bytes.byteLength - 1]).toBe(0);
    } finally {
      await model.close();
    }
  });
});
