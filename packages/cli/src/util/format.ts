/** Human-readable sizes, durations and rates for progress lines and reports. */

/** `1536` → `1.5 kB` (decimal units, as download tools show them). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** Seconds → `1m05s` / `12s` / `0.4s`. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
}

/** A number rounded for JSON reports (keeps 4 decimals; NaN/Infinity become 0 so JSON stays numeric). */
export function round4(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : 0;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
