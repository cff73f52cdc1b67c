import { describe, expect, it } from 'vitest';
import { RemoteFileError } from '../errors.js';
import { parallelRangeStream, type RangeFetcher } from './parallel-ranges.js';

const FILE = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 0xff);

/** A fetcher over FILE whose answers wait until released, recording the ranges asked and their signals. */
function server(answer: (start: number, end: number) => Response = (start, end) => ranged(FILE.slice(start, end + 1), start, end)) {
  const asked: [number, number][] = [];
  const signals: AbortSignal[] = [];
  const waiting: (() => void)[] = [];
  const fetchRange: RangeFetcher = (start, end, signal) => {
    asked.push([start, end]);
    signals.push(signal);
    return new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      waiting.push(() => resolve(answer(start, end)));
    });
  };
  const releaseAll = () => { for (const w of waiting.splice(0)) w(); };
  return { fetchRange, asked, signals, releaseAll };
}

function ranged(bytes: Uint8Array, start: number, end: number, status = 206): Response {
  return new Response(bytes as Uint8Array<ArrayBuffer>, { status, headers: { 'content-range': `bytes ${start}-${end}/${FILE.byteLength}` } });
}

async function readAll(stream: ReadableStream<Uint8Array>, onChunk?: () => void): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    onChunk?.();
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('parallelRangeStream', () => {
  it('delivers the bytes in order whatever order the answers come in, never more than `connections` chunks ahead', async () => {
    const s = server();
    const stream = parallelRangeStream(s.fetchRange, 'file', 100, 1000, { chunkBytes: 128, connections: 3 });
    expect(s.asked).toEqual([[100, 227], [228, 355], [356, 483]]);
    let delivered = 0;
    let mostAhead = 0;
    const reading = readAll(stream, () => {
      delivered++;
      mostAhead = Math.max(mostAhead, s.asked.length - delivered);
      s.releaseAll();
    });
    s.releaseAll();
    const bytes = await reading;
    expect(bytes).toEqual(FILE.slice(100));
    expect(s.asked.map(([a]) => a)).toEqual([100, 228, 356, 484, 612, 740, 868, 996]);
    expect(s.asked.at(-1)).toEqual([996, 999]);
    expect(mostAhead).toBe(3);
  });

  it('answers out of order are put back in order', async () => {
    // Later chunks answer at once, the first only after a delay.
    const fetchRange: RangeFetcher = async (start, end) => {
      if (start === 0) await new Promise((r) => setTimeout(r, 20));
      return ranged(FILE.slice(start, end + 1), start, end);
    };
    expect(await readAll(parallelRangeStream(fetchRange, 'file', 0, 1000, { chunkBytes: 100, connections: 4 }))).toEqual(FILE);
  });

  it('errors, naming the range, on a wrong range, a whole-file answer, a short or a long body', async () => {
    const cases: [string, (start: number, end: number) => Response, RegExp][] = [
      ['wrong range', (start, end) => ranged(FILE.slice(start + 1, end + 2), start + 1, end + 1), /file: asked for bytes 0-99, got HTTP 206 bytes 1-100\/1000/],
      ['whole file', () => new Response(FILE, { status: 200 }), /file: asked for bytes 0-99, got HTTP 200/],
      ['refused', () => new Response('expired', { status: 403 }), /file: asked for bytes 0-99, got HTTP 403/],
      ['short body', (start, end) => ranged(FILE.slice(start, end), start, end), /file: bytes 0-99 ended after 99 of 100/],
      ['long body', (start, end) => ranged(FILE.slice(start, end + 2), start, end), /file: the server sent more than the 100 bytes asked for at 0/],
    ];
    for (const [what, answer, message] of cases) {
      const error = await readAll(parallelRangeStream(async (a, b) => answer(a, b), 'file', 0, 1000, { chunkBytes: 100, connections: 2 })).catch((e: unknown) => e);
      expect(error, what).toBeInstanceOf(RemoteFileError);
      expect((error as Error).message, what).toMatch(message);
    }
  });

  it('delivers the chunks before a failure, then the failure; requests still in flight are aborted', async () => {
    const s = server((start, end) => (start === 300 ? new Response(null, { status: 500 }) : ranged(FILE.slice(start, end + 1), start, end)));
    const reader = parallelRangeStream(s.fetchRange, 'file', 0, 1000, { chunkBytes: 100, connections: 5 }).getReader();
    s.releaseAll();
    const got: number[] = [];
    let failure: unknown;
    for (;;) {
      try {
        const { value, done } = await reader.read();
        if (done) break;
        got.push(value.byteLength);
        s.releaseAll();
      } catch (e) {
        failure = e;
        break;
      }
    }
    expect(got).toEqual([100, 100, 100]);
    expect((failure as Error).message).toMatch(/bytes 300-399, got HTTP 500/);
    expect(s.signals.every((sig) => sig.aborted)).toBe(true);
  });

  it('cancelling the stream, or the caller\'s signal, aborts the requests in flight', async () => {
    const first = server();
    const stream = parallelRangeStream(first.fetchRange, 'file', 0, 1000, { chunkBytes: 100, connections: 4 });
    expect(first.signals).toHaveLength(4);
    await stream.cancel();
    expect(first.signals.every((sig) => sig.aborted)).toBe(true);

    const controller = new AbortController();
    const second = server();
    const reading = readAll(parallelRangeStream(second.fetchRange, 'file', 0, 1000, { chunkBytes: 100, connections: 4, signal: controller.signal }));
    await tick();
    controller.abort(new Error('user cancelled'));
    await expect(reading).rejects.toThrow('user cancelled');
    expect(second.signals.every((sig) => sig.aborted)).toBe(true);
  });

  it('an empty range is an empty stream, with no request', async () => {
    const s = server();
    expect(await readAll(parallelRangeStream(s.fetchRange, 'file', 1000, 1000))).toEqual(new Uint8Array(0));
    expect(s.asked).toEqual([]);
  });
});
