/**
 * The body of a kernel worker. It is serialized with `Function.prototype.toString` into the worker's
 * source (Node `eval` worker or browser Blob URL), so it must not reference anything outside itself.
 *
 * Protocol (see pool.ts): messages `init` (module bytes, control buffer, thread id, memories) and
 * `memory` (one more memory) are answered with `ready`, after which the worker enters its job loop on
 * the shared control buffer. In the loop it spins on the generation counter for `spinMicros`, then
 * sleeps in `Atomics.wait` (announcing itself in the sleepers count so the main thread knows to
 * notify). A negative op code leaves the loop (back to the event loop, to receive messages).
 */
export function workerMain(
  port: { post(message: unknown): void; on(handler: (message: any) => void): void },
  kernelNames: readonly string[],
  spinMicros: number,
): void {
  const CTL_GEN = 0, CTL_DONE = 1, CTL_OP = 2, CTL_MEM = 3, CTL_SLEEPERS = 4, CTL_ERROR = 5, CTL_NEXT = 6;
  const ARGS = 8, JOB = 21, SCRATCH = 24; // Float64 indices: common args, (units, chunk, chunks), scratch per thread
  const OP_EXIT = -2;
  let ctl: Int32Array | undefined;
  let args: Float64Array | undefined;
  let module: WebAssembly.Module | undefined;
  let tid = 0;
  let seen = 0;
  const tables: ((...a: number[]) => void)[][] = [];

  function addMemory(memory: WebAssembly.Memory): void {
    const instance = new WebAssembly.Instance(module!, { env: { memory, abort() { throw new Error('wasm kernel abort'); } } });
    tables.push(kernelNames.map((n) => instance.exports[n] as (...a: number[]) => void));
  }

  function loop(): void {
    const c = ctl!, a = args!;
    for (;;) {
      let g = Atomics.load(c, CTL_GEN);
      if (g === seen) {
        const until = performance.now() + spinMicros / 1000;
        let spins = 0;
        while (g === seen) {
          if ((++spins & 255) === 0 && performance.now() > until) {
            Atomics.add(c, CTL_SLEEPERS, 1);
            Atomics.wait(c, CTL_GEN, seen);
            Atomics.sub(c, CTL_SLEEPERS, 1);
          }
          g = Atomics.load(c, CTL_GEN);
        }
      }
      seen = g;
      const op = c[CTL_OP]!;
      if (op < 0) {
        Atomics.add(c, CTL_DONE, 1);
        if (op === OP_EXIT) ctl = undefined;
        return;
      }
      const fn = tables[c[CTL_MEM]!]![op]!;
      const units = a[JOB]!, chunk = a[JOB + 1]!, chunks = a[JOB + 2]!, scratch = a[SCRATCH + tid]!;
      try {
        // Chunks from the shared counter until none is left (the main thread takes them too).
        for (let k = Atomics.add(c, CTL_NEXT, 1); k < chunks; k = Atomics.add(c, CTL_NEXT, 1)) {
          fn(k * chunk, Math.min(units, (k + 1) * chunk), scratch, a[ARGS]!, a[ARGS + 1]!, a[ARGS + 2]!, a[ARGS + 3]!, a[ARGS + 4]!,
            a[ARGS + 5]!, a[ARGS + 6]!, a[ARGS + 7]!, a[ARGS + 8]!, a[ARGS + 9]!, a[ARGS + 10]!, a[ARGS + 11]!, a[ARGS + 12]!);
        }
      } catch {
        Atomics.store(c, CTL_ERROR, 1);
      }
      Atomics.add(c, CTL_DONE, 1);
    }
  }

  port.on((m: { type: string; bytes?: Uint8Array<ArrayBuffer>; ctl?: SharedArrayBuffer; tid?: number; memories?: WebAssembly.Memory[]; memory?: WebAssembly.Memory }) => {
    try {
      if (m.type === 'init') {
        module = new WebAssembly.Module(m.bytes!);
        ctl = new Int32Array(m.ctl!);
        args = new Float64Array(m.ctl!);
        tid = m.tid!;
        seen = Atomics.load(ctl, CTL_GEN);
        for (const mem of m.memories!) addMemory(mem);
      } else if (m.type === 'memory') {
        addMemory(m.memory!);
      } else if (m.type === 'exit') {
        return;
      }
      port.post({ type: 'ready' });
    } catch (e) {
      port.post({ type: 'error', message: String(e) });
      return;
    }
    if (ctl) loop();
  });
}
