// A random pre-quantized (AWQ or GPTQ, 4-bit, groups of 128) checkpoint at a real model's shapes, laid
// out as Qwen's own -AWQ / -GPTQ-Int4 repositories are: each linear layer's qweight / qzeros (int32)
// and scales (f16), everything else (embedding, norms, biases, an untied lm_head) in f16.
//
// For load timing: packed words come from a pool of random int32 (every nibble a valid 4-bit value),
// zero points are 7 or 8 (AWQ) or GPTQ's symmetric 8 (stored as 7), scales f16 near 0.004.
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseQwen2Config, qwen2CheckpointLayout, safetensorsHeaderFor } from '@qwen2-ts/loader';

const fixtures = new URL('../../../fixtures/', import.meta.url);
const GROUP = 128;
const LINEAR = /\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/**
 * Writes config.json (with its quantization_config), generation_config.json, tokenizer.json and
 * model.safetensors for `modelName` ('Qwen2-0.5B', ... a folder of fixtures/configs) into `dir`.
 * @param {'awq' | 'gptq'} method
 * @returns {{ bytes: number }}
 */
export function writeRandomQuantizedCheckpoint(dir, modelName, method, seed = 777) {
  const configText = readFileSync(new URL(`configs/${modelName}/config.json`, fixtures), 'utf8');
  const config = JSON.parse(configText);
  const tensors = [];
  for (const t of qwen2CheckpointLayout(parseQwen2Config(config))) {
    if (!LINEAR.test(t.name)) {
      tensors.push({ name: t.name, dtype: 'F16', shape: t.shape, kind: 'half' });
      continue;
    }
    const [rows, cols] = t.shape;
    const prefix = t.name.slice(0, -'.weight'.length);
    const groups = cols / GROUP;
    tensors.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: method === 'awq' ? [cols, rows / 8] : [cols / 8, rows], kind: 'words' });
    tensors.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [groups, rows / 8], kind: 'zeros' });
    tensors.push({ name: `${prefix}.scales`, dtype: 'F16', shape: [groups, rows], kind: 'scales' });
    if (method === 'gptq') tensors.push({ name: `${prefix}.g_idx`, dtype: 'I32', shape: [cols], kind: 'gidx' });
  }
  const { header, dataBytes } = safetensorsHeaderFor(Object.fromEntries(tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape }])));
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  const pools = {
    words: Uint32Array.from({ length: 1 << 22 }, () => next() ^ (next() << 16)),
    // AWQ zeros 7 or 8 per nibble; GPTQ's symmetric 8 stored as 7.
    zeros: Uint32Array.from({ length: 1 << 16 }, () => {
      if (method === 'gptq') return 0x77777777;
      let w = 0;
      for (let k = 0; k < 8; k++) w |= (next() & 1 ? 7 : 8) << (4 * k);
      return w >>> 0;
    }),
    // f16 0.002 .. 0.008 with either sign for the float tensors; positive for scales.
    half: Uint16Array.from({ length: 1 << 22 }, () => (next() & 0x8000) | 0x1c00 | (next() & 0x7ff)),
    scales: Uint16Array.from({ length: 1 << 16 }, () => 0x1c00 | (next() & 0x7ff)),
  };
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, header);
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.kind === 'gidx') {
        writeSync(fd, new Uint8Array(Int32Array.from({ length: n }, (_, i) => Math.floor(i / GROUP)).buffer));
        continue;
      }
      const pool = new Uint8Array(pools[t.kind].buffer);
      const bytes = n * (t.dtype === 'I32' ? 4 : 2);
      for (let done = 0; done < bytes;) {
        const start = (next() % (pool.length / 4 - 1)) * 4; // whole values of either width
        done += writeSync(fd, pool, start, Math.min(bytes - done, pool.length - start));
      }
    }
  } finally {
    closeSync(fd);
  }
  const quantization = method === 'awq'
    ? { bits: 4, group_size: GROUP, modules_to_not_convert: null, quant_method: 'awq', version: 'gemm', zero_point: true }
    : { bits: 4, damp_percent: 0.01, desc_act: false, group_size: GROUP, quant_method: 'gptq', sym: true, true_sequential: true };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: 'float16', quantization_config: quantization }, null, 2));
  writeFileSync(join(dir, 'generation_config.json'), readFileSync(new URL(`configs/${modelName}/generation_config.json`, fixtures)));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(new URL('tokenizer/tokenizer.json', fixtures)));
  return { bytes: header.byteLength + dataBytes };
}
