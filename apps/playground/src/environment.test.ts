import { describe, expect, it } from 'vitest';
import { defaultBackend, describeThreads, describeWebGPU, formatReport, unavailableReason, wasmThreadCount } from './environment.js';

describe('environment report', () => {
  it('explains why threads are unavailable', () => {
    expect(describeThreads(false, false)).toMatchObject({ available: false, reason: expect.stringMatching(/COOP\/COEP/) });
    expect(describeThreads(true, false).available).toBe(false);
    expect(describeThreads(true, true, 8)).toEqual({ available: true, count: 8 });
  });
  it('uses one thread per core, capped', () => {
    expect(wasmThreadCount(0)).toBe(1);
    expect(wasmThreadCount(2)).toBe(2);
    expect(wasmThreadCount(64)).toBe(16);
  });
  it('picks WebGPU only when an adapter exists, and says why not', () => {
    const none = { webgpu: describeWebGPU({ available: false, reason: 'WebGPU offers no adapter (no GPU, or no driver for it)' }), threads: describeThreads(true, true, 2) };
    expect(defaultBackend(none)).toBe('wasm');
    expect(unavailableReason(none, 'webgpu')).toMatch(/no adapter/);
    expect(unavailableReason(none, 'wasm')).toBeUndefined();
    const gpu = { webgpu: describeWebGPU({ available: true, shaderF16: false, adapter: { info: { vendor: 'google', architecture: 'swiftshader' } } }), threads: describeThreads(false, false) };
    expect(defaultBackend(gpu)).toBe('webgpu');
    expect(formatReport(gpu)).toEqual([
      'WebGPU: available on google swiftshader (no shader-f16: f32 compute path)',
      'WASM threads: unavailable - multi-threaded WASM needs cross-origin isolation (COOP/COEP headers); running on one thread',
    ]);
  });
  it('formats reasons', () => {
    const lines = formatReport({ webgpu: { available: false, reason: 'no adapter' }, threads: { available: true, count: 3 } });
    expect(lines).toEqual(['WebGPU: unavailable - no adapter', 'WASM threads: available (3 threads)']);
  });
});
