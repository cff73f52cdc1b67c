import { probeWebGPU } from '@qwen2-ts/backend-webgpu';
import { describeThreads, formatReport } from './environment.js';

const gpu = await probeWebGPU();
const report = {
  webgpu: gpu.available ? { available: true, shaderF16: gpu.shaderF16 } : { available: false, reason: gpu.reason },
  threads: describeThreads(globalThis.crossOriginIsolated === true, typeof SharedArrayBuffer !== 'undefined'),
};
const section = document.getElementById('environment')!;
section.replaceChildren(...formatReport(report).map((line) => Object.assign(document.createElement('p'), { textContent: line })));
