#!/usr/bin/env node
// Optional build of the CUDA addon. Where nvcc (or cmake) is missing it prints one line and exits 0,
// leaving no addon: the package then reports `available: false` with the reason at run time.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
const nvcc = process.env.CUDACXX || which('nvcc') || (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : '');
if (process.env.QWEN2_SKIP_CUDA === '1') {
  console.error('[backend-cuda] QWEN2_SKIP_CUDA=1: skipping the CUDA addon build');
  process.exit(0);
}
if (!nvcc) {
  console.error('[backend-cuda] nvcc not found (set CUDACXX or add the CUDA toolkit to PATH): skipping the CUDA addon build');
  rmSync(join(pkg, 'build'), { recursive: true, force: true });
  process.exit(0);
}
if (!which('cmake')) {
  console.error('[backend-cuda] cmake not found: skipping the CUDA addon build');
  process.exit(0);
}
// CMake does not notice a changed QWEN2_CUDA_ARCHS (an environment variable): start from a clean build
// folder when the architectures differ from the last build's.
const archs = process.env.QWEN2_CUDA_ARCHS || '80-real,90-real,90-virtual';
const stamp = join(pkg, 'build', 'qwen2-cuda-archs.txt');
if (existsSync(join(pkg, 'build')) && (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== archs)) {
  rmSync(join(pkg, 'build', 'CMakeCache.txt'), { force: true });
  rmSync(join(pkg, 'build', 'CMakeFiles'), { recursive: true, force: true });
}
const cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', '--CDCMAKE_CUDA_COMPILER=' + nvcc, '--CDCMAKE_BUILD_TYPE=Release'], {
  cwd: pkg,
  stdio: ['ignore', process.stderr, 'inherit'],
  env: { ...process.env, CUDACXX: nvcc },
});
if (r.status !== 0) {
  console.error('[backend-cuda] the CUDA addon build failed (see above)');
  process.exit(r.status ?? 1);
}
writeFileSync(stamp, archs);
console.error(`[backend-cuda] built ${join('build', 'Release', 'qwen2_cuda.node')} for ${archs}`);
