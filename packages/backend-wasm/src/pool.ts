import { PARALLEL_KERNELS, type ParallelKernel } from './kernels.js';
import { workerMain } from './worker-main.js';

/** Int32 slots of the control buffer (see worker-main.ts). */
const CTL_GEN = 0, CTL_DONE = 1, CTL_OP = 2, CTL_MEM = 3, CTL_SLEEPERS = 4, CTL_ERROR = 5, CTL_NEXT = 6;
/** Float64 slots: common args at 8.., the job's (units, units per chunk, chunks) at 21.., per-thread scratch at 24... */
const ARGS = 8, JOB = 21, SCRATCH = 24, MAX_ARGS = 13;
/**
 * Chunks per thread of a job. Threads take chunks from a shared counter, so a thread the OS runs late
 * (this machine's other tenants) leaves its chunks to the others instead of making them wait: with a
 * static split the main thread spent 30% of a 2-thread prefill waiting for the worker.
 */
const CHUNKS_PER_THREAD = 4;
const OP_YIELD = -1, OP_EXIT = -2;
/**
 * Contention guard: when the workers lag behind the main thread by more than SLOW_MS plus twice the
 * main thread's own share on SLOW_STREAK jobs in a row (the OS is not running them: more busy threads
 * than cores), the next SOLO_JOBS jobs run on the main thread alone, then threads are tried again.
 */
const SLOW_MS = 0.05, SLOW_STREAK = 8, SOLO_JOBS = 2000;
/** A job whose workers have not all finished after this long means a dead worker: fail instead of hanging. */
const WORKER_TIMEOUT_MS = 60_000;
/** Most threads the control buffer has room for. */
export const MAX_THREADS = 64;

/** A started worker, Node or browser, behind one small interface. */
interface WorkerHandle {
  post(message: unknown): void;
  /** Resolves with the next message from the worker. */
  next(): Promise<{ type: string; message?: string }>;
  terminate(): Promise<void>;
}

/** Calls the kernel on the main thread's instance of a memory. */
export type MainRunner = (op: ParallelKernel, memory: number, start: number, end: number, scratch: number, args: readonly number[]) => void;

/**
 * Main thread + (threads - 1) workers sharing the kernel memories. One job at a time: the main thread
 * writes the arguments and the job's chunking into a SharedArrayBuffer, bumps a generation counter
 * (notifying only if some worker went to sleep), takes chunks like every worker until none is left,
 * then spins until every worker has bumped the done counter. Cost per job: about a microsecond when
 * the workers are spinning.
 */
export class ThreadPool {
  private readonly ctl: Int32Array;
  private readonly f64: Float64Array;
  /** False while workers are out of their loop (receiving a memory); jobs then run on the main thread alone. */
  private ready = false;
  private disposed = false;
  /** Set when a worker stopped answering: the pool is never used again. */
  private broken = false;
  private jobs = 0;
  private slowStreak = 0;
  private soloUntil = 0;
  /** Jobs that ran on the main thread alone because of the contention guard (for benchmarks). */
  soloJobs = 0;

  private constructor(
    private readonly workers: WorkerHandle[],
    private readonly buffer: SharedArrayBuffer,
    private readonly runMain: MainRunner,
  ) {
    this.ctl = new Int32Array(buffer);
    this.f64 = new Float64Array(buffer);
  }

  /** Threads that run a job, the main thread included. */
  get threads(): number {
    return this.ready ? this.workers.length + 1 : 1;
  }

  /**
   * Starts `threads - 1` workers over the given shared memories.
   * @param bytes - the shared-memory kernel module
   * @param spinMicros - how long an idle worker spins before sleeping
   * @throws Error when a worker cannot start or instantiate the kernels
   */
  static async start(threads: number, bytes: Uint8Array, memories: WebAssembly.Memory[], spinMicros: number, runMain: MainRunner): Promise<ThreadPool> {
    const buffer = new SharedArrayBuffer((SCRATCH + MAX_THREADS) * 8);
    const source = `(${workerMain.toString()})`;
    const workers: WorkerHandle[] = [];
    const pool = new ThreadPool(workers, buffer, runMain);
    try {
      for (let tid = 1; tid < threads; tid++) workers.push(await spawn(source, spinMicros));
      for (let tid = 1; tid < threads; tid++) workers[tid - 1]!.post({ type: 'init', bytes, ctl: buffer, tid, memories });
      for (const w of workers) await expectReady(w);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    pool.ready = true;
    return pool;
  }

  /**
   * Runs `op` over units 0..units split into contiguous chunks (multiples of `align`), which the threads
   * take in turn from a shared counter until none is left.
   * @param scratch - per-thread scratch: thread i gets `scratch.base + i * scratch.stride`
   * @throws Error when a worker's kernel trapped
   */
  run(op: ParallelKernel, memory: number, units: number, align: number, args: readonly number[], scratch = { base: 0, stride: 0 }): void {
    const n = this.threads;
    this.jobs++;
    if (n === 1 || units < 2 * align || this.jobs < this.soloUntil) {
      if (this.jobs < this.soloUntil) this.soloJobs++;
      this.runMain(op, memory, 0, units, scratch.base, args);
      return;
    }
    const c = this.ctl, f = this.f64;
    for (let i = 0; i < args.length; i++) f[ARGS + i] = args[i]!;
    const chunk = Math.max(1, Math.ceil(Math.ceil(units / align) / (n * CHUNKS_PER_THREAD))) * align;
    const chunks = Math.ceil(units / chunk);
    f[JOB] = units;
    f[JOB + 1] = chunk;
    f[JOB + 2] = chunks;
    for (let t = 0; t < n; t++) f[SCRATCH + t] = scratch.base + t * scratch.stride;
    Atomics.store(c, CTL_NEXT, 0);
    Atomics.store(c, CTL_DONE, 0);
    c[CTL_OP] = PARALLEL_KERNELS.indexOf(op);
    c[CTL_MEM] = memory;
    this.signal();
    let mainError: unknown;
    const t0 = performance.now();
    try {
      for (let k = Atomics.add(c, CTL_NEXT, 1); k < chunks; k = Atomics.add(c, CTL_NEXT, 1)) {
        this.runMain(op, memory, k * chunk, Math.min(units, (k + 1) * chunk), scratch.base, args);
      }
    } catch (e) {
      mainError = e;
    }
    const t1 = performance.now();
    this.awaitWorkers(op);
    if (performance.now() - t1 > SLOW_MS + 2 * (t1 - t0)) {
      if (++this.slowStreak >= SLOW_STREAK) {
        this.soloUntil = this.jobs + SOLO_JOBS;
        this.slowStreak = 0;
      }
    } else {
      this.slowStreak = 0;
    }
    if (mainError) throw mainError;
    if (Atomics.load(c, CTL_ERROR)) {
      Atomics.store(c, CTL_ERROR, 0);
      throw new Error(`backend-wasm: kernel ${op} trapped in a worker`);
    }
  }

  /** Hands one more memory to every worker (they leave their loop for it, then come back). */
  async addMemory(memory: WebAssembly.Memory): Promise<void> {
    if (this.workers.length === 0 || this.disposed || this.broken) return;
    this.leaveLoop(OP_YIELD);
    for (const w of this.workers) w.post({ type: 'memory', memory });
    for (const w of this.workers) await expectReady(w);
    this.ready = true;
  }

  /** Stops and terminates the workers. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ready) this.leaveLoop(OP_EXIT);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private leaveLoop(op: number): void {
    this.ready = false;
    Atomics.store(this.ctl, CTL_DONE, 0);
    this.ctl[CTL_OP] = op;
    this.signal();
    this.awaitWorkers(op === OP_EXIT ? 'exit' : 'yield');
  }

  /** Spins until every worker has finished the current job (microseconds when they are awake). */
  private awaitWorkers(what: string): void {
    const c = this.ctl, workers = this.workers.length;
    let spins = 0;
    const start = performance.now();
    while (Atomics.load(c, CTL_DONE) < workers) {
      if ((++spins & 0xfffff) === 0 && performance.now() - start > WORKER_TIMEOUT_MS) {
        // A worker died or hangs: never wait on the pool again (later jobs run on this thread alone).
        this.ready = false;
        this.broken = true;
        throw new Error(`backend-wasm: a worker did not finish '${what}' within ${WORKER_TIMEOUT_MS / 1000} s; continuing on one thread`);
      }
    }
  }

  private signal(): void {
    Atomics.add(this.ctl, CTL_GEN, 1);
    if (Atomics.load(this.ctl, CTL_SLEEPERS) > 0) Atomics.notify(this.ctl, CTL_GEN);
  }
}

async function expectReady(w: WorkerHandle): Promise<void> {
  const m = await w.next();
  if (m.type !== 'ready') throw new Error(`backend-wasm: a worker failed to start: ${m.message ?? m.type}`);
}

/** Whether this runtime is Node.js (worker_threads) rather than a browser (Web Workers). */
function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

async function spawn(source: string, spinMicros: number): Promise<WorkerHandle> {
  const names = JSON.stringify(PARALLEL_KERNELS);
  const queue: { type: string; message?: string }[] = [];
  const waiters: ((m: { type: string; message?: string }) => void)[] = [];
  // In Node, a worker keeps the process alive only while someone waits for one of its messages: an
  // idle pool never does, so a forgotten dispose() cannot hang vitest or the CLI.
  let keepAlive: (alive: boolean) => void = () => {};
  const deliver = (m: { type: string; message?: string }): void => {
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
    keepAlive(waiters.length > 0);
  };
  const next = (): Promise<{ type: string; message?: string }> => {
    if (queue.length) return Promise.resolve(queue.shift()!);
    return new Promise((resolve) => {
      waiters.push(resolve);
      keepAlive(true);
    });
  };
  if (isNode()) {
    const specifier = 'node:worker_threads';
    const { Worker } = (await import(/* @vite-ignore */ specifier)) as typeof import('node:worker_threads');
    // getBuiltinModule reads the same in CommonJS and in ESM, so the worker inherits the process's options
    // as they are (an --input-type=module of a node -e script included). Passing execArgv instead makes
    // Node reject V8 flags such as --experimental-wasm-relaxed-simd in a worker.
    const code = `const { parentPort } = process.getBuiltinModule('node:worker_threads');\n` +
      `${source}({ post: (m) => parentPort.postMessage(m), on: (f) => parentPort.on('message', f) }, ${names}, ${spinMicros});`;
    const worker = new Worker(code, { eval: true });
    worker.on('message', deliver);
    worker.on('error', (e) => deliver({ type: 'error', message: String(e) }));
    keepAlive = (alive) => (alive ? worker.ref() : worker.unref());
    keepAlive(waiters.length > 0);
    return { post: (m) => worker.postMessage(m), next, terminate: async () => { await worker.terminate(); } };
  }
  const code = `${source}({ post: (m) => postMessage(m), on: (f) => { onmessage = (e) => f(e.data); } }, ${names}, ${spinMicros});`;
  const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));
  const worker = new Worker(url);
  worker.onmessage = (e: MessageEvent) => deliver(e.data as { type: string; message?: string });
  worker.onerror = (e: ErrorEvent) => deliver({ type: 'error', message: e.message });
  return { post: (m) => worker.postMessage(m), next, terminate: async () => { worker.terminate(); URL.revokeObjectURL(url); } };
}
