/** `--prompt-lookup`, `--draft-model` and friends of generate, chat and serve (built CLI, full-vocabulary fixture). */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, lines, modelWithTokenizer } from './test/helpers.js';
import { startServer } from './test/server-process.js';

interface GenerateJson { ids: number[]; text: string; speculative?: { proposed: number; accepted: number; checks: number } }

describe('speculative decoding from the command line', { timeout: 120_000 }, () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  let otherTokenizer: string;
  beforeAll(() => {
    model = modelWithTokenizer();
    // The same checkpoint with a tokenizer whose vocabulary has two tokens swapped.
    otherTokenizer = mkdtempSync(join(tmpdir(), 'qwen2-draft-'));
    for (const f of readdirSync(model.dir)) if (f !== 'tokenizer.json' && f !== 'vocab.json' && f !== 'merges.txt') copyFileSync(join(model.dir, f), join(otherTokenizer, f));
    const json = JSON.parse(readFileSync(join(model.dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    const { vocab } = json.model;
    [vocab.hello, vocab.world] = [vocab.world!, vocab.hello!];
    writeFileSync(join(otherTokenizer, 'tokenizer.json'), JSON.stringify(json));
  });
  afterAll(() => {
    model?.cleanup();
    rmSync(otherTokenizer, { recursive: true, force: true });
  });
  const PROMPT = 'one two three one two three one two';
  const generate = (...extra: string[]) => cli(['generate', '--model', model.dir, '--backend', 'js', '--prompt', PROMPT, '--max-new-tokens', '24', '--ignore-eos', '--json', ...extra]);

  it('generate --prompt-lookup and --draft-model give the ids plain decoding gives, and report the guesses', () => {
    for (const sampling of [['--temperature', '0'], ['--temperature', '0.8', '--seed', '3']]) {
      const plain = generate(...sampling);
      expect(plain.status, plain.stderr).toBe(0);
      const want = JSON.parse(plain.stdout) as GenerateJson;
      expect(want.speculative).toBeUndefined();
      for (const flags of [['--prompt-lookup', '--draft-tokens', '4'], ['--draft-model', model.dir, '--draft-dtype', 'q8_0']]) {
        const r = generate(...sampling, ...flags);
        expect(r.status, r.stderr).toBe(0);
        const got = JSON.parse(r.stdout) as GenerateJson;
        expect(got.ids, flags.join(' ')).toEqual(want.ids);
        expect(got.text).toBe(want.text);
        expect(Object.keys(got.speculative!)).toEqual(['proposed', 'accepted', 'checks']);
      }
    }
  });

  it('chat --prompt-lookup streams the same reply and reports the guesses kept', () => {
    const args = ['chat', '--model', model.dir, '--backend', 'js', '--temperature', '0', '--max-new-tokens', '16', '--stats'];
    const plain = cli(args, { input: 'Say it again and again.\n' });
    const fast = cli([...args, '--prompt-lookup'], { input: 'Say it again and again.\n' });
    expect(fast.status, fast.stderr).toBe(0);
    expect(fast.stdout).toBe(plain.stdout);
    expect(fast.stderr).toMatch(/\d+\/\d+ guesses kept\]/);
  });

  it('refuses conflicting or incomplete flags in one line, before loading the model', () => {
    const cases: [string[], RegExp][] = [
      [['--prompt-lookup', '--draft-model', model.dir], /give either --prompt-lookup or --draft-model, not both/],
      [['--draft-tokens', '4'], /--draft-tokens needs --prompt-lookup or --draft-model/],
      [['--draft-dtype', 'q4_0'], /--draft-dtype needs --draft-model/],
      [['--prompt-lookup', '--draft-tokens', '0'], /--draft-tokens must be an integer in 1..64, got '0'/],
      [['--draft-model', model.dir, '--draft-dtype', 'q5'], /--draft-dtype must be one of/],
    ];
    for (const [flags, message] of cases) {
      const r = generate(...flags);
      expect(r.status, flags.join(' ')).toBe(2);
      expect(lines(r.stderr).length, r.stderr).toBe(1); // one line: the message with a pointer to --help
      expect(r.stderr).toMatch(message);
    }
  });

  it('refuses a draft model whose tokenizer differs, naming the id', () => {
    const r = generate('--draft-model', otherTokenizer);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--draft-model .*: the draft model's tokenizer differs from this model's at id \d+ \("(hello|world)" against "(hello|world)"\)/);
  });

  it('serve --prompt-lookup answers what plain decoding answers', async () => {
    const body = { model: 'fixture', prompt: PROMPT, max_tokens: 24, temperature: 0, ignore_eos: true };
    const want = (JSON.parse(generate('--temperature', '0').stdout) as GenerateJson).text;
    const server = await startServer(['--model', model.dir, '--backend', 'js', '--prompt-lookup']);
    try {
      const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(200);
      const answer = (await res.json()) as { choices: { text: string }[] };
      expect(answer.choices[0]!.text).toBe(want);
    } finally {
      await server.stop();
    }
  });
});
