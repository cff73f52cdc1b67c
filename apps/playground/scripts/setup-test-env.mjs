#!/usr/bin/env node
// Installs Debian's Chromium for the playground's end-to-end browser test (playwright-core drives it; the
// test never downloads a browser itself). Idempotent: does nothing when /usr/bin/chromium exists.
//
// Chromium brings SwiftShader, the CPU Vulkan driver that gives headless Chromium a WebGPU adapter
// (`--enable-unsafe-webgpu`), so the test can exercise the WebGPU backend on a machine without a GPU.
//
// Fails (exit 1) when it should be able to install but cannot, so that the browser test is not silently
// lost; on a system without apt-get it says so and exits 0, and the browser test fails naming the
// missing executable (set CHROMIUM_PATH to use another Chromium).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const log = (msg) => process.stderr.write(`[playground setup] ${msg}\n`);

function aptGet(args) {
  return spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

function main() {
  if (existsSync(CHROMIUM)) {
    log(`chromium already installed (${CHROMIUM})`);
    return 0;
  }
  if (process.platform !== 'linux' || (!existsSync('/usr/bin/apt-get') && !existsSync('/bin/apt-get'))) {
    log(`no ${CHROMIUM} and no apt-get here: install Chromium and set CHROMIUM_PATH for the browser test`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log(`no ${CHROMIUM}; installing it needs root: run \`apt-get install -y chromium\``);
    return 1;
  }
  const t0 = Date.now();
  log('installing chromium with apt-get (Debian package; includes the SwiftShader WebGPU adapter)');
  const install = ['install', '-y', '--no-install-recommends', 'chromium'];
  let r = aptGet(install);
  if (r.status !== 0) {
    // Fresh images often have empty package lists.
    aptGet(['update']);
    r = aptGet(install);
  }
  if (r.status !== 0 || !existsSync(CHROMIUM)) {
    log(`apt-get install chromium failed (${r.status}):\n${(r.stderr ?? '').slice(-2000)}`);
    return 1;
  }
  log(`chromium installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return 0;
}

process.exit(main());
