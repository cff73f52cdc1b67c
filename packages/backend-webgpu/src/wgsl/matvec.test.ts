import { describe, expect, it } from 'vitest';
import { matvecKernel, matvecLayout, matvecRowsPerWorkgroup } from './matvec.js';

describe('matvecLayout', () => {
  it('reads x 4 values at a time only where its rows are 16-byte aligned and its binding is its own', () => {
    // slots: x, then the outputs (see matvecTensorCount); equal numbers share a buffer.
    expect(matvecLayout(896, 896, 0, [0, 1], false)).toEqual({ lanes: 64, steps: 2, vec4: true, pairs: false });
    expect(matvecLayout(3584, 3584, 3584 * 2, [0, 1, 2, 3], false)).toEqual({ lanes: 64, steps: 4, vec4: true, pairs: false });
    expect(matvecLayout(96, 90, 0, [0, 1], false).vec4).toBe(false); // K % 4 != 0
    expect(matvecLayout(96, 96, 6, [0, 1], false).vec4).toBe(false); // a row at a 24-byte offset
    expect(matvecLayout(96, 96, 0, [0, 1, 0], false).vec4).toBe(false); // x's buffer also written
    expect(matvecLayout(96, 96, 0, [0, 1, 1], false).vec4).toBe(true); // outputs may share theirs
  });

  it('computes a single quantized weight two rows per thread', () => {
    for (const format of ['q4_0', 'q8_0'] as const) {
      const layout = matvecLayout(896, 896, 0, [0, 1], false, format);
      expect(layout.pairs, format).toBe(true);
      expect(matvecRowsPerWorkgroup(layout)).toBe(2);
      expect(matvecRowsPerWorkgroup(matvecLayout(96, 96, 0, [0, 1], false, format))).toBe(8);
    }
    for (const format of ['f32', 'f16', 'bf16'] as const) expect(matvecLayout(896, 896, 0, [0, 1], false, format).pairs, format).toBe(false);
    // Stacked weights (no single format) keep one row per thread.
    expect(matvecLayout(896, 896, 0, [0, 1, 2], false).pairs).toBe(false);
    expect(() => matvecKernel('q4_0', false, [0, 1, 2], { lanes: 64, steps: 2, vec4: true, pairs: true }, false, { weights: 2 })).toThrow(/matvec shape/);
  });

  it('keeps rotary pairs at two rows per workgroup or more', () => {
    expect(matvecLayout(3584, 3584, 0, [0, 1, 2, 3], true).lanes).toBe(32);
    expect(matvecLayout(96, 96, 0, [0, 1, 2, 3], true).lanes).toBe(16);
  });
});

describe('matvecKernel', () => {
  it('declares x as vec4<f32> on the vec4 layout, with the norm weight, and f32 otherwise', () => {
    const shape = { weights: 1, norm: true };
    const v4 = matvecKernel('f16', false, [0, 1, 2], { lanes: 64, steps: 2, vec4: true, pairs: false }, false, shape);
    expect(v4.code).toContain('var<storage, read_write> a0: array<vec4<f32>>;');
    expect(v4.code).toContain('var<storage, read_write> a1: array<f32>;');
    expect(v4.code).toContain('var<storage, read> g: array<vec4<f32>>;');
    const scalar = matvecKernel('f16', false, [0, 1, 2], { lanes: 64, steps: 2, vec4: false, pairs: false }, false, shape);
    expect(scalar.code).toContain('var<storage, read_write> a0: array<f32>;');
    expect(scalar.code).toContain('var<storage, read> g: array<f32>;');
    expect(v4.key).not.toBe(scalar.key);
    expect(() => matvecKernel('f16', false, [0, 1, 0], { lanes: 64, steps: 2, vec4: true, pairs: false }, false, shape)).toThrow(/shares its binding/);
  });
});
