#!/usr/bin/env node
// Installs a CPU Vulkan driver for the WebGPU tests into packages/backend-webgpu/.vendor/ (gitignored):
// Mesa 25 lavapipe from Debian bookworm-backports, unpacked with `apt-get download` + `dpkg -x` through a
// private apt sources list and state directory, so nothing of the system's apt state or packages changes.
// Only the Vulkan loader (libvulkan1, ~150 kB) is installed system-wide when missing, because Dawn
// dlopens `libvulkan.so.1` through the normal library search path.
//
// Why backports: Debian 12's own lavapipe (Mesa 22.3) lacks features Dawn requires. Why not SwiftShader
// (the no-shader-f16 driver): it comes with Debian's chromium, a large install; the f32 kernels are the
// same code whatever the adapter, and the tests run them on lavapipe with f16 disabled (and on SwiftShader
// too when /usr/lib/chromium/vk_swiftshader_icd.json happens to exist).
//
// Idempotent and fast when done (a stamp file). Never fails the whole test run for a missing driver: when
// it cannot install one it says why on stderr and exits 0, and the tests skip with that reason.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const STAMP_VERSION = 'lavapipe-bookworm-backports-v1';
const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const vendor = join(pkgDir, '.vendor');
const lvpDir = join(vendor, 'lavapipe');
const rootDir = join(lvpDir, 'root');
const aptDir = join(vendor, 'apt');
const stamp = join(lvpDir, 'stamp');
const icdPath = join(lvpDir, 'lvp_icd.json');

const log = (msg) => process.stderr.write(`[backend-webgpu setup] ${msg}\n`);

function run(cmd, args, { allowFail = false } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.error) {
    if (allowFail) return { ok: false, out: '', err: String(r.error.message) };
    throw new Error(`${cmd} could not be started: ${r.error.message}`);
  }
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  return { ok: r.status === 0, out: r.stdout, err: r.stderr };
}

function hasVulkanLoader() {
  const r = run('ldconfig', ['-p'], { allowFail: true });
  if (r.ok && /\blibvulkan\.so\.1\b/.test(r.out)) return true;
  return ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1'].some((p) => existsSync(p));
}

function osCodename() {
  try {
    const m = /^VERSION_CODENAME=(\S+)/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

function lvpLibPath() {
  return join(rootDir, 'usr', 'lib', 'x86_64-linux-gnu', 'libvulkan_lvp.so');
}

function done() {
  return existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === STAMP_VERSION && existsSync(icdPath) && existsSync(lvpLibPath());
}

function ensureVulkanLoader() {
  if (hasVulkanLoader()) return;
  if (process.getuid?.() !== 0) throw new Error('the Vulkan loader libvulkan.so.1 is missing and installing it needs root: run `apt-get install -y libvulkan1`');
  log('installing the Vulkan loader (libvulkan1) system-wide');
  const args = ['install', '-y', '--no-install-recommends', 'libvulkan1'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', args, { encoding: 'utf8', env });
  if (r.status !== 0) {
    // Fresh images often have empty package lists.
    spawnSync('apt-get', ['update'], { encoding: 'utf8', env });
    r = spawnSync('apt-get', args, { encoding: 'utf8', env });
  }
  if (r.status !== 0 || !hasVulkanLoader()) throw new Error(`apt-get install libvulkan1 failed:\n${(r.stderr ?? '').slice(-2000)}`);
}

function installLavapipe() {
  const codename = osCodename();
  if (codename !== 'bookworm') log(`this is not Debian 12 (codename ${codename ?? 'unknown'}); trying its own suites anyway`);
  const suite = codename ?? 'bookworm';
  const target = suite === 'bookworm' ? 'bookworm-backports' : suite;
  rmSync(lvpDir, { recursive: true, force: true });
  mkdirSync(join(aptDir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(aptDir, 'cache', 'archives', 'partial'), { recursive: true });
  mkdirSync(join(aptDir, 'debs'), { recursive: true });
  mkdirSync(rootDir, { recursive: true });
  const sources = join(aptDir, 'sources.list');
  const lines = [`deb http://deb.debian.org/debian ${suite} main`, `deb http://deb.debian.org/debian ${suite}-updates main`];
  if (suite === 'bookworm') lines.push('deb http://deb.debian.org/debian bookworm-backports main');
  writeFileSync(sources, lines.join('\n') + '\n');
  // A private apt: own sources, lists and caches; the system's dpkg status is only read, to know what is
  // already installed (so only what lavapipe lacks is fetched).
  const o = [
    '-o', `Dir::Etc::SourceList=${sources}`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${join(aptDir, 'cache')}`,
    '-o', 'Debug::NoLocking=1',
    '-o', 'APT::Sandbox::User=root',
  ];
  log(`apt-get update (private lists in ${aptDir})`);
  run('apt-get', [...o, 'update']);
  const sim = run('apt-get', [...o, '-s', 'install', '--no-install-recommends', `mesa-vulkan-drivers/${target}`, 'patchelf']);
  // Lines look like: "Inst libdrm2 [2.4.114-1+b1] (2.4.123-1~bpo12+1 Debian Backports:... [amd64])".
  const wanted = [];
  for (const m of sim.out.matchAll(/^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) /gm)) {
    if (m[1] === 'libvulkan1') continue; // the loader is handled above, system-wide
    wanted.push(`${m[1]}=${m[2]}`);
  }
  if (!wanted.some((w) => w.startsWith('mesa-vulkan-drivers='))) {
    // Already installed system-wide at that version? Then fetch it anyway: we need the files unpacked here.
    const v = /mesa-vulkan-drivers is already the newest version \((\S+)\)/.exec(sim.out + sim.err)?.[1];
    if (!v) throw new Error(`could not resolve mesa-vulkan-drivers from ${target}:\n${sim.out.slice(-1500)}${sim.err.slice(-1500)}`);
    wanted.push(`mesa-vulkan-drivers=${v}`);
  }
  log(`downloading ${wanted.join(' ')}`);
  const debDir = join(aptDir, 'debs');
  for (const f of readdirSync(debDir)) rmSync(join(debDir, f));
  const r = spawnSync('apt-get', [...o, 'download', ...wanted], { cwd: debDir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`apt-get download failed:\n${(r.stderr ?? '').slice(-2000)}`);
  for (const f of readdirSync(debDir)) if (f.endsWith('.deb')) run('dpkg', ['-x', join(debDir, f), rootDir]);
  for (const f of readdirSync(debDir)) rmSync(join(debDir, f));
  const lib = lvpLibPath();
  if (!existsSync(lib)) throw new Error(`libvulkan_lvp.so not found after unpacking (${lib})`);
  // DT_RPATH (not RUNPATH) so that the unpacked newer libdrm etc. win over the system's, transitively.
  const patchelf = existsSync(join(rootDir, 'usr', 'bin', 'patchelf')) ? join(rootDir, 'usr', 'bin', 'patchelf') : 'patchelf';
  run(patchelf, ['--force-rpath', '--set-rpath', '$ORIGIN', lib]);
  // A relative library_path with a slash is resolved against the manifest's folder by the Vulkan loader,
  // so the folder can move with the repository.
  writeFileSync(icdPath, JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: './root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so', api_version: '1.4.305' } }, null, 2) + '\n');
  writeFileSync(stamp, STAMP_VERSION + '\n');
}

function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    log(`skipped: the CPU Vulkan driver is only set up on linux-x64 (this is ${process.platform}-${process.arch}); tests use whatever adapter exists`);
    return;
  }
  if (!existsSync('/usr/bin/apt-get') && !existsSync('/bin/apt-get')) {
    log('skipped: no apt-get here (not Debian); tests use whatever WebGPU adapter exists');
    return;
  }
  try {
    ensureVulkanLoader();
    if (done()) {
      log(`lavapipe already set up (${icdPath})`);
      return;
    }
    const t0 = Date.now();
    installLavapipe();
    log(`lavapipe ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${icdPath}`);
  } catch (e) {
    log(`could not set up a CPU Vulkan driver: ${e.message}`);
    log('the WebGPU tests will use another adapter if one exists, or skip saying why');
  }
}

main();
