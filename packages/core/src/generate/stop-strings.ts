/**
 * Cuts streamed text at the first stop string, never letting text past it out: text that could be the
 * start of a stop string is held back until it is known not to be one.
 */
export class StopStringMatcher {
  private held = '';
  private readonly stops: string[];

  /** @param stops - stop strings (empty strings are ignored) */
  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /**
   * Adds streamed text.
   * @returns the text that may be emitted now, and whether a stop string was reached (then `text` is
   *   everything before it and the rest is discarded)
   */
  push(text: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text, stopped: false };
    const buffer = this.held + text;
    let first = -1;
    for (const s of this.stops) {
      const at = buffer.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.held = '';
      return { text: buffer.slice(0, first), stopped: true };
    }
    const keep = this.heldSuffix(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** Releases held-back text at the end of generation. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  /** Length of the longest suffix of `buffer` that is a proper prefix of a stop string. */
  private heldSuffix(buffer: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buffer.length); n > best; n--) {
        if (buffer.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
