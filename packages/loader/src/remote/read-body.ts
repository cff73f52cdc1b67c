/** Reading one HTTP response body into a buffer of the bytes asked for: the range readers' shared loop. */
import { RemoteFileError } from '../errors.js';

/**
 * Fills `target` from `body` and returns the bytes it held (fewer only when the body ended early).
 * @param url - the file, for messages
 * @param at - where the bytes start in the file, for messages
 * @throws {@link RemoteFileError} when the body holds more than `target`, or the connection breaks (after
 *   cancelling it); the signal's reason when aborted
 */
export async function readBodyInto(body: ReadableStream<Uint8Array>, target: Uint8Array, url: string, at: number, signal?: AbortSignal): Promise<number> {
  let done = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) return done;
      if (done + value.byteLength > target.byteLength) throw new RemoteFileError(url, `${url}: the server sent more than the ${target.byteLength} bytes asked for at ${at}`);
      target.set(value, done);
      done += value.byteLength;
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (signal?.aborted) throw signal.reason;
    if (e instanceof RemoteFileError) throw e;
    throw new RemoteFileError(url, `${url}: connection lost after ${done} of ${target.byteLength} bytes (${(e as Error).message})`, undefined, { cause: e });
  }
}
