/** Writing to stdout in a way that survives large outputs and closed pipes (`qwen2 ... | head`). */
import type { Writable } from 'node:stream';

/**
 * Writes text and waits until the stream accepted it (backpressure), so that megabytes of JSON logits
 * are neither buffered twice nor lost when the process exits.
 */
export function writeOut(text: string, stream: Writable = process.stdout): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    stream.once('error', onError);
    const ok = stream.write(text, (err) => {
      stream.off('error', onError);
      if (err) reject(err);
      else resolve();
    });
    void ok;
  });
}

/**
 * JSON for an array of float32 values: each value is written as the shortest decimal that reads back
 * as the same float32 (so `Float32Array.from(JSON.parse(text))` is bit-exact), non-finite values as null.
 */
export function float32ArrayJson(values: ArrayLike<number>): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) parts[i] = float32Json(values[i]!);
  return `[${parts.join(',')}]`;
}

const f32 = new Float32Array(1);

/** Shortest decimal that rounds to the same float32 (tries 6..9 significant digits). */
export function float32Json(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (Object.is(x, -0)) return '-0';
  f32[0] = x;
  const exact = f32[0]!;
  for (let digits = 6; digits < 9; digits++) {
    const s = exact.toPrecision(digits);
    f32[0] = Number(s);
    if (f32[0] === exact) return String(Number(s));
  }
  return String(Number(exact.toPrecision(9)));
}
