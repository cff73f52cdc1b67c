// The CLI on a pre-quantized (GPTQ 4-bit, symmetric) checkpoint: --dtype auto stores its layers as q4_0
// with every value kept (and the embedding and lm_head as q8_0), so greedy decoding matches those values
// written as a float checkpoint.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeQuantizedFixture } from '@qwen2-ts/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, MODELS } from './test/helpers.js';

let gptq: string, values: string;

beforeAll(async () => {
  gptq = mkdtempSync(join(tmpdir(), 'qwen2-cli-gptq-'));
  values = mkdtempSync(join(tmpdir(), 'qwen2-cli-gptq-values-'));
  await writeQuantizedFixture(join(MODELS, 'tiny-f16-sharded'), gptq, values, 'gptq', { bits: 4, groupSize: 32, symmetric: true },
    { quant_method: 'gptq', bits: 4, group_size: 32, desc_act: false, sym: true }, true);
});
afterAll(() => [gptq, values].forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Greedy tokens on the js backend, whose q4_0 dot products take the stored values exactly. */
function generate(dir: string, dtype: string): { ids: number[] } {
  const run = cli(['generate', '--model', dir, '--backend', 'js', '--dtype', dtype, '--ids', '1,2,3,4,5', '--temperature', '0', '--max-new-tokens', '12', '--ignore-eos', '--json']);
  expect(run.stderr).not.toMatch(/error/i);
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as { ids: number[] };
}

describe('qwen2 on a GPTQ checkpoint', { timeout: 60_000 }, () => {
  it('generates the tokens of its values, and bench reports the q4_0 it stored them in', () => {
    expect(generate(gptq, 'auto').ids).toEqual(generate(values, 'f32').ids);
    const bench = cli(['bench', '--model', gptq, '--backend', 'wasm', '--threads', '1', '--prompt-tokens', '8', '--gen-tokens', '4', '--repeats', '1', '--json']);
    expect(bench.status).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ dtype: 'q4_0' });
  });

  it('refuses a quantization method it cannot read, naming it', () => {
    const bad = mkdtempSync(join(tmpdir(), 'qwen2-cli-bnb-'));
    try {
      // Same weights, but a config claiming bitsandbytes: the error names the key and the method.
      const config = JSON.parse(readFileSync(join(gptq, 'config.json'), 'utf8'));
      writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...config, quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true } }));
      copyFileSync(join(gptq, 'model.safetensors'), join(bad, 'model.safetensors'));
      const out = cli(['generate', '--model', bad, '--ids', '1,2', '--max-new-tokens', '1']);
      expect(out.status).not.toBe(0);
      expect(out.stderr).toMatch(/quantization_config\.quant_method.*bitsandbytes/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
