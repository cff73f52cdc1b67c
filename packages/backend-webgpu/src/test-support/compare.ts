// Helpers the backend's tests share: comparing against the reference backend and making inputs.
import type { Backend, Tensor } from '@qwen2-ts/core';
import { maxAbs, maxAbsDiff } from '@qwen2-ts/core/testing';

/** Largest absolute difference, relative to the reference's largest magnitude (at least 1). */
export function relErr(got: Float32Array, want: Float32Array): number {
  return maxAbsDiff(got, want) / Math.max(1, maxAbs(want));
}

/** A new tensor of `rows` x `cols` holding `data`. */
export function put(b: Backend, rows: number, cols: number, data: Float32Array): Tensor {
  const t = b.alloc(rows, cols);
  b.write(t, data);
  return t;
}
