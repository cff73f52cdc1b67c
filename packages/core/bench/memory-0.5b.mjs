#!/usr/bin/env node
// Memory benchmark: writes a random-weight checkpoint at Qwen2-0.5B's real shapes (bf16, ~1 GB) into a
// temp folder, loads it on the reference backend in a fresh process, and prints that process's peak RSS
// next to the bytes the backend keeps (target: peak RSS within 1.2x of them).
//
//   node bench/memory-0.5b.mjs [--dtype auto,q8_0,...] [--read-ahead BYTES] [--forward] [--keep]
// (--dtype: a comma-separated list of auto|f32|f16|bf16|q8_0|q4_0, each measured in its own process;
// --read-ahead: loadModelWeights' readAheadBytes, default its own)
//
// Needs the built dist (`pnpm --filter @qwen2-ts/core build`). --forward also times one decode step.
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const configDir = join(here, '../../../fixtures/configs/Qwen2-0.5B');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const MiB = 1024 * 1024;

if (args[0] === '--child') await child(args[1], args[2], flag('--forward'), option('--read-ahead', undefined));
else await parent();

async function parent() {
  const dtype = option('--dtype', 'auto,q8_0');
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-0.5b-random-'));
  try {
    copyFileSync(join(configDir, 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(configDir, 'generation_config.json'), join(dir, 'generation_config.json'));
    const t0 = performance.now();
    const bytes = writeRandomCheckpoint(dir, JSON.parse(readFileSync(join(configDir, 'config.json'), 'utf8')));
    console.log(`wrote ${(bytes / MiB).toFixed(0)} MiB of random bf16 weights at Qwen2-0.5B shapes in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);
    for (const d of dtype.split(',')) {
      const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir, d, ...(flag('--forward') ? ['--forward'] : []), ...(args.includes('--read-ahead') ? ['--read-ahead', option('--read-ahead')] : [])], { stdio: 'inherit' });
      if (run.status !== 0) process.exitCode = run.status ?? 1;
    }
  } finally {
    if (flag('--keep')) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** Measures loading in a fresh process so that nothing from writing the file inflates its peak RSS. */
async function child(dir, dtype, forward, readAhead) {
  const { ReferenceBackend, loadModelWeights, Qwen2Model } = await import('../dist/index.js');
  const { openModel } = await import('@qwen2-ts/loader');
  const baseline = process.memoryUsage().rss;
  const backend = new ReferenceBackend();
  const t0 = performance.now();
  const opened = await openModel(dir);
  const weights = await loadModelWeights(opened.checkpoint, opened.config, backend, { format: dtype, readAheadBytes: readAhead === undefined ? undefined : Number(readAhead) });
  await opened.close();
  const model = new Qwen2Model(backend, opened.config, weights);
  const seq = model.createSequence(1024);
  const loadS = (performance.now() - t0) / 1000;
  if (forward) {
    const t1 = performance.now();
    const logits = model.forward(seq, [9707]);
    const [next] = await backend.argmax(logits);
    console.log(`one decode step on the reference backend: ${((performance.now() - t1) / 1000).toFixed(2)} s (token ${next})`);
  }
  globalThis.gc?.();
  const m = backend.memory();
  const kept = m.weights + m.activations + m.kvCache;
  const peak = process.resourceUsage().maxRSS * 1024;
  const rows = [
    ['weights on backend', m.weights],
    ['KV cache (1024 tokens)', m.kvCache],
    ['activations', m.activations],
    ['backend total', kept],
    ['RSS before loading (Node itself)', baseline],
    ['RSS now', process.memoryUsage().rss],
    ['peak RSS', peak],
  ];
  console.log(`loaded with dtype '${dtype}' in ${loadS.toFixed(1)} s; fallbacks: ${weights.fallbacks.length}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(34)} ${(v / MiB).toFixed(1).padStart(9)} MiB`);
  // The 1.2x target is for keeping the checkpoint's dtype. Quantizing needs one whole tensor's raw bytes
  // beside the result (Checkpoint.read returns whole tensors; the embedding alone is 272 MiB in bf16).
  const target = dtype === 'auto' || dtype === 'bf16';
  console.log(`  peak RSS / backend bytes            ${(peak / kept).toFixed(3)}x   ${target ? '(target <= 1.2x)' : '(no target: + one raw bf16 tensor in flight)'}`);
  console.log(`  (peak RSS - Node baseline) / bytes  ${((peak - baseline) / kept).toFixed(3)}x`);
  if (target && peak / kept > 1.2) process.exitCode = 2;
}

/** Writes model.safetensors (BF16, HF names and shapes) tensor by tensor, in pieces; returns data bytes. */
function writeRandomCheckpoint(dir, c) {
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  const D = H / c.num_attention_heads, KV = c.num_key_value_heads * D;
  const tensors = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    tensors.push(
      [`${p}.input_layernorm.weight`, [H]], [`${p}.self_attn.q_proj.weight`, [H, H]], [`${p}.self_attn.q_proj.bias`, [H]],
      [`${p}.self_attn.k_proj.weight`, [KV, H]], [`${p}.self_attn.k_proj.bias`, [KV]], [`${p}.self_attn.v_proj.weight`, [KV, H]],
      [`${p}.self_attn.v_proj.bias`, [KV]], [`${p}.self_attn.o_proj.weight`, [H, H]], [`${p}.post_attention_layernorm.weight`, [H]],
      [`${p}.mlp.gate_proj.weight`, [I, H]], [`${p}.mlp.up_proj.weight`, [I, H]], [`${p}.mlp.down_proj.weight`, [H, I]],
    );
  }
  tensors.push(['model.norm.weight', [H]]);
  const header = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, prefix);
  writeSync(fd, Buffer.from(json, 'utf8'));
  const piece = new Uint16Array(8 * MiB);
  let state = 0x9e3779b9;
  for (const [name, shape] of tensors) {
    let left = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('layernorm.weight') || name === 'model.norm.weight';
    while (left > 0) {
      const n = Math.min(left, piece.length);
      for (let i = 0; i < n; i++) {
        // xorshift32 -> a bf16 pattern of a value in about [-0.06, 0.06] (norm weights near 1).
        state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
        const mant = (state >>> 9) & 0x7f;
        const exp = isNorm ? 127 : 118 + ((state >>> 16) & 3);
        piece[i] = ((state & 1) && !isNorm ? 0x8000 : 0) | (exp << 7) | mant;
      }
      writeSync(fd, new Uint8Array(piece.buffer, 0, n * 2));
      left -= n;
    }
  }
  closeSync(fd);
  return offset;
}
