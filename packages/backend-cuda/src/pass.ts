import { checkBeginPass, checkEndPass } from '@qwen2-ts/core';
import type { FusableOp } from './fusion.js';

/** The device work of ops fused into one launch; it may absorb the next op in turn. */
export interface FusedWork {
  run: () => void;
  absorb?: (next: RecordedOp) => FusedWork | undefined;
}

/** One enqueued op of a pass, recorded so that the whole pass can be replayed from a CUDA graph. */
export interface RecordedOp {
  /** Identity of the op for graph keys: its kind, the objects and every argument except positions. */
  key: string;
  /** False for ops that carry host data into the stream (write): such passes are never captured. */
  capturable: boolean;
  /** Host-to-device copies the op needs first (token ids); run outside any capture, before replays. */
  prepare?: () => void;
  /** The device work; what a capture records. */
  run: () => void;
  /** What the op does, so that the op recorded before it may absorb it. */
  fusable?: FusableOp;
  /**
   * The device work of this op and `next` as one launch, or undefined when they cannot be fused. Asked
   * only inside a pass, when `next` is recorded right after this op with nothing run in between.
   */
  absorb?: (next: RecordedOp) => FusedWork | undefined;
}

/** The CUDA graph calls the scheduler needs (a slice of the native addon, bound to a context). */
export interface GraphDriver {
  /** Stores the pass's start position on the device, where position-relative ops read it. */
  setPassPos(pos: number): void;
  beginCapture(): void;
  /** Ends a capture and instantiates it; with `discard`, throws the capture away and returns -1. */
  endCapture(discard: boolean): number;
  launchGraph(id: number): void;
  destroyGraph(id: number): void;
}

/** Counters that show what the scheduler did; read by tests and benchmarks. */
export interface PassStats {
  /** Passes run op by op. */
  eager: number;
  /** Passes captured into a new CUDA graph (and launched). */
  captured: number;
  /** Passes replayed from a cached CUDA graph. */
  replayed: number;
  /**
   * Ops recorded into the op before them: a decode matmul's residual add or SwiGLU, the RMSNorm before
   * it (as its prologue), rope of k and the KV write (into rope of q), an in-place RMSNorm into the copy before it.
   */
  fused: number;
}

/**
 * Brackets ops into passes and decides how each pass runs. Outside a pass an op runs at once. Inside,
 * ops are recorded and submitted at {@link PassScheduler.end}: a single-token pass whose key (the op
 * sequence with every non-positional argument) was seen before is captured into a CUDA graph, and later
 * passes with the same key replay that graph after storing their start position on the device. A pass
 * that reads data back midway, writes host data, or has several tokens runs op by op.
 */
export class PassScheduler {
  readonly stats: PassStats = { eager: 0, captured: 0, replayed: 0, fused: 0 };
  private open = false;
  private tokens = 0;
  private startPos = 0;
  private ops: RecordedOp[] = [];
  /** Whether part of the current pass already ran (a read midway): the pass cannot be captured. */
  private flushed = false;
  private readonly graphs = new Map<string, number>();
  private readonly seen = new Set<string>();
  private readonly uncapturable = new Set<string>();

  /**
   * @param driver - the CUDA graph calls
   * @param maxGraphs - graphs kept at most (the least recently used one is destroyed beyond)
   */
  constructor(private readonly driver: GraphDriver, private readonly maxGraphs = 8) {}

  get inPass(): boolean {
    return this.open;
  }

  /** Start position of the open pass. */
  get passStart(): number {
    return this.startPos;
  }

  /** Tokens of the open pass. */
  get passTokens(): number {
    return this.tokens;
  }

  /** Number of cached graphs. */
  get graphCount(): number {
    return this.graphs.size;
  }

  begin(tokens: number, startPos: number): void {
    checkBeginPass(this.open, tokens, startPos);
    this.open = true;
    this.tokens = tokens;
    this.startPos = startPos;
    this.ops = [];
    this.flushed = false;
  }

  /**
   * Runs `op` now outside a pass, or records it for the open pass, fused into the op recorded just
   * before it when that op can absorb it.
   */
  submit(op: RecordedOp): void {
    if (!this.open) {
      op.prepare?.();
      op.run();
      return;
    }
    const last = this.ops[this.ops.length - 1];
    const fused = last?.absorb?.(op);
    if (last && fused) {
      const prepares = [last.prepare, op.prepare].filter((p) => p !== undefined);
      this.ops[this.ops.length - 1] = {
        key: `${last.key}+${op.key}`,
        capturable: last.capturable && op.capturable,
        prepare: prepares.length > 0 ? () => prepares.forEach((p) => p()) : undefined,
        run: fused.run,
        absorb: fused.absorb,
      };
      this.stats.fused++;
      return;
    }
    this.ops.push(op);
  }

  /** Runs the ops recorded so far (before a read in the middle of a pass). */
  flush(): void {
    if (!this.open || this.ops.length === 0) return;
    const ops = this.takeOps();
    this.flushed = true;
    this.runEager(ops);
  }

  end(): void {
    checkEndPass(this.open);
    const ops = this.takeOps();
    const key = this.flushed ? undefined : this.keyOf(ops);
    this.open = false;
    if (ops.length === 0) return;
    const graph = key === undefined ? undefined : this.graphs.get(key);
    if (key !== undefined && graph !== undefined) {
      for (const op of ops) op.prepare?.();
      this.driver.setPassPos(this.startPos);
      this.driver.launchGraph(graph);
      // Most recently used last, so eviction drops the oldest.
      this.graphs.delete(key);
      this.graphs.set(key, graph);
      this.stats.replayed++;
      return;
    }
    if (key !== undefined && this.seen.has(key) && !this.uncapturable.has(key)) {
      const id = this.capture(ops);
      if (id !== undefined) {
        this.remember(key, id);
        this.driver.launchGraph(id);
        this.stats.captured++;
        return;
      }
      this.uncapturable.add(key);
    }
    if (key !== undefined) this.seen.add(key);
    this.runEager(ops);
  }

  /** Destroys every cached graph (their device pointers may be about to go away). */
  invalidate(): void {
    for (const id of this.graphs.values()) this.driver.destroyGraph(id);
    this.graphs.clear();
  }

  /** Drops the open pass without running it (the backend is being disposed). */
  abandon(): void {
    this.open = false;
    this.ops = [];
  }

  private takeOps(): RecordedOp[] {
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  private runEager(ops: RecordedOp[]): void {
    this.driver.setPassPos(this.startPos);
    for (const op of ops) {
      op.prepare?.();
      op.run();
    }
    this.stats.eager++;
  }

  /** Captures the pass; returns undefined (after discarding the capture) when any op fails to record. */
  private capture(ops: RecordedOp[]): number | undefined {
    for (const op of ops) op.prepare?.();
    this.driver.setPassPos(this.startPos);
    this.driver.beginCapture();
    try {
      for (const op of ops) op.run();
    } catch {
      this.driver.endCapture(true);
      return undefined;
    }
    try {
      return this.driver.endCapture(false);
    } catch {
      return undefined; // instantiation failed: the pass runs op by op instead
    }
  }

  private remember(key: string, id: number): void {
    this.graphs.set(key, id);
    while (this.graphs.size > this.maxGraphs) {
      const [oldest, old] = this.graphs.entries().next().value as [string, number];
      this.graphs.delete(oldest);
      this.driver.destroyGraph(old);
    }
  }

  /** The graph key of a pass, or undefined when the pass must not be captured. */
  private keyOf(ops: RecordedOp[]): string | undefined {
    if (this.tokens !== 1) return undefined;
    let key = `${this.tokens}`;
    for (const op of ops) {
      if (!op.capturable) return undefined;
      key += `;${op.key}`;
    }
    return key;
  }
}
