// A random-weight Hugging Face Qwen2 checkpoint at a real model's shapes, written to disk in bf16 (the
// dtype of the real checkpoints), with the real config and tokenizer from the fixtures: what the
// whole-model benchmarks load through `Qwen2.load` and convert to GGUF for llama.cpp.
//
// Values come from a 64 MiB pool of random bf16 (uniform, |x| < 0.05) copied from random offsets:
// writing 15 GB of fresh random numbers would measure the generator, not the loader.
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseQwen2Config, qwen2CheckpointLayout, safetensorsHeaderFor } from '@qwen2-ts/loader';

const fixtures = new URL('../../../fixtures/', import.meta.url);

/**
 * Writes config.json, generation_config.json, tokenizer.json and model.safetensors for `modelName`
 * ('Qwen2-0.5B', 'Qwen2-7B', ... a folder of fixtures/configs) into `dir`.
 * @returns {{ config: import('@qwen2-ts/loader').Qwen2Config, bytes: number }}
 */
export function writeRandomCheckpoint(dir, modelName, seed = 12345) {
  const configText = readFileSync(new URL(`configs/${modelName}/config.json`, fixtures), 'utf8');
  const config = parseQwen2Config(JSON.parse(configText));
  const layout = qwen2CheckpointLayout(config);
  const { header, dataBytes } = safetensorsHeaderFor(Object.fromEntries(layout.map((t) => [t.name, { dtype: 'BF16', shape: t.shape }])));
  const pool = new Uint16Array(32 << 20);
  let s = seed >>> 0;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < pool.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    f32[0] = ((s >>> 8) / 2 ** 24 - 0.5) * 0.1;
    pool[i] = u32[0] >>> 16;
  }
  const poolBytes = new Uint8Array(pool.buffer);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, header);
    for (let done = 0; done < dataBytes;) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const start = (s % (poolBytes.length / 2 - 1)) * 2; // even: whole bf16 values
      const n = Math.min(dataBytes - done, poolBytes.length - start);
      done += writeSync(fd, poolBytes, start, n);
    }
  } finally {
    closeSync(fd);
  }
  writeFileSync(join(dir, 'config.json'), configText);
  writeFileSync(join(dir, 'generation_config.json'), readFileSync(new URL(`configs/${modelName}/generation_config.json`, fixtures)));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(new URL('tokenizer/tokenizer.json', fixtures)));
  return { config, bytes: header.byteLength + dataBytes };
}
