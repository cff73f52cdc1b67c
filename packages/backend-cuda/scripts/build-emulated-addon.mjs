#!/usr/bin/env node
// Builds build/emulated/qwen2_cuda_emu.node: the real addon (native/addon.cc and every kernel) compiled as
// host C++ on the CUDA emulation (native/emulate.h, test/emulated-runtime.cc). With
// QWEN2_CUDA_ADDON=<that file>, the TypeScript backend and core's conformance suite run end to end on
// the CPU where no GPU exists — slowly (every CUDA thread is an OS thread):
//   node scripts/build-emulated-addon.mjs
//   QWEN2_CUDA_ADDON=$PWD/build/emulated/qwen2_cuda_emu.node node build/device/conformance.mjs --filter 'ops vs'
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(pkg, 'package.json'));
const naa = require('node-addon-api').include.replace(/"/g, '');
const napi = join(dirname(require.resolve('cmake-js/package.json')), '..', 'node-api-headers', 'include');
const cuda = process.env.CUDA_HOME ? join(process.env.CUDA_HOME, 'include') : '/usr/local/cuda/include';
mkdirSync(join(pkg, 'build', 'emulated'), { recursive: true });
// Every kernel source, as CMake's glob takes them.
const kernels = readdirSync(join(pkg, 'native')).filter((f) => f.endsWith('.cu')).sort().map((f) => join(pkg, 'native', f));
const r = spawnSync('g++', ['-std=c++20', '-O1', '-fPIC', '-shared', '-DQWEN2_EMULATE', '-D_GNU_SOURCE', '-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS',
  `-I${cuda}`, `-I${napi}`, `-I${naa}`, '-Wno-attributes', '-include', join(pkg, 'native', 'emulate.h'), '-x', 'c++', ...kernels, '-x', 'none',
  join(pkg, 'native', 'addon.cc'), join(pkg, 'test', 'emulated-runtime.cc'), '-o', join(pkg, 'build', 'emulated', 'qwen2_cuda_emu.node'), '-pthread'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
