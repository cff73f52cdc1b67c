#!/usr/bin/env node
// Builds test/emulated-kernels.cc with the kernels of native/ as host C++
// on the CUDA thread-model emulation of native/emulate.h, runs it, and exits with its status. It needs
// g++ (C++20) and the CUDA headers, no GPU. Slow (every CUDA thread is an OS thread: minutes on 2 cores),
// so it is its own script (`pnpm --filter @qwen2-ts/backend-cuda test:kernels`), not part of the
// package's `test`: the root `npm test` (scripts/run.mjs) runs it after the turbo pipeline.
// An argument runs only the matching test group: `node scripts/test-emulated-kernels.mjs sample`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const include = process.env.CUDA_HOME ? join(process.env.CUDA_HOME, 'include') : '/usr/local/cuda/include';
if (!existsSync(join(include, 'cuda_runtime.h'))) {
  console.error(`[backend-cuda] CUDA headers not found in ${include}: skipping the emulated kernel tests`);
  process.exit(0);
}
const out = join(pkg, 'build', 'emulated');
mkdirSync(out, { recursive: true });
// Every kernel source but probe.cu (device probing through the CUDA runtime, which this test does not link).
const sources = readdirSync(join(pkg, 'native')).filter((f) => f.endsWith('.cu') && f !== 'probe.cu').sort().map((f) => join(pkg, 'native', f));
const exe = join(out, 'emulated-kernels');
// QWEN2_MAX_GRID_YZ=4: attention passes of more than 4 tokens run in slices, as passes of more than
// 65535 tokens do on a GPU (grid y/z limit), so the slicing is checked at test sizes; likewise
// QWEN2_GEMM_SLICE_ROWS=160 for the pipelined GEMM's slices of rows (4096 on a GPU).
const cc = spawnSync('g++', ['-std=c++20', '-O1', '-DQWEN2_EMULATE', '-DQWEN2_MAX_GRID_YZ=4', '-DQWEN2_GEMM_SLICE_ROWS=160', '-D_GNU_SOURCE', `-I${include}`, '-Wno-attributes', '-x', 'c++', ...sources, '-x', 'none',
  join(pkg, 'test', 'emulated-kernels.cc'), '-o', exe, '-pthread'], { stdio: 'inherit' });
if (cc.status !== 0) process.exit(cc.status ?? 1);
const run = spawnSync(exe, process.argv.slice(2), { stdio: 'inherit' });
process.exit(run.status ?? 1);
