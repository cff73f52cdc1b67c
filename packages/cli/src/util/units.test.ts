/** In-process unit tests of the CLI's small pieces (the commands themselves are tested through the built CLI). */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GenerationQueue } from '../serve/queue.js';
import { parseChatRequest, parseCompletionRequest } from '../serve/requests.js';
import { HttpError } from '../serve/http-util.js';
import { parseCommandArgs } from './args.js';
import { describeError, exitCodeOf, UsageError } from './errors.js';
import { float32ArrayJson, float32Json } from './output.js';
import { renderBar, StatusOutput } from './progress.js';

describe('float32 JSON', () => {
  it('writes the shortest decimal that reads back as the same float32', () => {
    const values = Float32Array.from([0, -0, 1, 0.1, -3.4028234663852886e38, 1.401298464324817e-45, 123.456, 1 / 3]);
    const back = Float32Array.from(JSON.parse(float32ArrayJson(values)) as number[]);
    expect([...back]).toEqual([...values]);
    expect(float32Json(Math.fround(0.1))).toBe('0.1');
    expect(float32Json(NaN)).toBe('null');
  });
});

describe('argument parsing', () => {
  const specs = { ids: { type: 'string' as const, help: '' }, n: { type: 'string' as const, help: '' }, x: { type: 'boolean' as const, help: '' } };
  it('parses and validates typed values', () => {
    const a = parseCommandArgs('t', ['--ids', '1, 2,3', '--n', '5', '--x'], specs);
    expect(a.ids('ids')).toEqual([1, 2, 3]);
    expect(a.int('n', 0, 1, 10)).toBe(5);
    expect(a.flag('x')).toBe(true);
  });
  it('raises usage errors naming the flag', () => {
    expect(() => parseCommandArgs('t', ['--nope'], specs)).toThrow(UsageError);
    expect(() => parseCommandArgs('t', ['--n', '11'], specs).int('n', 0, 1, 10)).toThrow(/--n must be an integer in 1..10, got '11'/);
    expect(() => parseCommandArgs('t', ['--ids', '1,-2'], specs).ids('ids')).toThrow(/'-2' is not a token id/);
    expect(() => parseCommandArgs('t', ['extra'], specs)).toThrow(/unexpected argument 'extra'/);
  });
});

describe('error lines', () => {
  it('maps errors to one line and an exit code', () => {
    expect(describeError(new UsageError('bad', 'logits'))).toBe('bad (see qwen2 logits --help)');
    expect(exitCodeOf(new UsageError('bad'))).toBe(2);
    expect(exitCodeOf(new DOMException('x', 'AbortError'))).toBe(130);
    const hub = Object.assign(new Error('cannot reach the Hugging Face Hub at x'), { name: 'HubError' });
    expect(describeError(hub)).toMatch(/--model <dir>/);
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    expect(describeError(refused)).toMatch(/^cannot reach the network \(ECONNREFUSED\)/);
    expect(describeError(new Error('two\nlines'))).toBe('two lines');
  });
});

describe('progress output', () => {
  function tty() {
    const stream = new PassThrough() as PassThrough & { isTTY: boolean; columns: number };
    stream.isTTY = true;
    stream.columns = 80;
    let text = '';
    stream.on('data', (d) => (text += d));
    return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
  }
  it('draws bars on a terminal and erases them before a note', () => {
    const t = tty();
    const out = new StatusOutput(t.stream, true);
    out.draw([{ label: 'model.safetensors', done: 50, total: 100 }, { label: 'total', done: 50, total: 200 }], true);
    expect(t.text()).toMatch(/model\.safetensors.*\[#+\.+\]\s+50%/);
    out.note('hello');
    expect(t.text().endsWith('\x1b[1A\x1b[Jqwen2: hello\n')).toBe(true);
  });
  it('draws nothing without a terminal or with --quiet', () => {
    const t = tty();
    (t.stream as unknown as { isTTY: boolean }).isTTY = false;
    new StatusOutput(t.stream, true).draw([{ label: 'x', done: 1, total: 2 }], true);
    const q = tty();
    const quiet = new StatusOutput(q.stream, false);
    quiet.draw([{ label: 'x', done: 1, total: 2 }], true);
    quiet.note('hidden');
    expect(t.text() + q.text()).toBe('');
  });
  it('fits a bar in the width', () => {
    const line = renderBar({ label: 'a-very-long-file-name-model-00001-of-00004.safetensors', done: 3e9, total: 4e9 }, 60, 10);
    expect(line.length).toBeLessThanOrEqual(60);
    expect(line).toMatch(/75% 3\.00 GB\/4\.00 GB/);
  });
});

describe('generation queue', () => {
  it('runs tasks one at a time in arrival order, and drops a task whose client left while waiting', async () => {
    const queue = new GenerationQueue();
    const log: string[] = [];
    let release!: () => void;
    const first = queue.run(async () => {
      log.push('a start');
      await new Promise<void>((r) => (release = r));
      log.push('a end');
    });
    const gone = new AbortController();
    const second = queue.run(async () => log.push('b'), gone.signal);
    const third = queue.run(async () => log.push('c'));
    await new Promise((r) => setTimeout(r, 10));
    expect(queue.waiting).toBe(2);
    gone.abort();
    release();
    await first;
    await expect(second).rejects.toMatchObject({ name: 'AbortError' });
    await third;
    expect(log).toEqual(['a start', 'a end', 'c']);
    await queue.idle();
    expect(queue.busy).toBe(false);
  });

  it('runs up to its concurrency at once, the rest in arrival order as places free', async () => {
    const queue = new GenerationQueue(2);
    const log: string[] = [];
    const release = new Map<string, () => void>();
    const task = (name: string) => queue.run(async () => {
      log.push(`${name} start`);
      await new Promise<void>((r) => release.set(name, r));
      log.push(`${name} end`);
    });
    const tasks = ['a', 'b', 'c', 'd'].map(task);
    await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual(['a start', 'b start']);
    expect([queue.running, queue.waiting]).toEqual([2, 2]);
    let idle = false;
    void queue.idle().then(() => (idle = true));
    release.get('b')!();
    await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual(['a start', 'b start', 'b end', 'c start']);
    for (const name of ['a', 'c']) release.get(name)!();
    await new Promise((r) => setTimeout(r, 10));
    expect(log.slice(4).sort()).toEqual(['a end', 'c end', 'd start']);
    expect([queue.running, queue.waiting]).toEqual([1, 0]);
    expect(idle).toBe(false);
    release.get('d')!();
    await Promise.all(tasks);
    await queue.idle();
    expect(idle).toBe(true);
    expect(() => new GenerationQueue(0)).toThrow(RangeError);
  });
});

describe('OpenAI request validation', () => {
  it('maps fields to generation options', () => {
    const r = parseChatRequest({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_tokens: 5, temperature: 0, top_k: 3, stop: 'x', stream: true }, 100);
    expect(r).toMatchObject({ messages: [{ role: 'user', content: 'hi' }], stream: true, options: { maxNewTokens: 5, temperature: 0, topK: 3, stop: ['x'] } });
    expect(parseCompletionRequest({ prompt: [[1, 2]] }, 100)).toMatchObject({ prompt: [1, 2], options: { maxNewTokens: 16 } });
  });
  it('rejects bad requests with the parameter named', () => {
    expect(() => parseChatRequest({ messages: [{ role: 'robot', content: 'x' }] }, 1)).toThrow(HttpError);
    expect(() => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], temperature: -1 }, 1)).toThrow(/'temperature'/);
    expect(() => parseChatRequest({ messages: [{ role: 'user', content: 'x' }], n: 2 }, 1)).toThrow(/'n': 1/);
    expect(() => parseCompletionRequest({ prompt: ['a', 'b'] }, 1)).toThrow(/'prompt'/);
  });
});
