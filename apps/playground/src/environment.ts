/** What the page can use, and why a backend is unavailable when it is. */
export interface EnvironmentReport {
  webgpu: { available: boolean; reason?: string; shaderF16?: boolean };
  threads: { available: boolean; reason?: string };
}

/** Describes thread support from the page's isolation state. */
export function describeThreads(crossOriginIsolated: boolean, hasSharedArrayBuffer: boolean): EnvironmentReport['threads'] {
  if (hasSharedArrayBuffer && crossOriginIsolated) return { available: true };
  return { available: false, reason: 'multi-threaded WASM needs cross-origin isolation (COOP/COEP headers); running on one thread' };
}

/** Renders a report as lines of text for the page. */
export function formatReport(r: EnvironmentReport): string[] {
  return [
    r.webgpu.available ? `WebGPU: available${r.webgpu.shaderF16 ? ' (shader-f16)' : ' (no shader-f16: f32 path)'}` : `WebGPU: unavailable - ${r.webgpu.reason}`,
    r.threads.available ? 'WASM threads: available' : `WASM threads: unavailable - ${r.threads.reason}`,
  ];
}
