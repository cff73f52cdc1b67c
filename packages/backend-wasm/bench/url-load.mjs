// Loading a model from a folder served over HTTP, with and without reading ahead: writes a random bf16
// checkpoint at Qwen2-0.5B's shapes, serves it from a separate process (as a real server would be) that
// answers each request after `--latency` ms, and loads it with `Qwen2.load(url)` on this backend with
// `readAheadBytes: 0` (one tensor at a time) and with the default, alternating, next to the same files
// read from the local folder.
//
//   node bench/url-load.mjs [--format=q4_0] [--latency=20] [--rounds=3] [--threads=2] [--dir=/tmp] [--read-ahead=BYTES]
// (--read-ahead: the budget of the reading-ahead runs; default Qwen2.load's)
//
// Needs the built dist of core, loader, tokenizer and this package (`node_modules/.bin/pnpm build`).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Qwen2 } from '@qwen2-ts/core';
import { wasmBackend } from '../dist/index.js';
import { writeRandomCheckpoint } from './random-checkpoint.mjs';
import { median, sendFile } from './util.mjs';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));

if (args.has('serve')) serve(args.get('serve'), Number(args.get('latency') ?? 0));
else await main();

/** The server process: files of `dir` with Range support, each response delayed by `latency` ms. */
function serve(dir, latency) {
  const server = createServer((req, res) => setTimeout(() => {
    sendFile(req, res, join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  }, latency));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('disconnect', () => process.exit(0));
}

async function main() {
  const format = args.get('format') ?? 'q4_0';
  const latency = Number(args.get('latency') ?? 20);
  const rounds = Number(args.get('rounds') ?? 3);
  const dir = mkdtempSync(join(args.get('dir') ?? tmpdir(), 'qwen2-url-load-'));
  let server;
  try {
    writeRandomCheckpoint(dir, 'Qwen2-0.5B');
    server = spawn(process.execPath, [fileURLToPath(import.meta.url), `--serve=${dir}`, `--latency=${latency}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const { port } = await new Promise((resolve, reject) => {
      server.once('message', resolve);
      server.once('exit', (code) => reject(new Error(`url-load: the server process exited (${code})`)));
    });
    const url = `http://127.0.0.1:${port}/`;
    const backend = await wasmBackend({ threads: Number(args.get('threads') ?? 2) });
    const budget = args.has('read-ahead') ? Number(args.get('read-ahead')) : undefined;
    const ways = [['local folder', dir, budget], ['URL, one tensor at a time', url, 0], [`URL, read ahead (${budget ?? 'default'})`, url, budget]];
    const times = ways.map(() => []);
    let tokens;
    for (let round = 0; round < rounds; round++) {
      for (const [i, [name, spec, readAheadBytes]] of ways.entries()) {
        const t0 = performance.now();
        const model = await Qwen2.load(spec, { backend, dtype: format, maxContext: 64, readAheadBytes });
        times[i].push((performance.now() - t0) / 1000);
        // Same weights whichever way they came: the same greedy tokens.
        const ids = (await model.generate([9707, 11, 1879], { maxNewTokens: 4, temperature: 0, ignoreEos: true }).result).ids.join(',');
        if (tokens !== undefined && ids !== tokens) throw new Error(`url-load: ${name} gave tokens ${ids}, the local folder ${tokens}`);
        tokens = ids;
        await model.dispose();
        console.error(`[url-load] round ${round + 1}/${rounds}: ${name} ${times[i].at(-1).toFixed(2)} s`);
      }
    }
    await backend.dispose();
    console.log(`Qwen2-0.5B (bf16 checkpoint, ${(statSync(join(dir, 'model.safetensors')).size / 2 ** 20).toFixed(0)} MiB) loaded as ${format}, ${backend.info.threads} threads; the server answers each request after ${latency} ms; ${rounds} alternating rounds`);
    console.log('source                              | load s (median) | range');
    for (const [i, [name]] of ways.entries()) {
      const t = [...times[i]].sort((a, b) => a - b);
      console.log(`${name.padEnd(35)} | ${median(t).toFixed(2).padStart(15)} | ${t[0].toFixed(2)}-${t.at(-1).toFixed(2)}`);
    }
    console.log(`read ahead / one at a time: ${(median(times[1]) / median(times[2])).toFixed(2)}x faster`);
  } finally {
    server?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
