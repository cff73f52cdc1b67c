import { QUANT_BLOCK, type HostWeight } from '@qwen2-ts/core';

/** Columns a row is padded to on the device (f32/f16/bf16: a multiple of 8, so kernels read 8 at a time). */
export function paddedCols(w: { format: HostWeight['format']; cols: number }): number {
  return w.format === 'q8_0' || w.format === 'q4_0' ? w.cols : Math.ceil(w.cols / 8) * 8;
}

/** Bytes of one stored row's quants or values (q formats: without the scales). */
function valueBytes(format: HostWeight['format'], kp: number): number {
  switch (format) {
    case 'f32': return kp * 4;
    case 'f16': case 'bf16': return kp * 2;
    case 'q8_0': return kp;
    case 'q4_0': return kp / 2;
    case 'q4_k': throw new RangeError('the webgpu backend does not store q4_k');
  }
}

/** Bytes one stored row takes in a chunk buffer, its f16 block scales included (q formats). */
export function rowBytes(format: HostWeight['format'], kp: number): number {
  return valueBytes(format, kp) + (format === 'q8_0' || format === 'q4_0' ? (kp / QUANT_BLOCK) * 2 : 0);
}

/**
 * Fills `dst` (a mapped device buffer) with rows `r0 .. r0+rows-1` in the device layout. q formats: the
 * chunk's quants, then its f16 block scales (`K/32` per row) right after them, in the same buffer, so a
 * weight takes one binding (kernels find the scales from the chunk's row count).
 */
export function fillRows(w: HostWeight, r0: number, rows: number, kp: number, dst: ArrayBuffer): void {
  const K = w.cols;
  switch (w.format) {
    case 'f32': {
      const d = new Float32Array(dst);
      if (kp === K) d.set(w.data.subarray(r0 * K, (r0 + rows) * K));
      else for (let r = 0; r < rows; r++) d.set(w.data.subarray((r0 + r) * K, (r0 + r + 1) * K), r * kp);
      return;
    }
    case 'f16':
    case 'bf16': {
      const d = new Uint16Array(dst);
      if (kp === K) d.set(w.data.subarray(r0 * K, (r0 + rows) * K));
      else for (let r = 0; r < rows; r++) d.set(w.data.subarray((r0 + r) * K, (r0 + r + 1) * K), r * kp);
      return;
    }
    case 'q8_0':
    case 'q4_0': {
      const qb = valueBytes(w.format, K);
      new Uint8Array(dst).set(new Uint8Array(w.quants.buffer, w.quants.byteOffset + r0 * qb, rows * qb));
      const nb = K / QUANT_BLOCK;
      new Uint16Array(dst, rows * qb, rows * nb).set(w.scales.subarray(r0 * nb, (r0 + rows) * nb));
      return;
    }
    case 'q4_k':
      throw new RangeError('the webgpu backend does not store q4_k');
  }
}
