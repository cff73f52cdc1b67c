/** What the page can use, and why a backend is unavailable when it is. */
import type { BackendKind } from './worker/protocol.js';

export interface EnvironmentReport {
  webgpu: { available: boolean; reason?: string; shaderF16?: boolean; adapter?: string };
  threads: { available: boolean; reason?: string; count?: number };
}

/** Describes thread support from the page's isolation state. */
export function describeThreads(crossOriginIsolated: boolean, hasSharedArrayBuffer: boolean, hardwareConcurrency = 1): EnvironmentReport['threads'] {
  if (hasSharedArrayBuffer && crossOriginIsolated) return { available: true, count: wasmThreadCount(hardwareConcurrency) };
  return { available: false, reason: 'multi-threaded WASM needs cross-origin isolation (COOP/COEP headers); running on one thread' };
}

/**
 * Threads for the WASM backend, the inference worker's own included: one per logical CPU, at most 16
 * (backend-wasm's default). Not more than cores: its threads spin briefly while waiting. The page's
 * thread only renders tokens, so it needs no core of its own.
 */
export function wasmThreadCount(hardwareConcurrency: number): number {
  return Math.max(1, Math.min(16, Math.floor(hardwareConcurrency) || 1));
}

/** Describes WebGPU from backend-webgpu's `probeWebGPU` result. */
export function describeWebGPU(probe: { available: true; shaderF16: boolean; adapter?: { info?: { vendor?: string; architecture?: string } } } | { available: false; reason: string }): EnvironmentReport['webgpu'] {
  if (!probe.available) return { available: false, reason: probe.reason };
  const info = probe.adapter?.info;
  const adapter = [info?.vendor, info?.architecture].filter(Boolean).join(' ') || undefined;
  return { available: true, shaderF16: probe.shaderF16, ...(adapter ? { adapter } : {}) };
}

/** WebGPU when an adapter exists, WASM otherwise. */
export function defaultBackend(r: EnvironmentReport): BackendKind {
  return r.webgpu.available ? 'webgpu' : 'wasm';
}

/** Why a backend cannot be chosen here, or undefined when it can. */
export function unavailableReason(r: EnvironmentReport, kind: BackendKind): string | undefined {
  return kind === 'webgpu' && !r.webgpu.available ? r.webgpu.reason ?? 'WebGPU is unavailable' : undefined;
}

/** Renders a report as lines of text for the page. */
export function formatReport(r: EnvironmentReport): string[] {
  const adapter = r.webgpu.adapter ? ` on ${r.webgpu.adapter}` : '';
  return [
    r.webgpu.available
      ? `WebGPU: available${adapter}${r.webgpu.shaderF16 ? ' (shader-f16)' : ' (no shader-f16: f32 compute path)'}`
      : `WebGPU: unavailable - ${r.webgpu.reason}`,
    r.threads.available ? `WASM threads: available (${plural(r.threads.count ?? 1, 'thread')})` : `WASM threads: unavailable - ${r.threads.reason}`,
  ];
}

/** `1 thread`, `4 threads`. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
