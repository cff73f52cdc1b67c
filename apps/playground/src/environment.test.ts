import { describe, expect, it } from 'vitest';
import { describeThreads, formatReport } from './environment.js';

describe('environment report', () => {
  it('explains why threads are unavailable', () => {
    expect(describeThreads(false, false)).toMatchObject({ available: false, reason: expect.stringMatching(/COOP\/COEP/) });
    expect(describeThreads(true, true)).toEqual({ available: true });
  });
  it('formats reasons', () => {
    const lines = formatReport({ webgpu: { available: false, reason: 'no adapter' }, threads: { available: true } });
    expect(lines).toEqual(['WebGPU: unavailable - no adapter', 'WASM threads: available']);
  });
});
