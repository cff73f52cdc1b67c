import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = new URL('../dist/index.js', import.meta.url).href;

describe('worker threads and process lifetime', () => {
  // The second case is how Node 20 users switch relaxed SIMD on by hand: V8 flags that a Worker's
  // explicit execArgv would refuse, so the workers must inherit the process's options instead.
  it.each([[[]], [['--experimental-wasm-relaxed-simd']]])('a process (node flags %j) that never disposes its 2-thread backend still exits by itself once its work is done', (flags: string[]) => {
    // Waiting for the workers' start-up must keep the process alive (exit code 13 would mean an
    // unfinished top-level await); an idle pool afterwards must not.
    const script = `
      import { wasmBackend } from ${JSON.stringify(dist)};
      const b = await wasmBackend({ threads: 2 });
      const x = b.alloc(1, 64);
      b.write(x, new Float32Array(64).fill(1));
      const w = await b.uploadWeight({ format: 'f32', rows: 8, cols: 64, data: new Float32Array(512).fill(0.5) }, 'w');
      const y = b.alloc(1, 8);
      b.beginPass(1, 0); b.matmul(x, [w], [undefined], [y]); b.endPass();
      console.log(JSON.stringify({ threads: b.info.threads, y: Array.from(await b.read(y)) }));
    `;
    const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, cwd: fileURLToPath(new URL('..', import.meta.url)) });
    expect(r.signal).toBeNull(); // not killed by the timeout
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ threads: 2, y: new Array(8).fill(32) });
  });
});
