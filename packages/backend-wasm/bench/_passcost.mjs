import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '/work/main/packages/backend-wasm/dist/index.js';
import { writeRandomCheckpoint } from '/work/main/packages/backend-wasm/bench/random-checkpoint.mjs';
const fmt = process.argv[2] ?? 'q4_0';
const dir = mkdtempSync('/tmp/pc-');
const backend = await wasmBackend({ threads: 2 });
writeRandomCheckpoint(dir, 'Qwen2-0.5B');
const model = await Qwen2.load(dir, { backend, dtype: fmt, maxContext: 1024 });
const prompt = Array.from({ length: 64 }, (_, i) => 100 + i);
for (let rep = 0; rep < 1; rep++) for (const T of [2, 4, 6, 8, 11, 16]) {
  const times = [];
  for (let i = 0; i < 8; i++) {
    await model.logits(prompt); // cache = prompt
    const ids = [...prompt, ...Array.from({ length: T }, (_, j) => 500 + j + i)];
    const t0 = performance.now();
    await model.logits(ids, {}); // reuses prefix, runs T tokens (last row only)
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(fmt, 'T', T, 'ms', times[4].toFixed(1));
}
await model.dispose(); await backend.dispose(); rmSync(dir, { recursive: true });
