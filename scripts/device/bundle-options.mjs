// esbuild options shared by the backends' device-prepare scripts: one ESM file per entry for Node 20,
// with vitest replaced by the stand-in next to this file (the GPU machine has no node_modules).
import { fileURLToPath } from 'node:url';

/** @param {string[]} external - packages that stay outside the bundle (native addons such as npm "webgpu") */
export function deviceBundleOptions(external = []) {
  return {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    external,
    alias: { vitest: fileURLToPath(new URL('./vitest-shim.mjs', import.meta.url)) },
    // Some dependencies are CommonJS and call require() for Node built-ins.
    banner: { js: "import { createRequire as __qwen2CreateRequire } from 'node:module'; const require = __qwen2CreateRequire(import.meta.url);" },
  };
}
