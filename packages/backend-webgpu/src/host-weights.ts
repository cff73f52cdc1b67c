import { QUANT_BLOCK, type HostWeight } from '@qwen2-ts/core';
import { WebGPUUsageError } from './errors.js';

/** Exact f16 bit pattern to f32. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const bfView = new DataView(new ArrayBuffer(4));
/** Exact bf16 bit pattern to f32. */
export function bf16ToF32(h: number): number {
  bfView.setUint32(0, h << 16, true);
  return bfView.getFloat32(0, true);
}

/**
 * Checks that a host weight's arrays match its shape and format (the layouts of core's `HostWeight`).
 * @throws RangeError naming the weight and the mismatch
 */
export function validateHostWeight(w: HostWeight, name: string): void {
  const { rows, cols } = w;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new RangeError(`weight '${name}': invalid shape [${rows}, ${cols}]`);
  const n = rows * cols;
  switch (w.format) {
    case 'f32':
      if (!(w.data instanceof Float32Array) || w.data.length !== n) throw new RangeError(`weight '${name}': f32 data must be a Float32Array of ${n} values`);
      return;
    case 'f16':
    case 'bf16':
      if (!(w.data instanceof Uint16Array) || w.data.length !== n) throw new RangeError(`weight '${name}': ${w.format} data must be a Uint16Array of ${n} values`);
      return;
    case 'q8_0':
    case 'q4_0': {
      if (cols % QUANT_BLOCK !== 0) throw new RangeError(`weight '${name}': ${w.format} needs cols divisible by ${QUANT_BLOCK}, got ${cols}`);
      const blocks = n / QUANT_BLOCK;
      if (!(w.scales instanceof Uint16Array) || w.scales.length !== blocks) throw new RangeError(`weight '${name}': ${w.format} scales must be a Uint16Array of ${blocks} values`);
      const qLen = w.format === 'q8_0' ? n : n / 2;
      const ok = w.format === 'q8_0' ? w.quants instanceof Int8Array : w.quants instanceof Uint8Array;
      if (!ok || w.quants.length !== qLen) throw new RangeError(`weight '${name}': ${w.format} quants must be a ${w.format === 'q8_0' ? 'Int8Array' : 'Uint8Array'} of ${qLen} bytes`);
      return;
    }
    default:
      throw new WebGPUUsageError(`weight '${name}': unknown format '${(w as { format: string }).format}'`);
  }
}

/** Row `row` of a host weight as f32 values (for vectors: norm weights and biases). */
export function dequantizeRow(w: HostWeight, row: number): Float32Array {
  const K = w.cols;
  const out = new Float32Array(K);
  switch (w.format) {
    case 'f32':
      out.set(w.data.subarray(row * K, (row + 1) * K));
      break;
    case 'f16':
      for (let i = 0; i < K; i++) out[i] = f16ToF32(w.data[row * K + i]!);
      break;
    case 'bf16':
      for (let i = 0; i < K; i++) out[i] = bf16ToF32(w.data[row * K + i]!);
      break;
    case 'q8_0':
      for (let i = 0; i < K; i++) out[i] = Math.fround(f16ToF32(w.scales[(row * K + i) >> 5]!) * w.quants[row * K + i]!);
      break;
    case 'q4_0':
      for (let i = 0; i < K; i++) {
        const b = (row * K + i) >> 5;
        const j = i & 31;
        const byte = w.quants[b * 16 + (j & 15)]!;
        const nib = j < 16 ? byte & 15 : byte >> 4;
        out[i] = Math.fround(f16ToF32(w.scales[b]!) * (nib - 8));
      }
      break;
  }
  return out;
}

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
