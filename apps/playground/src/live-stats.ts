/**
 * The stats line while a reply streams: estimated from token arrival times until the worker reports
 * core's own measurements at the end (which then replace the estimates).
 */
import type { MemoryUse, ReplyStats } from './worker/protocol.js';

export interface StatsView {
  timeToFirstTokenMs?: number;
  prefillTokensPerSecond?: number;
  decodeTokensPerSecond?: number;
  tokens: number;
  promptTokens?: number;
  memory?: MemoryUse;
  /** Whether these are the final numbers from core rather than estimates. */
  final: boolean;
}

/** Tracks one reply's timing. */
export class LiveStats {
  private first: number | undefined;
  private last: number | undefined;
  private count = 0;
  private finalStats: ReplyStats | undefined;

  constructor(private memory?: MemoryUse) {}

  /** A token arrived `atMs` after the request was sent. */
  token(atMs: number): void {
    this.first ??= atMs;
    this.last = atMs;
    this.count++;
  }

  /** core's numbers for the finished reply. */
  finish(stats: ReplyStats): void {
    this.finalStats = stats;
    this.memory = stats.memory;
  }

  view(): StatsView {
    const f = this.finalStats;
    if (f) {
      return {
        timeToFirstTokenMs: f.timeToFirstTokenMs,
        prefillTokensPerSecond: f.prefillTokensPerSecond,
        decodeTokensPerSecond: f.decodeTokensPerSecond,
        tokens: f.ids.length,
        promptTokens: f.promptTokens,
        memory: f.memory,
        final: true,
      };
    }
    // Decode rate: tokens after the first over the time since the first (the first one pays for prefill).
    const span = this.first !== undefined && this.last !== undefined ? this.last - this.first : 0;
    return {
      ...(this.first !== undefined ? { timeToFirstTokenMs: this.first } : {}),
      ...(this.count > 1 && span > 0 ? { decodeTokensPerSecond: ((this.count - 1) * 1000) / span } : {}),
      tokens: this.count,
      ...(this.memory ? { memory: this.memory } : {}),
      final: false,
    };
  }
}

/** Total bytes the backend holds. */
export function totalMemory(m: MemoryUse): number {
  return m.weights + m.activations + m.kvCache;
}
