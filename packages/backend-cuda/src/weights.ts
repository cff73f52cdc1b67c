import type { HostWeight, WeightFormat } from '@qwen2-ts/core';

/** Values per quantization block (core's QUANT_BLOCK). */
export const BLOCK = 32;

/** Format codes shared with the kernels (native/kernels.h, WeightFormatCode). */
export const FORMAT_CODE: Record<WeightFormat, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };

/** Every format the CUDA backend stores. */
export const CUDA_FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

/**
 * Where a weight's parts live in its single device allocation: values (or quants) at offset 0, then the
 * f16 block scales at `scalesOffset`, aligned to 256 bytes so every row of every part can be read with
 * 128-bit loads.
 */
export interface DeviceWeightLayout {
  /** Bytes of the values (f32/f16/bf16) or quants (q8_0: 1 per value, q4_0: 1 per 2 values). */
  dataBytes: number;
  /** Offset of the scales, or -1 for unquantized formats. */
  scalesOffset: number;
  /** Bytes of the scales (2 per 32-value block). */
  scalesBytes: number;
  /** Size of the allocation. */
  totalBytes: number;
}

const align256 = (n: number): number => Math.ceil(n / 256) * 256;

/** Device layout of a weight of `format` and shape `[rows, cols]`. */
export function deviceWeightLayout(format: WeightFormat, rows: number, cols: number): DeviceWeightLayout {
  const n = rows * cols;
  switch (format) {
    case 'f32':
      return { dataBytes: 4 * n, scalesOffset: -1, scalesBytes: 0, totalBytes: 4 * n };
    case 'f16':
    case 'bf16':
      return { dataBytes: 2 * n, scalesOffset: -1, scalesBytes: 0, totalBytes: 2 * n };
    case 'q8_0':
    case 'q4_0': {
      const dataBytes = format === 'q8_0' ? n : n / 2;
      const scalesBytes = (n / BLOCK) * 2;
      const scalesOffset = align256(dataBytes);
      return { dataBytes, scalesOffset, scalesBytes, totalBytes: scalesOffset + scalesBytes };
    }
  }
}

/** The typed arrays to upload for a host weight: values or quants first, then scales. */
export function weightParts(w: HostWeight): { data: ArrayBufferView; scales?: Uint16Array } {
  return w.format === 'q8_0' || w.format === 'q4_0' ? { data: w.quants, scales: w.scales } : { data: w.data };
}

/**
 * Checks that a host weight's arrays match its shape and format (core's HostWeight layouts).
 * @throws RangeError naming the weight and the mismatch
 */
export function validateHostWeight(weight: HostWeight, name: string): void {
  const { rows, cols } = weight;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new RangeError(`weight '${name}': invalid shape [${rows}, ${cols}]`);
  const n = rows * cols;
  if (n > 2 ** 31 - 1) throw new RangeError(`weight '${name}': [${rows}, ${cols}] has more than 2^31 - 1 values`);
  switch (weight.format) {
    case 'f32':
      if (!(weight.data instanceof Float32Array) || weight.data.length !== n) throw new RangeError(`weight '${name}': f32 data must be a Float32Array of ${n} values, got ${weight.data?.length}`);
      return;
    case 'f16':
    case 'bf16':
      if (!(weight.data instanceof Uint16Array) || weight.data.length !== n) throw new RangeError(`weight '${name}': ${weight.format} data must be a Uint16Array of ${n} values, got ${weight.data?.length}`);
      return;
    case 'q8_0':
    case 'q4_0': {
      if (cols % BLOCK !== 0) throw new RangeError(`weight '${name}': ${weight.format} needs cols to be a multiple of ${BLOCK}, got ${cols}`);
      const blocks = n / BLOCK;
      const quantBytes = weight.format === 'q8_0' ? n : n / 2;
      const want = weight.format === 'q8_0' ? Int8Array : Uint8Array;
      if (!(weight.scales instanceof Uint16Array) || weight.scales.length !== blocks) throw new RangeError(`weight '${name}': ${weight.format} needs ${blocks} scales (Uint16Array), got ${weight.scales?.length}`);
      if (!(weight.quants instanceof want) || weight.quants.length !== quantBytes) throw new RangeError(`weight '${name}': ${weight.format} needs ${quantBytes} quant bytes (${want.name}), got ${weight.quants?.length}`);
      return;
    }
    default:
      throw new RangeError(`weight '${name}': unknown format '${(weight as { format: string }).format}'`);
  }
}
