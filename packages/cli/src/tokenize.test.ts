import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, FIXTURES, lines, MODELS, modelWithTokenizer } from './test/helpers.js';

describe('qwen2 tokenize (built CLI)', () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  beforeAll(() => {
    model = modelWithTokenizer();
  });
  afterAll(() => model.cleanup());

  it('--jsonl reproduces the Hugging Face tokenizer goldens line by line', () => {
    const file = join(FIXTURES, 'tokenizer', 'qwen2_tokenizer_golden.jsonl');
    const golden = lines(readFileSync(file, 'utf8')).map((l) => JSON.parse(l) as { ids: number[] });
    const r = cli(['tokenize', '--model', model.dir, '--jsonl', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = lines(r.stdout).map((l) => JSON.parse(l) as { ids: number[] });
    expect(out).toHaveLength(golden.length);
    for (let i = 0; i < golden.length; i++) expect(out[i], `line ${i + 1}`).toEqual({ ids: golden[i]!.ids });
  });

  it('encodes a TEXT argument and standard input', () => {
    expect(JSON.parse(cli(['tokenize', '--model', model.dir, 'Hello world']).stdout)).toEqual({ ids: [9707, 1879] });
    expect(JSON.parse(cli(['tokenize', '--model', model.dir], { input: 'Hello world' }).stdout)).toEqual({ ids: [9707, 1879] });
    // Special tokens in text are recognized unless --no-special.
    expect(JSON.parse(cli(['tokenize', '--model', model.dir, '<|im_end|>']).stdout).ids).toEqual([151645]);
    expect(JSON.parse(cli(['tokenize', '--model', model.dir, '--no-special', '<|im_end|>']).stdout).ids.length).toBeGreaterThan(1);
  });

  it('reports a folder without tokenizer files and a bad JSONL line in one line', () => {
    const r = cli(['tokenize', '--model', join(MODELS, 'tiny-f32'), 'hi']);
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^qwen2: .*tiny-f32: no tokenizer files/)]);
    const bad = cli(['tokenize', '--model', model.dir, '--jsonl', '-'], { input: '{"text":"a"}\nnot json\n' });
    expect(bad.status).toBe(1);
    expect(lines(bad.stdout)).toEqual(['{"ids":[64]}']);
    expect(lines(bad.stderr)).toEqual(['qwen2: -:2: not a JSON line']);
  });
});
