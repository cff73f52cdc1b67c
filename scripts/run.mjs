#!/usr/bin/env node
// One entry point for every root command, so that a fresh clone with only Node 20 and npm needs no
// global installs: it fetches the pinned pnpm through npx, installs with the frozen lockfile, builds
// with turbo, then runs the task. Everything it prints itself goes to stderr so that the CLI's stdout
// (JSON for the contract commands) stays clean.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pnpmVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager.split('@')[1];
const binDir = join(root, 'node_modules', '.bin');
const env = { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}` };
// turbo's telemetry would try the network; the update notifier too.
env.TURBO_TELEMETRY_DISABLED = '1';
env.DO_NOT_TRACK = '1';
env.NPM_CONFIG_UPDATE_NOTIFIER = 'false';

function log(msg) {
  process.stderr.write(`[qwen2-ts] ${msg}\n`);
}

/** Runs a command with inherited stdin/stderr; stdout goes to stderr unless `toStdout`. */
function run(cmd, args, { toStdout = false } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: root,
    env,
    stdio: ['inherit', toStdout ? 'inherit' : process.stderr, 'inherit'],
    shell: process.platform === 'win32',
  });
  if (r.error) throw r.error;
  if (r.signal) process.kill(process.pid, r.signal);
  return r.status ?? 1;
}

function must(cmd, args, opts) {
  const code = run(cmd, args, opts);
  if (code !== 0) {
    log(`'${cmd} ${args.join(' ')}' failed with exit code ${code}`);
    process.exit(code);
  }
}

/**
 * Runs a command, echoing its stdout and handing each stdout line to `onLine`; resolves to its exit code.
 */
function runScanned(cmd, args, onLine, extraEnv = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['inherit', 'pipe', 'inherit'] });
    let pending = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop();
      lines.forEach(onLine);
    });
    child.on('close', (code) => {
      onLine(pending);
      resolve(code ?? 1);
    });
  });
}

/**
 * Runs turbo's test pipeline, echoing its output, and sums vitest's per-package "Tests" lines into
 * `{ code, totals: { passed, failed, skipped } }` for the closing line.
 */
async function runTests(args) {
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const scan = (line) => {
    const m = /:test:\s+Tests\s+(.*)\(\d+\)\s*$/.exec(line.replace(/\x1b\[[0-9;]*m/g, ''));
    if (!m) return;
    for (const part of m[1].split('|')) {
      const [, n, kind] = /(\d+)\s+(passed|failed|skipped|todo)/.exec(part) ?? [];
      if (kind === 'todo') totals.skipped += Number(n);
      else if (kind) totals[kind] += Number(n);
    }
  };
  const code = await runScanned('pnpm', ['exec', 'turbo', 'run', 'build', 'lint', 'test', '--concurrency=2', ...args], scan, { FORCE_COLOR: '0' });
  return { code, totals };
}

/**
 * The CUDA kernels on the host emulation of the CUDA thread model (backend-cuda's `test:kernels`: each
 * kernel against a float64 reference, several minutes on 2 cores), run after the pipeline rather than
 * beside it: it takes both cores. Returns its exit code and its counts of "ok" and "FAIL" checks; where
 * the CUDA headers are missing it says so and runs no check.
 */
async function runKernelChecks() {
  let ok = 0, failed = 0;
  const scan = (line) => {
    if (line.startsWith('ok  ')) ok++;
    else if (line.startsWith('FAIL ')) failed++;
  };
  const code = await runScanned('pnpm', ['--filter', '@qwen2-ts/backend-cuda', 'run', 'test:kernels'], scan);
  return { code, ok, failed };
}

function installNeeded() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  if (!existsSync(marker) || !existsSync(join(binDir, 'pnpm'))) return true;
  return statSync(join(root, 'pnpm-lock.yaml')).mtimeMs > statSync(marker).mtimeMs;
}

function install({ always }) {
  if (!always && !installNeeded()) return;
  log(`installing dependencies (pnpm ${pnpmVersion}, frozen lockfile)`);
  must('npx', ['-y', `pnpm@${pnpmVersion}`, 'install', '--frozen-lockfile']);
}

function turbo(...args) {
  must('pnpm', ['exec', 'turbo', 'run', ...args, '--output-logs=errors-only', '--concurrency=2']);
}

const [task, ...rest] = process.argv.slice(2);
switch (task) {
  case 'test': {
    install({ always: true });
    // Optional system pieces some tests need (each script is idempotent and explains what it does).
    must('node', ['scripts/setup-test-env.mjs']);
    const { code, totals } = await runTests(rest);
    // Checks that cannot fail without a GPU otherwise: every CUDA kernel on the emulation. Filtered
    // runs (`npm test -- --filter=...`) leave them out.
    const kernels = code === 0 && rest.length === 0 ? await runKernelChecks() : undefined;
    if (kernels) process.stdout.write(`\nemulated CUDA kernel checks: ${kernels.ok} ok, ${kernels.failed} failed\n`);
    process.stdout.write(`\ntests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
    if (code !== 0) {
      log(`the test pipeline failed (exit code ${code})`);
      process.exit(code);
    }
    if (kernels && kernels.code !== 0) {
      log(`the emulated CUDA kernel checks failed (exit code ${kernels.code}, ${kernels.failed} failed checks)`);
      process.exit(kernels.code);
    }
    must('pnpm', ['exec', 'changeset', 'status'], { toStdout: true });
    break;
  }
  case 'build':
    install({ always: false });
    must('pnpm', ['exec', 'turbo', 'run', 'build', '--concurrency=2', ...rest], { toStdout: true });
    break;
  case 'bench':
    install({ always: false });
    must('pnpm', ['exec', 'turbo', 'run', 'bench', '--concurrency=1', ...rest], { toStdout: true });
    break;
  case 'docs':
    install({ always: false });
    turbo('build', '--filter=./packages/*');
    must('pnpm', ['exec', 'typedoc', ...rest], { toStdout: true });
    break;
  case 'playground':
    install({ always: false });
    turbo('build', '--filter=@qwen2-ts/playground...');
    must('pnpm', ['--filter', '@qwen2-ts/playground', 'run', rest[0] ?? 'preview'], { toStdout: true });
    break;
  case 'qwen2': {
    install({ always: false });
    turbo('build', '--filter=@qwen2-ts/cli...');
    process.exit(run(process.execPath, [join(root, 'packages/cli/dist/main.js'), ...rest], { toStdout: true }));
    break;
  }
  default:
    log(`unknown task '${task ?? ''}': use test, build, bench, docs, playground or qwen2`);
    process.exit(2);
}
