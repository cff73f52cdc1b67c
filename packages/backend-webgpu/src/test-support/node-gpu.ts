// Test-only: WebGPU `GPU` objects in Node, through npm `webgpu` (Dawn) and the CPU Vulkan drivers found
// here: Mesa's lavapipe (has shader-f16), unpacked into .vendor/ by scripts/setup-test-env.mjs, and
// SwiftShader (no shader-f16), which comes with Debian's chromium (installed by the playground's setup).
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const LAVAPIPE_ICD = fileURLToPath(new URL('../../.vendor/lavapipe/lvp_icd.json', import.meta.url));
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export type NodeGpu = { gpu: GPU; adapterName: string; shaderF16: boolean } | { gpu: undefined; reason: string };

/** Which adapter: lavapipe, SwiftShader, or whatever Dawn offers first (a real GPU when there is one). */
export type AdapterChoice = 'llvmpipe' | 'SwiftShader' | 'default';

const cache = new Map<AdapterChoice, Promise<NodeGpu>>();

/**
 * Creates Dawn's GPU object for an adapter once per test process. The Vulkan loader reads
 * VK_ICD_FILENAMES when an instance is created, so it is set here (turbo does not pass arbitrary
 * environment variables through). The module-level map keeps the objects alive: Dawn crashes if one is
 * collected while its adapter or device is in use.
 */
export function nodeGpu(choice: AdapterChoice = 'default'): Promise<NodeGpu> {
  let p = cache.get(choice);
  if (!p) {
    p = create(choice);
    cache.set(choice, p);
  }
  return p;
}

async function create(choice: AdapterChoice): Promise<NodeGpu> {
  const icds = [LAVAPIPE_ICD, SWIFTSHADER_ICD].filter((f) => existsSync(f));
  // With a real GPU, leave the Vulkan loader's own driver list alone.
  if (!process.env.VK_ICD_FILENAMES && icds.length > 0 && !hasGpuDevice()) process.env.VK_ICD_FILENAMES = icds.join(':');
  let webgpu: typeof import('webgpu');
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    return { gpu: undefined, reason: `npm "webgpu" (Dawn) failed to load: ${(e as Error).message}` };
  }
  const gpu = webgpu.create(choice === 'default' ? [] : [`adapter=${choice}`]);
  const adapter = await gpu.requestAdapter();
  const info = adapter?.info;
  const name = `${info?.vendor ?? ''} ${info?.description ?? ''}`.trim();
  if (!adapter || (choice !== 'default' && !name.toLowerCase().includes(choice.toLowerCase()))) {
    return { gpu: undefined, reason: `no ${choice === 'default' ? '' : `${choice} `}WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}; scripts/setup-test-env.mjs unpacks lavapipe)` };
  }
  return { gpu, adapterName: name, shaderF16: adapter.features.has('shader-f16') };
}

function hasGpuDevice(): boolean {
  if (existsSync('/dev/nvidia0')) return true;
  try {
    return readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** The adapter most tests use: lavapipe when unpacked here, else whatever Dawn offers (a real GPU). */
export async function primaryGpu(): Promise<NodeGpu> {
  const l = await nodeGpu('llvmpipe');
  return l.gpu ? l : nodeGpu('default');
}
