// Test data: float matrices quantized the way AWQ and GPTQ checkpoints are made, in both the unpacked
// form core reads (QuantizedLayer) and the form @qwen2-ts/loader's packers write (QuantizedLinear), and
// whole fixture checkpoints written that way.
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeSafetensors, openModel, packAwqLinear, packGptqLinear, type QuantizedLinear, type TensorToWrite } from '@qwen2-ts/loader';
import { f16ToF32, f32ToF16 } from '../numeric/half.js';
import { dequantize } from '../quant/host-weight.js';
import { quantizeQ8_0 } from '../quant/q8_0.js';
import { decodeToF32 } from '../weights/convert.js';
import type { QuantizedLayer } from '../weights/from-quantized.js';

/**
 * How to quantize: AutoAWQ's asymmetric min/max groups, GPTQ's symmetric ones (zero 2^(bits-1)), or
 * asymmetric ones whose zero is kept at 7 or 8 (`middle`, 4 bits: every value then fits q4_0 exactly).
 */
export interface LayerQuantization {
  bits: 2 | 4 | 8;
  groupSize: number;
  symmetric: boolean;
  /** Asymmetric only: clamp each zero point to 7..8. */
  middle?: boolean;
  /** Symmetric only: leave q = 0 unused (-2^(bits-1) after the zero; q8_0 holds -127..127). */
  noLowest?: boolean;
  /** Group of each input column (act-order GPTQ); default consecutive groups of groupSize. */
  group?: Int32Array;
}

/** A quantized layer in both forms, and the float values it stands for (`scale * (q - zero)`, in f32). */
export interface QuantizedMatrix {
  layer: QuantizedLayer & { bits: number };
  /** For `packAwqLinear` / `packGptqLinear`: zeros as bytes, scales as f16 bit patterns. */
  packable: QuantizedLinear;
  values: Float32Array;
}

/**
 * Quantizes `w` ([rows, cols]) per output row and group of input columns. Asymmetric as AutoAWQ:
 * scale = (max - min) / maxq, zero = round(-min / scale) clamped; symmetric as GPTQ with sym=True:
 * scale = 2 * amax / maxq, zero = 2^(bits-1). Scales are rounded to f16 before q is computed.
 */
export function quantizeMatrix(w: Float32Array, rows: number, cols: number, opt: LayerQuantization): QuantizedMatrix {
  const maxq = (1 << opt.bits) - 1;
  const group = opt.group ?? Int32Array.from({ length: cols }, (_, i) => Math.floor(i / opt.groupSize));
  const groups = Math.ceil(cols / opt.groupSize);
  const zeros = new Uint8Array(groups * rows), scaleBits = new Uint16Array(groups * rows), scales = new Float32Array(groups * rows);
  const q = new Uint8Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    const lo = new Float64Array(groups).fill(Infinity), hi = new Float64Array(groups).fill(-Infinity);
    for (let i = 0; i < cols; i++) {
      const v = w[o * cols + i]!, g = group[i]!;
      lo[g] = Math.min(lo[g]!, v);
      hi[g] = Math.max(hi[g]!, v);
    }
    for (let g = 0; g < groups; g++) {
      const k = g * rows + o;
      const amax = Math.max(-lo[g]!, hi[g]!);
      const raw = opt.symmetric ? (2 * amax) / maxq : Math.max(hi[g]! - lo[g]!, 1e-5) / maxq;
      scaleBits[k] = f32ToF16(raw || 1e-5);
      scales[k] = f16ToF32(scaleBits[k]!);
      zeros[k] = opt.symmetric ? 1 << (opt.bits - 1) : Math.min(opt.middle ? 8 : maxq, Math.max(opt.middle ? 7 : 0, Math.round(-lo[g]! / scales[k]!)));
    }
    const lowest = opt.noLowest ? 1 : 0;
    for (let i = 0; i < cols; i++) {
      const k = group[i]! * rows + o;
      q[o * cols + i] = Math.min(maxq, Math.max(lowest, Math.round(w[o * cols + i]! / scales[k]!) + zeros[k]!));
    }
  }
  const values = new Float32Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    for (let i = 0; i < cols; i++) {
      const k = group[i]! * rows + o;
      values[o * cols + i] = scales[k]! * (q[o * cols + i]! - zeros[k]!);
    }
  }
  return {
    layer: { rows, cols, bits: opt.bits, q, group, groups, zeros: Int16Array.from(zeros), scales },
    packable: { rows, cols, bits: opt.bits, q, group, groups, zeros, scales: scaleBits },
    values,
  };
}

/** Names of the decoder's linear layers (what AWQ and GPTQ quantize). */
const LINEAR = /\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/**
 * Writes a fixture checkpoint (`from`, a model folder with 16- or 32-bit weights) with its linear layers
 * quantized as `method` packs them, into `to` (config.json gets `quantizationConfig`), and the same
 * layers' dequantized values as a plain F32 checkpoint into `valuesTo` (its config unchanged). Other
 * tensors are copied as they are, except that with `floatMatricesAsQ8_0` the embedding and lm_head of
 * `valuesTo` hold their q8_0-rounded values (what `dtype: 'auto'` stores for them: rounding those again
 * gives the same blocks).
 */
export async function writeQuantizedFixture(from: string, to: string, valuesTo: string, method: 'awq' | 'gptq', opt: LayerQuantization, quantizationConfig: object, floatMatricesAsQ8_0 = false): Promise<void> {
  const source = await openModel(from);
  const packed: Record<string, TensorToWrite> = {};
  const floats: Record<string, TensorToWrite> = {};
  try {
    for (const [tensor, info] of source.checkpoint.tensors) {
      const bytes = await source.checkpoint.read(tensor);
      if (!LINEAR.test(tensor)) {
        packed[tensor] = floats[tensor] = { dtype: info.dtype, shape: info.shape, data: bytes };
        if (floatMatricesAsQ8_0 && info.shape.length === 2) {
          const [rows, cols] = info.shape as [number, number];
          const rounded = dequantize(quantizeQ8_0(decodeToF32(bytes, info.dtype), rows, cols));
          floats[tensor] = { dtype: 'F32', shape: [rows, cols], data: new Uint8Array(rounded.buffer) };
        }
        continue;
      }
      const [rows, cols] = info.shape as [number, number];
      const m = quantizeMatrix(decodeToF32(bytes, info.dtype), rows, cols, opt);
      const prefix = tensor.slice(0, -'.weight'.length);
      const parts = method === 'awq' ? packAwqLinear(m.packable) : packGptqLinear(m.packable);
      for (const [suffix, t] of Object.entries(parts)) packed[`${prefix}.${suffix}`] = t;
      floats[tensor] = { dtype: 'F32', shape: [rows, cols], data: new Uint8Array(m.values.buffer) };
    }
  } finally {
    await source.close();
  }
  const config = JSON.parse(await readFile(join(from, 'config.json'), 'utf8')) as object;
  writeFileSync(join(to, 'config.json'), JSON.stringify({ ...config, quantization_config: quantizationConfig }));
  writeFileSync(join(to, 'model.safetensors'), encodeSafetensors(packed));
  writeFileSync(join(valuesTo, 'config.json'), JSON.stringify(config));
  writeFileSync(join(valuesTo, 'model.safetensors'), encodeSafetensors(floats));
}
