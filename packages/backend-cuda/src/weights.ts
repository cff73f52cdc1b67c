import { QUANT_BLOCK, validateHostWeight as validateCoreHostWeight, type HostWeight, type WeightFormat } from '@qwen2-ts/core';

/** Values per quantization block (core's QUANT_BLOCK). */
export const BLOCK = QUANT_BLOCK;

/** Format codes shared with the kernels (native/kernels.h, WeightFormatCode). */
export const FORMAT_CODE: Record<CudaFormat, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };

/** The formats the CUDA backend stores (no q4_k kernels: core gives this backend a GGUF file's Q4_K blocks as q4_0). */
export type CudaFormat = Exclude<WeightFormat, 'q4_k'>;

/** A host weight in a format this backend stores. */
export type CudaHostWeight = Exclude<HostWeight, { format: 'q4_k' }>;

/** Every format the CUDA backend stores. */
export const CUDA_FORMATS: readonly CudaFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

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
export function deviceWeightLayout(format: CudaFormat, rows: number, cols: number): DeviceWeightLayout {
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
export function weightParts(w: CudaHostWeight): { data: ArrayBufferView; scales?: Uint16Array } {
  return w.format === 'q8_0' || w.format === 'q4_0' ? { data: w.quants, scales: w.scales } : { data: w.data };
}

/**
 * Core's checks of a host weight's arrays against its shape and format, plus this backend's limit: the
 * kernels index values with 32-bit integers; and a format it stores.
 * @throws RangeError naming the weight and the mismatch
 */
export function validateHostWeight(weight: HostWeight, name: string): asserts weight is CudaHostWeight {
  validateCoreHostWeight(weight, name);
  if (!(CUDA_FORMATS as readonly string[]).includes(weight.format)) throw new RangeError(`weight '${name}': the cuda backend does not store ${weight.format} (it stores ${CUDA_FORMATS.join(', ')})`);
  if (weight.rows * weight.cols > 2 ** 31 - 1) throw new RangeError(`weight '${name}': [${weight.rows}, ${weight.cols}] has more than 2^31 - 1 values`);
}
