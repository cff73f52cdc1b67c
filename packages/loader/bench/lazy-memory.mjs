// Memory benchmark: peak RSS of lazy tensor reads vs. reading the whole checkpoint into memory (the
// baseline a naive loader pays), on checkpoints at the real Qwen2-0.5B and Qwen2-7B shapes. The
// checkpoints are sparse files (header + ftruncate): no disk space, data reads as zeros.
// Each measurement runs in its own child process so its peak RSS (maxRSS) is its own.
// Usage: node bench/lazy-memory.mjs [--full]   (after `pnpm --filter @qwen2-ts/loader build`)
// --full also reads every tensor of the 7B-shaped checkpoint (14.5 GB of reads: about a minute here).
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/index.js', import.meta.url);
const { openModel, parseQwen2Config, qwen2CheckpointLayout, safetensorsHeaderFor } = await import(dist.href);
const MB = 2 ** 20;
const peakMB = () => process.resourceUsage().maxRSS / 1024; // maxRSS is in KB

const [mode, dir, tensor] = process.argv.slice(2);
const full = mode === '--full';
if (mode && !full) {
  const started = performance.now();
  let bytes = 0;
  if (mode === 'whole') {
    bytes = (await readFile(join(dir, 'model.safetensors'))).byteLength;
  } else {
    const model = await openModel(dir);
    const names = mode === 'one' ? [tensor] : [...model.checkpoint.tensors.keys()];
    for (const name of names) bytes += (await model.checkpoint.read(name)).byteLength; // each buffer dropped at once, as a backend uploading weights would
    await model.close();
  }
  console.log(JSON.stringify({ peakMB: peakMB(), bytes, seconds: (performance.now() - started) / 1000 }));
  process.exit(0);
}

function sparseCheckpoint(configPath) {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-bench-'));
  copyFileSync(configPath, join(dir, 'config.json'));
  const config = parseQwen2Config(JSON.parse(readFileSync(configPath, 'utf8')));
  const layout = qwen2CheckpointLayout(config);
  const { header, dataBytes } = safetensorsHeaderFor(Object.fromEntries(layout.map((t) => [t.name, { dtype: 'BF16', shape: t.shape }])));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  writeSync(fd, header);
  ftruncateSync(fd, header.byteLength + dataBytes);
  closeSync(fd);
  return { dir, size: header.byteLength + dataBytes, layout };
}

const child = (...args) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: MB }));
const idle = child('one', fileURLToPath(new URL('../../../fixtures/models/tiny-f32', import.meta.url)), 'model.norm.weight');
const configs = fileURLToPath(new URL('../../../fixtures/configs/', import.meta.url));
const rows = [];
for (const [label, allowWhole] of [['Qwen2-0.5B', true], ['Qwen2-7B', false]]) {
  const { dir, size } = sparseCheckpoint(join(configs, label, 'config.json'));
  try {
    const biggest = 'model.embed_tokens.weight';
    const one = child('one', dir, biggest);
    const all = allowWhole || full ? child('all', dir) : undefined;
    const whole = allowWhole ? child('whole', dir) : undefined;
    rows.push({ label, size, one, all, whole });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const f = (n) => n.toFixed(0).padStart(7);
console.log(`node ${process.version}; peak RSS of a process that only opens a tiny model: ${idle.peakMB.toFixed(0)} MB`);
console.log('checkpoint   file MB | lazy: embed only  peak MB | lazy: every tensor in turn  peak MB  GB/s | baseline: whole file  peak MB | ratio baseline/lazy-all');
for (const r of rows) {
  const whole = r.whole ? `${f(r.whole.peakMB)}` : '   n/a (would need the whole file in RAM)';
  const lazyPeak = (r.all ?? r.one).peakMB;
  const ratio = r.whole ? `${(r.whole.peakMB / lazyPeak).toFixed(1)}x` : `file/peak ${(r.size / MB / lazyPeak).toFixed(1)}x`;
  const all = r.all ? `${f(r.all.bytes / MB)} MB read -> ${f(r.all.peakMB)}  ${(r.all.bytes / r.all.seconds / 1e9).toFixed(2)}` : '   (run with --full)             ';
  console.log(`${r.label.padEnd(11)} ${f(r.size / MB)} | ${f(r.one.bytes / MB)} MB read -> ${f(r.one.peakMB)} | ${all} | ${whole} | ${ratio}`);
}
