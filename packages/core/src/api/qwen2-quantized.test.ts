// Pre-quantized checkpoints end to end: the tiny-f16-sharded fixture's linear layers quantized as AWQ
// and GPTQ write it, loaded through the loader's dequantizing checkpoint, against the same values
// written as a plain F32 checkpoint (whose path the golden logits already prove).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture, type Fixture } from '../testing/fixtures.js';
import { maxAbsDiff } from '../testing/random.js';
import { writeQuantizedFixture, type LayerQuantization } from '../testing/quantized-checkpoints.js';
import type { DtypeOption } from './types.js';
import { Qwen2 } from './qwen2.js';

const fixturesDir = fileURLToPath(new URL('../../../../fixtures', import.meta.url));
const tokenizer = { encode: () => [], decode: () => '' } as never;

let fixture: Fixture;
const dirs: Record<string, string> = {};

/**
 * Writes the fixture quantized as `name`, its values as `${name}-values`, and as `${name}-auto` what
 * 'auto' should store exactly: those values with the embedding and lm_head rounded to q8_0.
 */
async function writeQuantized(name: string, method: 'awq' | 'gptq', opt: LayerQuantization, quantizationConfig: object) {
  const dir = (suffix: string) => (dirs[`${name}${suffix}`] = mkdtempSync(join(tmpdir(), `qwen2-${name}${suffix}-`)));
  await writeQuantizedFixture(fixture.dir, dir(''), dir('-values'), method, opt, quantizationConfig);
  await writeQuantizedFixture(fixture.dir, dir('-again'), dir('-auto'), method, opt, quantizationConfig, true);
}

beforeAll(async () => {
  fixture = await loadFixture(fixturesDir, 'tiny-f16-sharded');
  const awq = { quant_method: 'awq', bits: 4, group_size: 32, version: 'gemm', zero_point: true };
  await writeQuantized('awq', 'awq', { bits: 4, groupSize: 32, symmetric: false }, awq);
  // Zeros of 7 (q4_0 stores the group with d = -scale) and 8 (d = scale) only: every block fits q4_0.
  await writeQuantized('awq-middle', 'awq', { bits: 4, groupSize: 32, symmetric: false, middle: true }, awq);
  await writeQuantized('gptq4', 'gptq', { bits: 4, groupSize: 32, symmetric: true }, { quant_method: 'gptq', bits: 4, group_size: 32, desc_act: false, sym: true });
  await writeQuantized('gptq8', 'gptq', { bits: 8, groupSize: 32, symmetric: true, noLowest: true }, { quant_method: 'gptq', bits: 8, group_size: 32, desc_act: false, sym: true });
});
afterAll(() => Object.values(dirs).forEach((d) => rmSync(d, { recursive: true, force: true })));

async function lastLogits(dir: string, dtype: DtypeOption): Promise<{ logits: Float32Array[]; format: string; bytes: number }> {
  const model = await Qwen2.load(dir, { dtype, tokenizer });
  try {
    const logits: Float32Array[] = [];
    for (const s of fixture.golden.sequences) logits.push((await model.logits(s.input_ids))[0]!);
    return { logits, format: model.weightFormat, bytes: model.weightsBytes };
  } finally {
    await model.dispose();
  }
}

const worst = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => maxAbsDiff(x, b[i]!)));

describe('pre-quantized (AWQ / GPTQ) checkpoints, reference backend', { timeout: 60_000 }, () => {
  it.each(['awq', 'gptq4', 'gptq8'])('%s in f32 gives the logits of its values written as a float checkpoint', async (name) => {
    const quantized = await lastLogits(dirs[name]!, 'f32');
    const values = await lastLogits(dirs[`${name}-values`]!, 'f32');
    expect(worst(quantized.logits, values.logits)).toBe(0);
  });

  it("'auto' stores symmetric 4-bit GPTQ as q4_0 with every value kept, the embedding and lm_head as q8_0", async () => {
    const auto = await lastLogits(dirs.gptq4!, 'auto');
    expect(auto.format).toBe('q4_0');
    const exact = await lastLogits(dirs['gptq4-auto']!, 'f32');
    // Same weights; only the order of the sums differs between the f32 and q4_0 / q8_0 dot products.
    expect(worst(auto.logits, exact.logits)).toBeLessThan(1e-5);
    // Rounding the float values to q4_0 instead (what a float checkpoint gets) is far off.
    const rounded = await lastLogits(dirs['gptq4-values']!, 'q4_0');
    expect(worst(rounded.logits, exact.logits)).toBeGreaterThan(1e-3);
  });

  it("'auto' stores AWQ as q4_0, exactly where a block's zero lets it", async () => {
    const middle = await lastLogits(dirs['awq-middle']!, 'auto');
    expect(middle.format).toBe('q4_0');
    expect(worst(middle.logits, (await lastLogits(dirs['awq-middle-auto']!, 'f32')).logits)).toBeLessThan(1e-5);
    // Zeros from the groups' minima: some blocks are rounded as a float checkpoint's would be (the
    // blocks themselves are checked in from-quantized.test.ts); the logits stay near the values'.
    const auto = await lastLogits(dirs.awq!, 'auto');
    const exact = await lastLogits(dirs['awq-values']!, 'f32');
    const rounded = await lastLogits(dirs['awq-values']!, 'q4_0');
    expect(worst(auto.logits, exact.logits)).toBeLessThan(3 * worst(rounded.logits, exact.logits));
    // The embedding and lm_head in q8_0: more bytes than all q4_0, fewer than f16.
    const f16 = await lastLogits(dirs.awq!, 'f16');
    expect(auto.bytes).toBeGreaterThan(rounded.bytes);
    expect(auto.bytes).toBeLessThan(f16.bytes / 2);
  });

  it("'auto' stores 8-bit GPTQ as q8_0; an explicit dtype still wins", async () => {
    const auto = await lastLogits(dirs.gptq8!, 'auto');
    expect(auto.format).toBe('q8_0');
    // No q - zero of -128 here (q8_0 holds -127..127), so every block is exact.
    expect(worst(auto.logits, (await lastLogits(dirs['gptq8-auto']!, 'f32')).logits)).toBeLessThan(1e-5);
    const f16 = await lastLogits(dirs.gptq8!, 'f16');
    expect(f16.format).toBe('f16');
    expect(worst(f16.logits, (await lastLogits(dirs['gptq8-values']!, 'f32')).logits)).toBeLessThan(1e-2);
  });
});
