import { describe, expect, it } from 'vitest';
import { formatBytes, formatMs, formatPercent, formatTokensPerSecond } from './format.js';

describe('format', () => {
  it('formats bytes with decimal units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.50 KB');
    expect(formatBytes(19_627_752)).toBe('19.6 MB');
    expect(formatBytes(988_097_824)).toBe('988 MB');
    expect(formatBytes(3.2e9)).toBe('3.20 GB');
    expect(formatBytes(-1)).toBe('–');
    expect(formatBytes(Number.NaN)).toBe('–');
  });
  it('formats rates and durations, with a dash when unknown', () => {
    expect(formatTokensPerSecond(12.345)).toBe('12.3 tok/s');
    expect(formatTokensPerSecond(250.4)).toBe('250 tok/s');
    expect(formatTokensPerSecond(0)).toBe('–');
    expect(formatTokensPerSecond(Infinity)).toBe('–');
    expect(formatTokensPerSecond(undefined)).toBe('–');
    expect(formatMs(850.2)).toBe('850 ms');
    expect(formatMs(1250)).toBe('1.25 s');
    expect(formatMs(undefined)).toBe('–');
  });
  it('never rounds an unfinished fraction up to 100%', () => {
    expect(formatPercent(0.9995)).toBe('99%');
    expect(formatPercent(1)).toBe('100%');
    expect(formatPercent(1.2)).toBe('100%');
    expect(formatPercent(-0.1)).toBe('0%');
  });
});
