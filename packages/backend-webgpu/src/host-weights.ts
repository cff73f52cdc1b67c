import { QUANT_BLOCK, type HostWeight } from '@qwen2-ts/core';

/** Columns a row is padded to on the device (f32/f16/bf16: a multiple of 8, so kernels read 8 at a time). */
export function paddedCols(w: { format: HostWeight['format']; cols: number }): number {
  return w.format === 'q8_0' || w.format === 'q4_0' ? w.cols : Math.ceil(w.cols / 8) * 8;
}

/** Bytes of one stored row (quants only for q formats). */
export function rowBytes(format: HostWeight['format'], kp: number): number {
  switch (format) {
    case 'f32': return kp * 4;
    case 'f16': case 'bf16': return kp * 2;
    case 'q8_0': return kp;
    case 'q4_0': return kp / 2;
  }
}

/** Fills `dst` (a mapped device buffer) with rows `r0 .. r0+rows-1` in the device layout. */
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
      new Int8Array(dst).set(w.quants.subarray(r0 * K, (r0 + rows) * K));
      return;
    case 'q4_0':
      new Uint8Array(dst).set(w.quants.subarray((r0 * K) / 2, ((r0 + rows) * K) / 2));
      return;
  }
}

/** Fills `dst` with the f16 scales of rows `r0 .. r0+rows-1` (q formats). */
export function fillScales(w: HostWeight & { scales: Uint16Array }, r0: number, rows: number, dst: ArrayBuffer): void {
  const nb = w.cols / QUANT_BLOCK;
  new Uint16Array(dst).set(w.scales.subarray(r0 * nb, (r0 + rows) * nb));
}
