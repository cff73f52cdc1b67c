/** Starts `qwen2 serve` on a free port and reads the address it prints. */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { cliAsync } from './helpers.js';

export interface ServerProcess {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** Everything the server printed on stderr so far. */
  stderr(): string;
  stop(): Promise<number | null>;
}

export async function startServer(args: string[]): Promise<ServerProcess> {
  const child = cliAsync(['serve', '--port', '0', ...args]);
  let err = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
    child.stderr.on('data', (d: string) => {
      err += d;
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
  return {
    url,
    child,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGINT');
      }),
  };
}

/** Reads a server-sent-events body into its JSON events (stops at `[DONE]`). */
export async function readEvents(response: Response, onEvent?: (e: unknown) => void): Promise<{ events: unknown[]; done: boolean }> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: unknown[] = [];
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, done: false };
    buffer += value;
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data === '[DONE]') return { events, done: true };
      const event = JSON.parse(data) as unknown;
      events.push(event);
      onEvent?.(event);
    }
  }
}
