/** Human-readable numbers for the page: bytes, rates, durations, progress lines. */

const BYTE_UNITS = ['B', 'KB', 'MB', 'GB', 'TB'] as const;

/** Formats a byte count with decimal units (as browsers and the Hub show sizes): `1.50 MB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${BYTE_UNITS[unit]}`;
}

/** Formats a rate in tokens per second, or a dash when unknown (no tokens yet, zero time). */
export function formatTokensPerSecond(rate: number | undefined): string {
  if (rate === undefined || !Number.isFinite(rate) || rate <= 0) return '–';
  return `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} tok/s`;
}

/** Formats milliseconds: `850 ms`, `1.25 s`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '–';
  return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A fraction in [0, 1] as a whole percentage; 1 only when truly complete (99.95% shows 99%). */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '–';
  const clamped = Math.min(1, Math.max(0, fraction));
  return `${Math.floor(clamped * 100)}%`;
}
