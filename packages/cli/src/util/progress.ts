/**
 * Progress bars on stderr. They draw only on a terminal (redirected stderr stays clean for scripts) and
 * are always erased before anything else is written to stderr, so a bar never hides a note or an error.
 */
import { formatBytes, formatSeconds } from './format.js';

/** A line of progress: label, done/total in bytes (or items with `unit: ''`). */
export interface ProgressLine {
  label: string;
  done: number;
  total: number;
}

/** Where progress and notes go: a terminal gets redrawn bars, anything else gets only notes. */
export class StatusOutput {
  private lines = 0;
  private lastDraw = 0;
  private readonly started = Date.now();

  /**
   * @param stream - stderr (or a test double)
   * @param enabled - false with --quiet: no bars, no notes (errors are printed elsewhere)
   */
  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = true,
  ) {}

  /** Whether bars are drawn (a TTY and not quiet). */
  get drawsBars(): boolean {
    return this.enabled && this.stream.isTTY === true;
  }

  /** Erases the bars currently drawn. */
  clear(): void {
    if (this.lines === 0) return;
    // Move to the first bar line and clear to the end of the screen.
    this.stream.write(`\r${this.lines > 1 ? `\x1b[${this.lines - 1}A` : ''}\x1b[J`);
    this.lines = 0;
  }

  /** Prints a note line (erasing bars first); suppressed by --quiet. */
  note(message: string): void {
    if (!this.enabled) return;
    this.clear();
    this.stream.write(`qwen2: ${message}\n`);
  }

  /** Writes text that must always show (errors): erases bars first. */
  always(text: string): void {
    this.clear();
    this.stream.write(text);
  }

  /**
   * Draws (or redraws) a block of progress lines, at most every 100 ms unless `force`.
   * @param lines - one bar per entry
   * @param force - draw even if the last draw was very recent (final state)
   */
  draw(lines: readonly ProgressLine[], force = false): void {
    if (!this.drawsBars) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = Math.max(20, Math.min(120, this.stream.columns || Number(process.env.COLUMNS) || 80) - 1);
    const text = lines.map((l) => renderBar(l, width, (now - this.started) / 1000)).join('\n');
    this.clear();
    this.stream.write(text);
    this.lines = lines.length;
  }

  /** Erases the bars and forgets them (a phase ended). */
  done(): void {
    this.clear();
  }
}

/** One bar line: `label [#####.....]  45% 12.3 MB/27.0 MB 3.2 MB/s`. */
export function renderBar(line: ProgressLine, width: number, elapsedSeconds: number): string {
  const fraction = line.total > 0 ? Math.min(1, line.done / line.total) : 0;
  const rate = elapsedSeconds > 0 ? line.done / elapsedSeconds : 0;
  const eta = rate > 0 && line.total > line.done ? ` eta ${formatSeconds((line.total - line.done) / rate)}` : '';
  const tail = ` ${String(Math.floor(fraction * 100)).padStart(3)}% ${formatBytes(line.done)}/${formatBytes(line.total)}${eta}`;
  const labelWidth = Math.min(28, Math.max(8, width - tail.length - 14));
  const label = line.label.length > labelWidth ? `…${line.label.slice(-(labelWidth - 1))}` : line.label.padEnd(labelWidth);
  const barWidth = Math.max(5, width - label.length - tail.length - 3);
  const filled = Math.round(fraction * barWidth);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${tail}`.slice(0, width);
}
