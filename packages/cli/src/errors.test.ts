import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, lines, MODELS } from './test/helpers.js';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('qwen2 errors (built CLI)', () => {
  const home = mkdtempSync(join(tmpdir(), 'qwen2-cli-hf-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('prints help and version', () => {
    expect(cli(['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: qwen2') });
    expect(cli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(cli(['logits', '--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--all-positions') });
  });

  it('rejects an unknown command, flag or value with one line and exit code 2', () => {
    for (const args of [['frobnicate'], ['logits', '--model', 'x', '--idz', '1'], ['logits', '--model', 'x', '--ids', '1,a'], ['generate', '--model', 'x', '--backend', 'tpu', '--ids', '1']]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(lines(r.stderr), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^qwen2: /);
    }
    expect(cli(['frobnicate']).stderr).toMatch(/unknown command 'frobnicate'/);
    expect(cli(['logits', '--model', 'x', '--ids', '1,a']).stderr).toMatch(/--ids: 'a' is not a token id/);
    expect(cli(['generate', '--model', 'x', '--backend', 'tpu']).stderr).toMatch(/--backend must be one of js, wasm, webgpu, cuda/);
  });

  it("refuses the cuda backend's options with another backend, and checks their values", () => {
    const wasm = cli(['logits', '--model', 'x', '--backend', 'wasm', '--prefill-precision', '16-bit', '--programmatic-launch', '--ids', '1']);
    expect(wasm.status).toBe(2);
    expect(lines(wasm.stderr)).toEqual(['qwen2: --prefill-precision and --programmatic-launch apply to the cuda backend only (--backend wasm was given) (see qwen2 logits --help)']);
    expect(cli(['logits', '--model', 'x', '--backend', 'js', '--programmatic-launch', '--ids', '1']).stderr).toMatch(/--programmatic-launch applies to the cuda backend only/);
    const value = cli(['logits', '--model', 'x', '--backend', 'cuda', '--prefill-precision', 'fp8', '--ids', '1']);
    expect(value.status).toBe(2);
    expect(value.stderr).toMatch(/--prefill-precision must be one of f32, 16-bit; got 'fp8'/);
    expect(cli(['generate', '--help']).stdout).toMatch(/--programmatic-launch/);
  });

  it('says the Hub cannot be reached, and suggests --model <dir>, in one line without a stack', async () => {
    const port = await closedPort();
    const r = cli(['chat', '--model', 'Qwen/Qwen2-0.5B-Instruct'], { env: { HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HOME: home, HF_HUB_CACHE: join(home, 'hub') } });
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^qwen2: cannot reach the Hugging Face Hub.*--model <dir>/)]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // --verbose adds the stack.
    const v = cli(['logits', '--model', 'Qwen/Qwen2-0.5B-Instruct', '--ids', '1', '--verbose'], { env: { HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HOME: home, HF_HUB_CACHE: join(home, 'hub') } });
    expect(v.status).toBe(1);
    expect(v.stderr).toMatch(/\n\s+at /);
  });

  it('an explicitly requested backend that cannot run here is one clear line, not a crash', () => {
    for (const backend of ['cuda', 'webgpu']) {
      // VK_ICD_FILENAMES pointing nowhere: Dawn finds no Vulkan driver, as on a machine without a GPU.
      const r = cli(['logits', '--model', join(MODELS, 'tiny-f32'), '--backend', backend, '--ids', '1,2'], { env: { VK_ICD_FILENAMES: '/nonexistent.json' } });
      if (r.status === 0) continue; // a machine where it runs (a GPU, a driver)
      expect(r.status, backend).toBe(1);
      // Dawn itself may print native warnings first; our own output is one line.
      expect(lines(r.stderr).filter((l) => l.startsWith('qwen2:')), backend).toEqual([expect.stringMatching(new RegExp(`^qwen2: the ${backend} backend is not available: .+`))]);
      // No JavaScript stack (Dawn's native warnings have "at <C++ file>" lines of their own).
      expect(r.stderr).not.toMatch(/\n\s+at .*(node:|file:|\.js:)/);
    }
  });

  it('explains a model that cannot chat, and a prompt longer than the context, in one line', () => {
    const chat = cli(['chat', '--model', join(MODELS, 'tiny-f32'), '--backend', 'js'], { input: 'hi\n' });
    expect(chat.status).toBe(1);
    expect(lines(chat.stderr)).toEqual([expect.stringMatching(/^qwen2: .*tiny-f32 has no chat template .*qwen2 generate --prompt/)]);
    const long = cli(['generate', '--model', join(MODELS, 'tiny-f32'), '--backend', 'js', '--ids', Array.from({ length: 40 }, (_, i) => i).join(','), '--max-context', '16']);
    expect(long.status).toBe(1);
    expect(lines(long.stderr)).toEqual([expect.stringMatching(/^qwen2: context is full: .*40 new > capacity 16 tokens \(raise --max-context/)]);
  });

  it('names a missing model folder and a folder that is not a model', () => {
    const r = cli(['logits', '--model', './no/such/folder', '--ids', '1']);
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^qwen2: .*no\/such\/folder/)]);
    const t = cli(['logits', '--model', MODELS, '--ids', '1']);
    expect(t.status).toBe(1);
    expect(lines(t.stderr)).toEqual([expect.stringMatching(/^qwen2: .*config\.json/)]);
  });
});
