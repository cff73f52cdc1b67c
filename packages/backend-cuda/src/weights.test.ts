import { describe, expect, it } from 'vitest';
import type { HostWeight } from '@qwen2-ts/core';
import { deviceWeightLayout, validateHostWeight, weightParts } from './weights.js';

describe('deviceWeightLayout', () => {
  it('sizes unquantized formats by their element width', () => {
    expect(deviceWeightLayout('f32', 3, 5)).toEqual({ dataBytes: 60, scalesOffset: -1, scalesBytes: 0, totalBytes: 60 });
    expect(deviceWeightLayout('bf16', 896, 4864).totalBytes).toBe(896 * 4864 * 2);
    expect(deviceWeightLayout('f16', 1, 7).totalBytes).toBe(14);
  });
  it('puts the f16 scales of q8_0 / q4_0 after the quants, 256-byte aligned', () => {
    // 7B down_proj: [3584, 18944] -> 67.9M values, 2.12M blocks.
    const n = 3584 * 18944;
    const q8 = deviceWeightLayout('q8_0', 3584, 18944);
    expect(q8).toEqual({ dataBytes: n, scalesOffset: n, scalesBytes: (n / 32) * 2, totalBytes: n + (n / 32) * 2 });
    const q4 = deviceWeightLayout('q4_0', 3, 32);
    expect(q4.dataBytes).toBe(48);
    expect(q4.scalesOffset).toBe(256);
    expect(q4.scalesBytes).toBe(6);
    expect(q4.totalBytes).toBe(262);
    // q4_0 takes 18 bytes per 32 values, q8_0 34: the ratios ggml's formats have.
    expect(deviceWeightLayout('q4_0', 4096, 4096).totalBytes / (4096 * 4096 / 32)).toBeCloseTo(18, 3);
    expect(deviceWeightLayout('q8_0', 4096, 4096).totalBytes / (4096 * 4096 / 32)).toBeCloseTo(34, 3);
  });
});

describe('validateHostWeight', () => {
  const ok: HostWeight[] = [
    { format: 'f32', rows: 2, cols: 3, data: new Float32Array(6) },
    { format: 'bf16', rows: 2, cols: 3, data: new Uint16Array(6) },
    { format: 'q8_0', rows: 2, cols: 32, scales: new Uint16Array(2), quants: new Int8Array(64) },
    { format: 'q4_0', rows: 2, cols: 64, scales: new Uint16Array(4), quants: new Uint8Array(64) },
  ];
  it('accepts the canonical layouts of core', () => {
    for (const w of ok) expect(() => validateHostWeight(w, 'w')).not.toThrow();
  });
  it('names the weight and the mismatch', () => {
    expect(() => validateHostWeight({ format: 'f32', rows: 2, cols: 3, data: new Float32Array(5) }, 'model.norm')).toThrow(/model\.norm.*6 values, got 5/);
    expect(() => validateHostWeight({ format: 'f16', rows: 0, cols: 3, data: new Uint16Array(0) }, 'x')).toThrow(/invalid shape \[0, 3\]/);
    expect(() => validateHostWeight({ format: 'q8_0', rows: 1, cols: 48, scales: new Uint16Array(1), quants: new Int8Array(48) }, 'x')).toThrow(/multiple of 32/);
    expect(() => validateHostWeight({ format: 'q4_0', rows: 1, cols: 32, scales: new Uint16Array(1), quants: new Uint8Array(32) }, 'x')).toThrow(/16 quant bytes/);
    expect(() => validateHostWeight({ format: 'q8_0', rows: 1, cols: 32, scales: new Uint16Array(2), quants: new Int8Array(32) }, 'x')).toThrow(/1 scales/);
    expect(() => validateHostWeight({ format: 'bf16', rows: 1, cols: 2, data: new Float32Array(2) } as unknown as HostWeight, 'x')).toThrow(/Uint16Array/);
    expect(() => validateHostWeight({ format: 'q3_k', rows: 1, cols: 2 } as unknown as HostWeight, 'x')).toThrow(/unknown format 'q3_k'/);
    // A valid q4_k weight, which this backend has no kernels for (core sends it q4_0 instead).
    expect(() => validateHostWeight({ format: 'q4_k', rows: 1, cols: 256, blocks: new Uint8Array(144) }, 'x')).toThrow(/weight 'x': the cuda backend does not store q4_k/);
  });
  it('uploads quants before scales and values alone otherwise', () => {
    const q = ok[2] as Extract<HostWeight, { format: 'q8_0' }>;
    expect(weightParts(q)).toEqual({ data: q.quants, scales: q.scales });
    expect(weightParts(ok[0] as Extract<HostWeight, { format: 'f32' }>)).toEqual({ data: (ok[0] as { data: Float32Array }).data });
  });
});
