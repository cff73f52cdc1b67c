import { QUANT_BLOCK, type Backend, type HostWeight, type WeightFormat } from '../backend/types.js';
import { f16Lookup, f32ToBf16, f32ToF16 } from '../numeric/half.js';
import { quantizeBlocksQ4_0 } from '../quant/q4_0.js';
import { quantizeBlocksQ8_0 } from '../quant/q8_0.js';

/** Values converted per slice (1 Mi values: 4 MiB of f32 scratch). */
const SLICE_VALUES = 1 << 20;
import { ModelWeightsError, WeightFormatError } from '../errors.js';

/** Checkpoint element types a weight can be built from. */
export type FloatDtype = 'F32' | 'F16' | 'BF16' | 'F64';

/** The storage format that keeps a checkpoint dtype exactly ('auto'). */
export function nativeFormat(dtype: string, tensor = '?'): 'f32' | 'f16' | 'bf16' {
  switch (dtype) {
    case 'F32':
    case 'F64':
      return 'f32';
    case 'F16':
      return 'f16';
    case 'BF16':
      return 'bf16';
    default:
      throw new ModelWeightsError(tensor, `dtype ${dtype} is not a floating-point type (expected F32, F16 or BF16)`);
  }
}

/** A backend's {@link Backend.quantizeBlocks}. */
export type QuantizeBlocks = NonNullable<Backend['quantizeBlocks']>;

/**
 * Converts a checkpoint tensor's raw little-endian bytes to a {@link HostWeight} in `format`.
 * `'auto'` keeps the checkpoint's dtype (F32 -> f32, F16 -> f16, BF16 -> bf16). f16/bf16 data is
 * adopted without a copy when the bytes are aligned; conversions round to nearest even; q8_0/q4_0
 * quantize with ggml's rounding.
 * @param bytes - raw tensor bytes (little-endian)
 * @param dtype - the checkpoint dtype (`F32`, `F16`, `BF16`, `F64`)
 * @param shape - 1-D (a vector, `rows = 1`) or 2-D `[rows, cols]`
 * @param quantize - a backend's {@link Backend.quantizeBlocks}, used instead of core's own quantizers
 * @throws {@link ModelWeightsError} on a byte count that does not match the shape, or a non-float dtype
 * @throws {@link WeightFormatError} when a quantized format is asked for and `cols` is not whole blocks
 */
export function toHostWeight(bytes: Uint8Array, dtype: string, shape: readonly number[], format: WeightFormat | 'auto', name = '?', quantize?: QuantizeBlocks): HostWeight {
  const native = nativeFormat(dtype, name);
  if (shape.length < 1 || shape.length > 2) throw new ModelWeightsError(name, `expected a 1-D or 2-D tensor, got shape [${shape.join(', ')}]`);
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = shape[shape.length - 1]!;
  const n = rows * cols;
  const elementBytes = dtype === 'F32' ? 4 : dtype === 'F64' ? 8 : 2;
  if (bytes.byteLength !== n * elementBytes) {
    throw new ModelWeightsError(name, `${bytes.byteLength} bytes do not hold [${shape.join(', ')}] ${dtype} (${n * elementBytes} bytes expected)`);
  }
  const target = format === 'auto' ? native : format;
  if ((target === 'q8_0' || target === 'q4_0') && cols % QUANT_BLOCK !== 0) {
    throw new WeightFormatError(`tensor '${name}': ${target} needs a column count that is a multiple of ${QUANT_BLOCK}, got ${cols}`);
  }
  // Same-format 16-bit data needs no conversion: keep the bit patterns.
  if (target === native && (target === 'f16' || target === 'bf16')) return { format: target, rows, cols, data: asUint16(bytes) };
  if (target === 'f32' && dtype === 'F32') return { format: 'f32', rows, cols, data: asFloat32(bytes) };
  // Everything else converts a slice of rows at a time, so no f32 copy of a whole large matrix (the
  // 151936-row embedding) is ever made beside its bytes and its result.
  const sliceRows = Math.max(1, Math.floor(SLICE_VALUES / cols));
  const eachSlice = (fn: (firstValue: number, count: number) => void) => {
    for (let r = 0; r < rows; r += sliceRows) fn(r * cols, Math.min(sliceRows, rows - r) * cols);
  };
  const forEachSlice = (fn: (values: Float32Array, firstValue: number) => void) =>
    eachSlice((at, count) => fn(decodeToF32(bytes.subarray(at * elementBytes, (at + count) * elementBytes), dtype), at));
  // A backend's quantizer takes bf16 bytes as they are: no f32 copy of each slice.
  const quantizeSlices = (q: QuantizeBlocks, format: 'q8_0' | 'q4_0', scales: Uint16Array, quants: Int8Array | Uint8Array) => {
    if (dtype !== 'BF16') return forEachSlice((v, at) => q(format, v, scales, quants, at / QUANT_BLOCK));
    const src = asUint16(bytes);
    eachSlice((at, count) => q(format, src.subarray(at, at + count), scales, quants, at / QUANT_BLOCK));
  };
  switch (target) {
    case 'f32': {
      const data = new Float32Array(n);
      forEachSlice((v, at) => data.set(v, at));
      return { format: 'f32', rows, cols, data };
    }
    case 'f16':
    case 'bf16': {
      const round = target === 'f16' ? f32ToF16 : f32ToBf16;
      const data = new Uint16Array(n);
      forEachSlice((v, at) => {
        for (let i = 0; i < v.length; i++) data[at + i] = round(v[i]!);
      });
      return { format: target, rows, cols, data };
    }
    case 'q8_0': {
      const scales = new Uint16Array(n / QUANT_BLOCK);
      const quants = new Int8Array(n);
      if (quantize) quantizeSlices(quantize, 'q8_0', scales, quants);
      else forEachSlice((v, at) => quantizeBlocksQ8_0(v, scales, quants, at / QUANT_BLOCK));
      return { format: 'q8_0', rows, cols, scales, quants };
    }
    case 'q4_0': {
      const scales = new Uint16Array(n / QUANT_BLOCK);
      const quants = new Uint8Array(n / 2);
      if (quantize) quantizeSlices(quantize, 'q4_0', scales, quants);
      else forEachSlice((v, at) => quantizeBlocksQ4_0(v, scales, quants, at / QUANT_BLOCK));
      return { format: 'q4_0', rows, cols, scales, quants };
    }
    default:
      throw new WeightFormatError(`tensor '${name}': unknown weight format '${String(target)}'`);
  }
}

/** Decodes F32/F16/BF16/F64 little-endian bytes to f32 values. */
export function decodeToF32(bytes: Uint8Array, dtype: string): Float32Array {
  switch (dtype) {
    case 'F32':
      return asFloat32(bytes).slice();
    case 'F64': {
      const b = aligned(bytes, 8);
      const src = new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
      return Float32Array.from(src);
    }
    case 'F16': {
      const table = f16Lookup();
      const src = asUint16(bytes);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'BF16': {
      // A bf16 is the top half of an f32: widen the bits (1.2-1.5x the table lookup, which a model load
      // runs over every bf16 weight it converts, and NaN payloads pass through unchanged).
      const src = asUint16(bytes);
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      let i = 0;
      if (src.byteOffset % 4 === 0) {
        // Two bf16 per 32-bit load (little-endian, as the Uint16Array view already assumes): 1.2-1.5x.
        const pairs = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 1);
        for (let p = 0; p < pairs.length; p++) {
          const w = pairs[p]!;
          bits[2 * p] = w << 16;
          bits[2 * p + 1] = w & 0xffff0000;
        }
        i = pairs.length * 2;
      }
      for (; i < src.length; i++) bits[i] = src[i]! << 16;
      return out;
    }
    default:
      throw new ModelWeightsError('?', `dtype ${dtype} cannot be decoded to f32`);
  }
}

function aligned(bytes: Uint8Array, alignment: number): Uint8Array {
  return bytes.byteOffset % alignment === 0 ? bytes : bytes.slice();
}

function asUint16(bytes: Uint8Array): Uint16Array {
  const b = aligned(bytes, 2);
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
}

function asFloat32(bytes: Uint8Array): Float32Array {
  const b = aligned(bytes, 4);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
