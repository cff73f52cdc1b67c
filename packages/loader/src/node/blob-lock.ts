/**
 * Node-only: a lock per blob, so two downloads of the same file (two processes, or two openModel calls
 * in one) do not write into the same `.incomplete` file. The lock is a file created with O_EXCL next to
 * huggingface_hub's own lock folder (`{cache}/.locks/models--owner--name/{etag}.qwen2-ts.lock`; Python's
 * fcntl locks cannot be taken from Node, so the two do not exclude each other). The holder touches it
 * every few seconds; a lock left untouched for `staleMs` (a killed process) is taken over.
 */
import { mkdir, open, rm, stat, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Timings of {@link withBlobLock}. */
export interface LockTimings { pollMs: number; heartbeatMs: number; staleMs: number }
export const DEFAULT_LOCK_TIMINGS: LockTimings = { pollMs: 250, heartbeatMs: 5_000, staleMs: 30_000 };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/**
 * Runs `work` while holding the lock at `lockPath`. While another holder has it, waits; `done()` is asked
 * after each wait so a waiter can stop as soon as the other holder has produced the file.
 * @returns `work`'s result, or undefined when `done()` said the work was already done by someone else
 */
export async function withBlobLock<T>(
  lockPath: string,
  done: () => Promise<boolean>,
  work: () => Promise<T>,
  signal?: AbortSignal,
  timings: LockTimings = DEFAULT_LOCK_TIMINGS,
): Promise<T | undefined> {
  await mkdir(dirname(lockPath), { recursive: true });
  for (;;) {
    signal?.throwIfAborted();
    let handle;
    try {
      handle = await open(lockPath, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > timings.staleMs) await rm(lockPath, { force: true });
      else await sleep(timings.pollMs, signal);
      if (await done()) return undefined;
      continue;
    }
    const heartbeat = setInterval(() => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => {});
    }, timings.heartbeatMs);
    try {
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      if (await done()) return undefined;
      return await work();
    } finally {
      clearInterval(heartbeat);
      await rm(lockPath, { force: true });
    }
  }
}
