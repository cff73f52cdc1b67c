// Test-only: a WebGPU `GPU` object in Node, through npm `webgpu` (Dawn) and the CPU Vulkan driver that
// scripts/setup-test-env.mjs unpacks into .vendor/ (or whatever driver VK_ICD_FILENAMES names).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const LAVAPIPE_ICD = fileURLToPath(new URL('../../.vendor/lavapipe/lvp_icd.json', import.meta.url));
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export type NodeGpu = { gpu: GPU; adapterName: string; shaderF16: boolean } | { gpu: undefined; reason: string };

let cached: Promise<NodeGpu> | undefined;

/**
 * Creates Dawn's GPU object once per test process. The Vulkan loader reads VK_ICD_FILENAMES when the
 * instance is created, so it is set here (turbo does not pass arbitrary environment variables through).
 * The module-level promise keeps the object alive (Dawn crashes if it is collected while in use).
 */
export function nodeGpu(): Promise<NodeGpu> {
  cached ??= (async () => {
    const icds = [LAVAPIPE_ICD, SWIFTSHADER_ICD].filter((p) => existsSync(p));
    if (!process.env.VK_ICD_FILENAMES && icds.length > 0) process.env.VK_ICD_FILENAMES = icds[0];
    let webgpu: typeof import('webgpu');
    try {
      webgpu = await import('webgpu');
    } catch (e) {
      return { gpu: undefined, reason: `npm "webgpu" (Dawn) failed to load: ${(e as Error).message}` };
    }
    const gpu = webgpu.create([]);
    const adapter = await gpu.requestAdapter();
    if (!adapter) {
      return { gpu: undefined, reason: `Dawn offers no WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}; run scripts/setup-test-env.mjs to unpack lavapipe)` };
    }
    const info = adapter.info;
    return { gpu, adapterName: `${info.vendor} ${info.architecture} ${info.description}`.trim(), shaderF16: adapter.features.has('shader-f16') };
  })();
  return cached;
}
