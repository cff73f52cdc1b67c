/** `qwen2 chat`: with piped input, and under a pseudo-terminal (util-linux `script`). */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, MAIN, modelWithTokenizer, testEnv } from './test/helpers.js';

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

/** A shell-quoted command line. */
const sh = (args: string[]) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

/** Runs a command under a pseudo-terminal; `steps` react to the output seen so far. */
function underPty(args: string[], steps: { when: RegExp; send: string }[], timeoutMs = 40_000): Promise<{ output: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', sh([process.execPath, MAIN, ...args]), '/dev/null'], { env: { ...testEnv(), TERM: 'dumb', COLUMNS: '100' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    let searchFrom = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out at step ${step}; output so far:\n${output}`));
    }, timeoutMs);
    const advance = () => {
      while (step < steps.length) {
        const s = steps[step]!;
        const m = s.when.exec(output.slice(searchFrom));
        if (!m) return;
        searchFrom += m.index + m[0].length;
        child.stdin.write(s.send);
        step++;
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      output += d;
      advance();
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      // The terminal turns \n into \r\n and readline draws its prompt with escape sequences.
      resolve({ output: output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r+\n/g, '\n'), code });
    });
  });
}

describe('qwen2 chat (built CLI)', () => {
  let model: ReturnType<typeof modelWithTokenizer>;
  let expected: string;
  const base = () => ['chat', '--model', model.dir, '--backend', 'js', '--temperature', '0', '--max-new-tokens', '8'];

  beforeAll(() => {
    model = modelWithTokenizer();
    // The first answer of a conversation equals a one-shot greedy --chat generation.
    const r = cli(['generate', '--model', model.dir, '--backend', 'js', '--chat', '--prompt', 'Hello', '--temperature', '0', '--max-new-tokens', '8']);
    expect(r.status, r.stderr).toBe(0);
    expected = r.stdout.replace(/\n$/, '');
    expect(expected.length).toBeGreaterThan(0);
  });
  afterAll(() => model?.cleanup());

  it('reads one message per line from a pipe; /reset starts over', () => {
    const r = cli(base(), { input: 'Hello\nHello\n/reset\nHello\n' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.startsWith(`${expected}\n`)).toBe(true);
    // After /reset the conversation is the same as at the start again.
    expect(r.stdout.endsWith(`\n(conversation cleared)\n${expected}\n`)).toBe(true);
  });

  it('--system starts the conversation with a system message (as generate --chat --system does)', () => {
    const system = ['--system', 'You are a pirate.'];
    const one = cli(['generate', '--model', model.dir, '--backend', 'js', '--chat', '--prompt', 'Hello', '--temperature', '0', '--max-new-tokens', '8', ...system]);
    expect(one.status, one.stderr).toBe(0);
    const r = cli([...base(), ...system], { input: 'Hello\n' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(one.stdout);
    expect(r.stdout).not.toBe(`${expected}\n`);
  });

  it.runIf(hasScript)('works in a terminal: prompt, streamed answer, /reset, /exit', async () => {
    const { output, code } = await underPty(base(), [
      { when: /> /, send: 'Hello\r' },
      { when: /> /, send: '/reset\r' },
      { when: /conversation cleared[\s\S]*> /, send: '/exit\r' },
    ]);
    expect(code).toBe(0);
    expect(output).toContain(expected);
    expect(output).toContain('/reset clears the conversation');
  });

  it.runIf(hasScript)('Ctrl-C stops the current answer without quitting', async () => {
    const long = ['chat', '--model', model.dir, '--backend', 'js', '--temperature', '0', '--max-new-tokens', '100000', '--ignore-eos'];
    const { output, code } = await underPty(long, [
      { when: /> /, send: 'Write a very long story\r' },
      // Wait until the answer is streaming, then press Ctrl-C.
      { when: /story\r*\n[^\n>]{8}/, send: '\x03' },
      { when: /\[stopped\][\s\S]*> /, send: '/reset\r' },
      { when: /conversation cleared[\s\S]*> /, send: '\x04' },
    ]);
    expect(output).toMatch(/\[stopped\]/);
    expect(code).toBe(0);
  });
});
