#!/usr/bin/env node
// Prepares what scripts/device-check.sh needs on a GPU machine that has no node_modules and maybe no
// Node: run it here after `pnpm --filter @qwen2-ts/backend-cuda build`.
//   build/device/conformance.mjs  core's conformance suite on CUDA, bundled with a vitest stand-in
//   build/device/bench.mjs        scripts/bench.mjs, bundled
//   build/device/node.xz          this Node binary, stripped and xz-compressed (skipped with --no-node)
// It prints the `carry` list for the device tool.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { deviceBundleOptions } from '../../../scripts/device/bundle-options.mjs';
import { packNode } from '../../../scripts/device/pack-node.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(pkg, 'build', 'device');
mkdirSync(out, { recursive: true });
if (!existsSync(join(pkg, 'dist', 'index.js'))) throw new Error('build the package first (dist/index.js is missing)');
if (!existsSync(join(pkg, 'build', 'Release', 'qwen2_cuda.node'))) throw new Error('the CUDA addon is not built (build/Release/qwen2_cuda.node is missing)');

const common = deviceBundleOptions([]);
await build({ ...common, entryPoints: [join(pkg, 'scripts', 'device', 'conformance-entry.mjs')], outfile: join(out, 'conformance.mjs') });
await build({ ...common, entryPoints: [join(pkg, 'scripts', 'bench.mjs')], outfile: join(out, 'bench.mjs') });

if (!process.argv.includes('--no-node')) packNode(out);
for (const f of ['conformance.mjs', 'bench.mjs', 'node.xz']) {
  const p = join(out, f);
  if (existsSync(p)) console.error(`[device-prepare] ${join('build', 'device', f)}: ${(statSync(p).size / 2 ** 20).toFixed(1)} MiB`);
}
console.error('[device-prepare] carry: ["packages/backend-cuda/build/Release", "packages/backend-cuda/build/device"]');
