#!/usr/bin/env node
// Prepares what some tests need beyond npm packages (for example a CPU Vulkan driver for the WebGPU
// tests, or Chromium for browser tests). Each package that needs something has its own
// `scripts/setup-test-env.mjs`; this runs them all in order. Each one is idempotent, installs into a
// folder of the repo where it can, and says what it did on stderr.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const group of ['packages', 'apps']) {
  for (const name of readdirSync(join(root, group)).sort()) {
    const script = join(root, group, name, 'scripts', 'setup-test-env.mjs');
    if (!existsSync(script)) continue;
    process.stderr.write(`[qwen2-ts] test environment for ${group}/${name}\n`);
    const r = spawnSync(process.execPath, [script], { cwd: join(root, group, name), stdio: ['ignore', process.stderr, 'inherit'] });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
