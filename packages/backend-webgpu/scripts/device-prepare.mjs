#!/usr/bin/env node
// Prepares what scripts/device-check.sh needs on a GPU machine that has no node_modules and maybe no
// Node: run it here after `pnpm --filter @qwen2-ts/backend-webgpu build`.
//   build/device/conformance.mjs          core's conformance suite on WebGPU, bundled with a vitest stand-in
//   build/device/bench.mjs                scripts/bench.mjs, bundled
//   build/device/node_modules/webgpu/     npm "webgpu"'s loader, with dawn.node for linux-x64 as dawn.node.xz
//   build/device/node.xz                  this Node binary, stripped and xz-compressed (skipped with --no-node)
// It prints the `carry` list for the device tool.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { deviceBundleOptions } from '../../../scripts/device/bundle-options.mjs';
import { packNode } from '../../../scripts/device/pack-node.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(pkg, 'build', 'device');
mkdirSync(out, { recursive: true });
if (!existsSync(join(pkg, 'dist', 'index.js'))) throw new Error('build the package first (dist/index.js is missing)');

const common = deviceBundleOptions(['webgpu']);
await build({ ...common, entryPoints: [join(pkg, 'scripts', 'device', 'conformance-entry.mjs')], outfile: join(out, 'conformance.mjs') });
await build({ ...common, entryPoints: [join(pkg, 'scripts', 'bench.mjs')], outfile: join(out, 'bench.mjs') });

// npm "webgpu": its ESM loader and package.json as they are, and the linux-x64 dawn.node compressed
// (21 MB -> 5 MB); device-check.sh unpacks it next to the loader, where the loader looks for it.
const webgpuDir = dirname(createRequire(import.meta.url).resolve('webgpu/package.json'));
const pkgOut = join(out, 'node_modules', 'webgpu');
mkdirSync(join(pkgOut, 'dist', 'linux-x64'), { recursive: true });
for (const f of ['index.js', 'package.json']) copyFileSync(join(webgpuDir, f), join(pkgOut, f));
copyFileSync(join(webgpuDir, 'dist', 'linux-x64', 'dawn.node'), join(out, 'dawn.node'));
execFileSync('xz', ['-9', '-f', '-T1', join(out, 'dawn.node')]);

if (!process.argv.includes('--no-node')) packNode(out);
for (const f of ['conformance.mjs', 'bench.mjs', 'dawn.node.xz', 'node.xz']) {
  const p = join(out, f);
  if (existsSync(p)) console.error(`[device-prepare] ${join('build', 'device', f)}: ${(statSync(p).size / 2 ** 20).toFixed(1)} MiB`);
}
console.error('[device-prepare] carry: ["packages/backend-webgpu/build/device"]');
