// The CLI on GGUF files (llama.cpp's format): a q4_0 file generates the greedy tokens of its checkpoint
// stored as q4_0 (the very blocks), bench reports q4_0, a Q4_K file runs as q4_k (`--dtype q4_k`, which
// a safetensors checkpoint cannot give), and a file that is not GGUF fails naming it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGgufFixture, writeRandomGguf } from '@qwen2-ts/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, MODELS } from './test/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qwen2-cli-gguf-'));
  await writeGgufFixture(join(MODELS, 'tiny-f16-sharded'), join(dir, 'tiny-q4_0.gguf'), { format: 'q4_0' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function generate(model: string, dtype: string): { ids: number[] } {
  const run = cli(['generate', '--model', model, '--backend', 'js', '--dtype', dtype, '--ids', '1,2,3,4,5', '--temperature', '0', '--max-new-tokens', '12', '--ignore-eos', '--json']);
  expect(run.stderr).not.toMatch(/error/i);
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as { ids: number[] };
}

describe('qwen2 on a GGUF file', { timeout: 60_000 }, () => {
  it('generates the tokens of the checkpoint stored as q4_0, and bench reports q4_0', () => {
    const gguf = join(dir, 'tiny-q4_0.gguf');
    expect(generate(gguf, 'auto').ids).toEqual(generate(join(MODELS, 'tiny-f16-sharded'), 'q4_0').ids);
    const bench = cli(['bench', '--model', gguf, '--backend', 'wasm', '--threads', '1', '--prompt-tokens', '8', '--gen-tokens', '4', '--repeats', '1', '--json']);
    expect(bench.status).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ dtype: 'q4_0' });
  });

  it('runs a Q4_K file as q4_k, and refuses --dtype q4_k for a float checkpoint', async () => {
    const gguf = join(dir, 'random-q4_k.gguf');
    await writeRandomGguf(gguf, {
      config: { vocabSize: 300, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 64, tieWordEmbeddings: true, maxPositionEmbeddings: 512, ropeTheta: 1e6, rmsNormEps: 1e-6 },
      matrixType: 'Q4_K', byteVocabulary: true,
    });
    expect(generate(gguf, 'q4_k').ids).toEqual(generate(gguf, 'auto').ids);
    const bench = cli(['bench', '--model', gguf, '--backend', 'js', '--dtype', 'q4_k', '--prompt-tokens', '4', '--gen-tokens', '2', '--repeats', '1', '--json']);
    expect(bench.status).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ dtype: 'q4_k' });
    const refused = cli(['generate', '--model', join(MODELS, 'tiny-f32'), '--backend', 'js', '--dtype', 'q4_k', '--ids', '1,2', '--max-new-tokens', '1']);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/q4_k weights are GGUF Q4_K tensors kept as they are, and this checkpoint has none/);
  });

  it('names a file that is not GGUF', () => {
    writeFileSync(join(dir, 'page.gguf'), '<!doctype html><title>404</title>'.padEnd(100));
    const out = cli(['generate', '--model', join(dir, 'page.gguf'), '--ids', '1,2', '--max-new-tokens', '1']);
    expect(out.status).not.toBe(0);
    expect(out.stderr).toMatch(/page\.gguf: not a GGUF file/);
  });
});
