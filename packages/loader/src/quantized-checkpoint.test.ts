// Pre-quantized (AWQ, GPTQ) checkpoints read as float weights. The anchors are single packed words whose
// meaning follows from AutoAWQ's and AutoGPTQ's own code (AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] packs
// output columns; GPTQ packs input rows from the low bits and stores zeros minus one); the rest checks
// every value of random layers against scale * (q - zero) computed here from the unpacked integers.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, SafetensorsError } from './errors.js';
import { openHubOverHttp, openModel } from './model.js';
import { startMockHub } from './test-support/mock-hub.js';
import { parseQuantizationConfig, type QuantizationConfig } from './quantization-config.js';
import { packAwqLinear, packGptqLinear, type QuantizedLinear } from './quantized-writer.js';
import { encodeSafetensors, type TensorToWrite } from './safetensors-writer.js';
import { rng } from './test-support/rng.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const CONFIG = {
  model_type: 'qwen2', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 32,
};
const AWQ = { quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm', zero_point: true };
const GPTQ = { quant_method: 'gptq', bits: 4, group_size: 32, desc_act: false, sym: true };

/** A model folder holding `tensors` (plus an unquantized embedding) and a config with `quantization`. */
function folder(tensors: Record<string, TensorToWrite>, quantization?: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-quantized-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...CONFIG, ...(quantization ? { quantization_config: quantization } : {}) }));
  const embed = { dtype: 'F16' as const, shape: [32, 64], data: new Uint8Array(32 * 64 * 2) };
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors({ 'model.embed_tokens.weight': embed, ...tensors }));
  return dir;
}

function prefixed(prefix: string, parts: Record<string, TensorToWrite>): Record<string, TensorToWrite> {
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [`${prefix}.${k}`, v]));
}


/**
 * A random layer. Scales are f16 normals 2^e * (1 + m / 1024), so their values are known without
 * decoding any f16 here. Zeros start at `minZero` (GPTQ's original format cannot store zero 0).
 */
function randomLayer(rows: number, cols: number, bits: 2 | 4 | 8, groups: number, seed: number, minZero = 0, group?: Int32Array) {
  const r = rng(seed);
  const max = (1 << bits) - 1;
  const q = Uint8Array.from({ length: rows * cols }, () => Math.floor(r() * (max + 1)));
  const zeros = Uint8Array.from({ length: groups * rows }, () => minZero + Math.floor(r() * (max + 1 - minZero)));
  const scaleValues = new Float64Array(groups * rows);
  const scales = new Uint16Array(groups * rows);
  for (let k = 0; k < scales.length; k++) {
    const e = -12 + Math.floor(r() * 10), m = Math.floor(r() * 1024), negative = r() < 0.1;
    scales[k] = (negative ? 0x8000 : 0) | ((e + 15) << 10) | m;
    scaleValues[k] = (negative ? -1 : 1) * 2 ** e * (1 + m / 1024);
  }
  const layer: QuantizedLinear = { rows, cols, bits, q, zeros, scales, groups, ...(group ? { group } : {}) };
  const size = Math.ceil(cols / groups);
  const expected = new Float64Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    for (let i = 0; i < cols; i++) {
      const g = group ? group[i]! : Math.floor(i / size);
      expected[o * cols + i] = scaleValues[g * rows + o]! * (q[o * cols + i]! - zeros[g * rows + o]!);
    }
  }
  return { layer, expected };
}

async function readWeight(dir: string, name: string): Promise<{ values: Float32Array; info: unknown }> {
  const model = await openModel(dir);
  try {
    const bytes = await model.checkpoint.read(name);
    return { values: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), info: model.checkpoint.tensors.get(name) };
  } finally {
    await model.close();
  }
}

const UP = 'model.layers.0.mlp.up_proj';

describe('packed words, as AutoAWQ and AutoGPTQ define them', () => {
  it('AWQ: nibble k of a word holds output column AWQ_ORDER[k] (unpacked by [0, 4, 1, 5, 2, 6, 3, 7])', async () => {
    // in = 32 columns (one group), out = 8 rows: one word per input column.
    const qweight = new Int32Array(32);
    qweight[0] = 0x76543210;
    const parts = {
      qweight: { dtype: 'I32' as const, shape: [32, 1], data: new Uint8Array(qweight.buffer) },
      qzeros: { dtype: 'I32' as const, shape: [1, 1], data: new Uint8Array(4) },
      scales: { dtype: 'F16' as const, shape: [1, 8], data: new Uint8Array(new Uint16Array(8).fill(0x3c00).buffer) },
    };
    const { values, info } = await readWeight(folder(prefixed(UP, parts), AWQ), `${UP}.weight`);
    expect(info).toMatchObject({ dtype: 'F32', shape: [8, 32], quantized: { method: 'awq', bits: 4, groupSize: 32 } });
    // Column 0 of the [8, 32] weight, row by row.
    expect(Array.from({ length: 8 }, (_, o) => values[o * 32])).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    expect(values.filter((v, k) => k % 32 !== 0 && v !== 0)).toHaveLength(0);
  });

  it('GPTQ: a word packs eight input columns from the low bits; a stored zero 7 means 8', async () => {
    const qweight = new Int32Array(4 * 8); // [32 / 8, 8]
    qweight[3] = 0x76543210 | 0; // input columns 0..7 of output row 3
    const qzeros = Int32Array.of(0x77777777);
    const scales = new Uint16Array(8).fill(0x3800); // 0.5
    const parts = {
      qweight: { dtype: 'I32' as const, shape: [4, 8], data: new Uint8Array(qweight.buffer) },
      qzeros: { dtype: 'I32' as const, shape: [1, 1], data: new Uint8Array(qzeros.buffer) },
      scales: { dtype: 'F16' as const, shape: [1, 8], data: new Uint8Array(scales.buffer) },
      g_idx: { dtype: 'I32' as const, shape: [32], data: new Uint8Array(32 * 4) },
    };
    const { values } = await readWeight(folder(prefixed(UP, parts), GPTQ), `${UP}.weight`);
    expect(Array.from(values.subarray(3 * 32, 3 * 32 + 9))).toEqual([-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, -4]);
    expect(values[0]).toBe(-4); // q 0 - zero 8, times 0.5
    // The same words read as gptq_v2 keep the stored zero 7.
    const v2 = await readWeight(folder(prefixed(UP, parts), { ...GPTQ, checkpoint_format: 'gptq_v2' }), `${UP}.weight`);
    expect(v2.values[3 * 32 + 7]).toBe(0);
  });
});

describe('random layers: every value is scale * (q - zero)', () => {
  const cases: { name: string; quantization: object; bits: 2 | 4 | 8; rows: number; cols: number; groups: number; minZero: number; pack: (l: QuantizedLinear) => Record<string, TensorToWrite>; permuted?: boolean }[] = [
    { name: 'AWQ 4-bit, groups of 32', quantization: AWQ, bits: 4, rows: 48, cols: 96, groups: 3, minZero: 0, pack: packAwqLinear },
    { name: 'AWQ 4-bit, one group', quantization: { ...AWQ, group_size: -1 }, bits: 4, rows: 16, cols: 40, groups: 1, minZero: 0, pack: packAwqLinear },
    { name: 'AWQ 4-bit, columns not a multiple of 4', quantization: { ...AWQ, group_size: 21 }, bits: 4, rows: 16, cols: 42, groups: 2, minZero: 0, pack: packAwqLinear },
    { name: 'GPTQ 4-bit', quantization: GPTQ, bits: 4, rows: 40, cols: 96, groups: 3, minZero: 1, pack: (l) => packGptqLinear(l, 1) },
    { name: 'GPTQ 8-bit', quantization: { ...GPTQ, bits: 8 }, bits: 8, rows: 24, cols: 64, groups: 2, minZero: 1, pack: (l) => packGptqLinear(l, 1) },
    { name: 'GPTQ 2-bit', quantization: { ...GPTQ, bits: 2 }, bits: 2, rows: 32, cols: 64, groups: 2, minZero: 1, pack: (l) => packGptqLinear(l, 1) },
    { name: 'GPTQ 4-bit gptq_v2, zero 0 allowed', quantization: { ...GPTQ, checkpoint_format: 'gptq_v2' }, bits: 4, rows: 16, cols: 64, groups: 2, minZero: 0, pack: (l) => packGptqLinear(l, 0) },
    { name: 'GPTQ 4-bit with act-order (g_idx permuted)', quantization: { ...GPTQ, desc_act: true }, bits: 4, rows: 16, cols: 96, groups: 3, minZero: 1, pack: (l) => packGptqLinear(l, 1), permuted: true },
    { name: 'GPTQ 4-bit, group size not dividing the columns', quantization: { ...GPTQ, group_size: 40 }, bits: 4, rows: 16, cols: 96, groups: 3, minZero: 1, pack: (l) => packGptqLinear(l, 1) },
  ];
  it.each(cases)('$name', async (c) => {
    let group: Int32Array | undefined;
    if (c.permuted) {
      const r = rng(99);
      group = Int32Array.from({ length: c.cols }, (_, i) => Math.floor(i / (c.cols / c.groups)));
      for (let i = c.cols - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [group[i], group[j]] = [group[j]!, group[i]!];
      }
    }
    const { layer, expected } = randomLayer(c.rows, c.cols, c.bits, c.groups, c.rows * 7 + c.cols, c.minZero, group);
    const dir = folder(prefixed(UP, c.pack(layer)), c.quantization);
    const { values } = await readWeight(dir, `${UP}.weight`);
    expect(values.length).toBe(c.rows * c.cols);
    let wrong = 0;
    for (let k = 0; k < values.length; k++) if (values[k] !== expected[k]) wrong++;
    expect(wrong).toBe(0);

    // Ranges of bytes (row slices, and pieces not on row boundaries) match the whole read.
    const model = await openModel(dir);
    try {
      const whole = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      for (const [from, length] of [[0, c.cols * 4 * 3], [c.cols * 4 * 5, c.cols * 4 * 2], [6, 100], [whole.byteLength - 12, 12]] as const) {
        expect(await model.checkpoint.readRange(`${UP}.weight`, from, length)).toEqual(whole.slice(from, from + length));
      }
      await expect(model.checkpoint.readRange(`${UP}.weight`, whole.byteLength - 4, 8)).rejects.toThrow(RangeError);
      // The unpacked integers are the layer's own, and give the same values.
      const u = await model.checkpoint.readQuantized!(`${UP}.weight`);
      expect(u).toMatchObject({ rows: c.rows, cols: c.cols, bits: c.bits, groups: c.groups });
      expect(u.q).toEqual(layer.q);
      expect(Array.from(u.zeros)).toEqual(Array.from(layer.zeros));
      let differ = 0;
      for (let o = 0; o < c.rows; o++) {
        for (let i = 0; i < c.cols; i++) {
          const k = u.group[i]! * c.rows + o;
          if (u.scales[k]! * (u.q[o * c.cols + i]! - u.zeros[k]!) !== expected[o * c.cols + i]) differ++;
        }
      }
      expect(differ).toBe(0);
      await expect(model.checkpoint.readQuantized!('model.embed_tokens.weight')).rejects.toThrow(/'model\.embed_tokens\.weight' is not a dequantized AWQ or GPTQ weight/);
      // The packed parts are not tensors of their own any more.
      expect([...model.checkpoint.tensors.keys()].sort()).toEqual(['model.embed_tokens.weight', `${UP}.weight`]);
    } finally {
      await model.close();
    }
  });
});

describe('from the Hub', () => {
  it('a GPTQ repository reads as float weights, downloaded (Node) and over Range requests (browsers)', async () => {
    const { layer, expected } = randomLayer(32, 64, 4, 2, 11, 1);
    const dir = folder(prefixed(UP, packGptqLinear(layer)), GPTQ);
    const files = { 'config.json': readFileSync(join(dir, 'config.json')), 'model.safetensors': readFileSync(join(dir, 'model.safetensors')) };
    const id = 'Qwen/Qwen2-0.5B-Instruct-GPTQ-Int4';
    const hub = await startMockHub({ [id]: { files, commit: 'e'.repeat(40) } });
    const cacheDir = mkdtempSync(join(tmpdir(), 'qwen2-quantized-cache-'));
    dirs.push(cacheDir);
    try {
      for (const open of [() => openModel(id, { endpoint: hub.endpoint, cacheDir }), () => openHubOverHttp(id, { endpoint: hub.endpoint, browserCache: false })]) {
        const model = await open();
        try {
          expect(model.config.quantization).toEqual({ method: 'gptq', bits: 4, groupSize: 32, zeroOffset: 1 });
          const bytes = await model.checkpoint.read(`${UP}.weight`);
          expect(Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4))).toEqual(expected);
        } finally {
          await model.close();
        }
      }
    } finally {
      await hub.close();
    }
  });
});

describe('GPTQ without g_idx', () => {
  it('puts column i in group floor(i / group_size), also when the size does not divide the columns', async () => {
    // 96 columns in groups of 40: 40, 40 and 16 (ceil(96 / 3) = 32 would be wrong).
    const group = Int32Array.from({ length: 96 }, (_, i) => Math.floor(i / 40));
    const { layer, expected } = randomLayer(16, 96, 4, 3, 21, 1, group);
    const { g_idx: _, ...parts } = packGptqLinear(layer);
    const { values } = await readWeight(folder(prefixed(UP, parts), { ...GPTQ, group_size: 40 }), `${UP}.weight`);
    let wrong = 0;
    for (let k = 0; k < values.length; k++) if (values[k] !== expected[k]) wrong++;
    expect(wrong).toBe(0);
  });
});

describe('bad pre-quantized checkpoints get errors that name the problem', () => {
  const { layer } = randomLayer(16, 64, 4, 2, 5, 1);
  const gptq = packGptqLinear(layer);

  it('a missing part', async () => {
    const { qzeros: _, ...rest } = gptq;
    await expect(openModel(folder(prefixed(UP, rest), GPTQ))).rejects.toThrow(/'model\.layers\.0\.mlp\.up_proj\.qzeros' is missing/);
  });

  it('a part of the wrong shape or dtype', async () => {
    const scales = { ...gptq.scales!, shape: [16, 2] };
    await expect(openModel(folder(prefixed(UP, { ...gptq, scales }), GPTQ))).rejects.toThrow(/'model\.layers\.0\.mlp\.up_proj\.scales' has shape \[16, 2\]; expected \[2, 16\]/);
    const qzeros = { ...gptq.qzeros!, dtype: 'F32' as const };
    await expect(openModel(folder(prefixed(UP, { ...gptq, qzeros }), GPTQ))).rejects.toThrow(/qzeros' is F32; GPTQ stores it as I32/);
  });

  it('groups that do not match group_size', async () => {
    await expect(openModel(folder(prefixed(UP, gptq), { ...GPTQ, group_size: 16 }))).rejects.toThrow(/'model\.layers\.0\.mlp\.up_proj\.scales' has shape \[2, 16\]; expected \[4, 16\] \(GPTQ 4-bit, a \[16, 64\] weight, groups of 16\)/);
  });

  it('a g_idx that names a group that does not exist', async () => {
    const bad = new Int32Array(64);
    bad[10] = 7;
    const g_idx = { dtype: 'I32' as const, shape: [64], data: new Uint8Array(bad.buffer) };
    const model = await openModel(folder(prefixed(UP, { ...gptq, g_idx }), GPTQ));
    try {
      await expect(model.checkpoint.read(`${UP}.weight`)).rejects.toThrow(/puts input column 10 in group 7, outside the 2 groups/);
    } finally {
      await model.close();
    }
  });

  it('a layer both quantized and not', async () => {
    const weight = { dtype: 'F16' as const, shape: [16, 64], data: new Uint8Array(16 * 64 * 2) };
    await expect(openModel(folder(prefixed(UP, { ...gptq, weight }), GPTQ))).rejects.toThrow(/'model\.layers\.0\.mlp\.up_proj\.weight' sits beside/);
  });

  it('packed tensors without a quantization_config', async () => {
    await expect(openModel(folder(prefixed(UP, gptq)))).rejects.toThrow(SafetensorsError);
    await expect(openModel(folder(prefixed(UP, gptq)))).rejects.toThrow(/is a packed quantized weight, but .*config\.json has no quantization_config/);
  });
});

describe('parseQuantizationConfig', () => {
  const parse = (o: unknown): QuantizationConfig => parseQuantizationConfig(o, 'config.json');
  it("reads Qwen's AWQ and GPTQ configs and older AutoAWQ key names", () => {
    expect(parse({ bits: 4, group_size: 128, modules_to_not_convert: null, quant_method: 'awq', version: 'gemm', zero_point: true }))
      .toEqual({ method: 'awq', bits: 4, groupSize: 128, zeroOffset: 0 });
    expect(parse({ quant_method: 'awq', w_bit: 4, q_group_size: 64, version: 'GEMM' })).toEqual({ method: 'awq', bits: 4, groupSize: 64, zeroOffset: 0 });
    expect(parse({ bits: 8, damp_percent: 0.01, desc_act: false, group_size: 128, quant_method: 'gptq', sym: true, true_sequential: true }))
      .toEqual({ method: 'gptq', bits: 8, groupSize: 128, zeroOffset: 1 });
    expect(parse({ bits: 4, group_size: -1, quant_method: 'gptq', checkpoint_format: 'gptq_v2' })).toEqual({ method: 'gptq', bits: 4, zeroOffset: 0 });
  });
  it.each([
    [{ quant_method: 'bitsandbytes', load_in_4bit: true }, /quantization_config\.quant_method.*"bitsandbytes"; only pre-quantized AWQ and GPTQ/],
    [{ quant_method: 'fp8' }, /"fp8"/],
    [{ quant_method: 'awq', bits: 4, group_size: 128, version: 'gemv' }, /version.*"gemv"; only AutoAWQ's 'gemm' layout/],
    [{ quant_method: 'awq', bits: 4, group_size: 128, zero_point: false }, /zero_point.*only AWQ with zero points/],
    [{ quant_method: 'awq', bits: 8, group_size: 128 }, /bits.*AWQ checkpoints are read with 4 bits only/],
    [{ quant_method: 'gptq', bits: 3, group_size: 128 }, /bits.*3; GPTQ checkpoints are read with 2, 4 or 8 bits/],
    [{ quant_method: 'gptq', bits: 4, group_size: 0 }, /group_size.*must be a positive integer or -1, got 0/],
    [{ quant_method: 'gptq', bits: 4, group_size: 128, checkpoint_format: 'marlin' }, /checkpoint_format.*"marlin"/],
    ['awq', /quantization_config.*must be an object/],
  ])('refuses %j', (o, message) => {
    expect(() => parse(o)).toThrow(ConfigError);
    expect(() => parse(o)).toThrow(message);
  });
});
