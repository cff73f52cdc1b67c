import { describe, expect, it } from 'vitest';
import { StopStringMatcher } from './stop-strings.js';

function run(stops: string[], pieces: string[]): { out: string; stopped: boolean } {
  const m = new StopStringMatcher(stops);
  let out = '';
  for (const p of pieces) {
    const r = m.push(p);
    out += r.text;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + m.flush(), stopped: false };
}

describe('StopStringMatcher', () => {
  it('passes text through without stop strings', () => {
    expect(run([], ['a', 'b'])).toEqual({ out: 'ab', stopped: false });
  });
  it('stops at a stop string split across pieces and emits nothing past it', () => {
    expect(run(['END'], ['hello E', 'N', 'D more'])).toEqual({ out: 'hello ', stopped: true });
    expect(run(['\n\n'], ['a\n', '\nb'])).toEqual({ out: 'a', stopped: true });
  });
  it('holds back a possible prefix, then releases it when it is not a stop string', () => {
    const m = new StopStringMatcher(['STOP']);
    expect(m.push('abc ST')).toEqual({ text: 'abc ', stopped: false });
    expect(m.push('ART')).toEqual({ text: 'START', stopped: false });
    expect(m.push('ST')).toEqual({ text: '', stopped: false });
    expect(m.flush()).toBe('ST');
  });
  it('picks the earliest of several stop strings', () => {
    expect(run(['xyz', 'b'], ['axyzb'])).toEqual({ out: 'a', stopped: true });
  });
});
