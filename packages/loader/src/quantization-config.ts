import { ConfigError } from './errors.js';

/**
 * How a pre-quantized checkpoint (Qwen's own `-AWQ`, `-GPTQ-Int4`, `-GPTQ-Int8` repositories and others
 * made by AutoAWQ, AutoGPTQ, GPTQModel or optimum) stores its linear layers: `config.json`'s
 * `quantization_config`, validated.
 *
 * Each quantized linear layer `P` has `P.qweight` (integers packed eight or four to an int32),
 * `P.qzeros` (packed zero points), `P.scales` (one per group of input columns and output row) and, for
 * GPTQ, `P.g_idx` (the group of each input column) in place of `P.weight`. The value of weight
 * `[o, i]` is `scale * (q - zero)` of its group.
 */
export interface QuantizationConfig {
  /** 'awq': AutoAWQ's GEMM layout (packed along the output, interleaved). 'gptq': packed along the input. */
  method: 'awq' | 'gptq';
  /** Bits per weight: 4 for AWQ; 2, 4 or 8 for GPTQ. */
  bits: 2 | 4 | 8;
  /** Input columns per scale and zero point; undefined for one group per output row (`group_size: -1`). */
  groupSize?: number;
  /**
   * What is added to a stored zero point: 1 for GPTQ's original checkpoint format (AutoGPTQ stored each
   * zero minus one, so a symmetric 4-bit layer stores 7 for 8), 0 for AWQ and GPTQModel's `gptq_v2`.
   */
  zeroOffset: 0 | 1;
}

/**
 * Parses `quantization_config`. Methods and layouts other than AWQ GEMM and GPTQ (bitsandbytes, fp8,
 * compressed-tensors, AWQ GEMV, Marlin-packed GPTQ, 3-bit GPTQ) are refused with a message naming them,
 * rather than loading weights that would be read wrongly.
 * @throws {@link ConfigError} naming `quantization_config` and the key at fault
 */
export function parseQuantizationConfig(value: unknown, file: string): QuantizationConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(file, 'quantization_config', `must be an object, got ${JSON.stringify(value)}`);
  const o = value as Record<string, unknown>;
  const method = o.quant_method;
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(file, `quantization_config.${key}`, problem);
  };
  if (method !== 'awq' && method !== 'gptq') {
    fail('quant_method', `is ${JSON.stringify(method)}; only pre-quantized AWQ and GPTQ checkpoints are supported (or load the unquantized model and pass a dtype such as q4_0)`);
  }
  const bits = o.bits ?? o.w_bit;
  const groupSize = o.group_size ?? o.q_group_size ?? -1;
  if (typeof groupSize !== 'number' || !Number.isSafeInteger(groupSize) || (groupSize < 1 && groupSize !== -1)) {
    fail('group_size', `must be a positive integer or -1, got ${JSON.stringify(groupSize)}`);
  }
  const grouped = groupSize === -1 ? {} : { groupSize: groupSize as number };
  if (method === 'awq') {
    const version = o.version ?? 'gemm';
    if (typeof version !== 'string' || version.toLowerCase() !== 'gemm') {
      fail('version', `is ${JSON.stringify(version)}; only AutoAWQ's 'gemm' layout is supported`);
    }
    if (o.zero_point === false) fail('zero_point', 'is false; only AWQ with zero points is supported');
    if (bits !== 4) fail('bits', `is ${JSON.stringify(bits)}; AWQ checkpoints are read with 4 bits only`);
    return { method: 'awq', bits: 4, ...grouped, zeroOffset: 0 };
  }
  if (bits !== 2 && bits !== 4 && bits !== 8) fail('bits', `is ${JSON.stringify(bits)}; GPTQ checkpoints are read with 2, 4 or 8 bits (3 bits pack across words)`);
  const format = o.checkpoint_format ?? o.format ?? 'gptq';
  if (format !== 'gptq' && format !== 'gptq_v2') {
    fail(o.checkpoint_format !== undefined ? 'checkpoint_format' : 'format', `is ${JSON.stringify(format)}; only the 'gptq' and 'gptq_v2' layouts are supported`);
  }
  return { method: 'gptq', bits: bits as 2 | 4 | 8, ...grouped, zeroOffset: format === 'gptq' ? 1 : 0 };
}
