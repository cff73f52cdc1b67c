import { describe, expect, it } from 'vitest';
import { referenceNfc, replaceLoneSurrogates } from './normalize.js';

describe('replaceLoneSurrogates (fallback for engines without toWellFormed)', () => {
  it('agrees with String.prototype.toWellFormed', () => {
    const cases = ['', 'abc', '\ud800', 'a\udc00b', '\ud83d\ude00', '\ude00\ud83d', 'x\ud83d', '\ud83d\ud83d\ude00', '\udfff\ud800\udc00\udbff'];
    for (const text of cases) {
      const expected = (text as string & { toWellFormed(): string }).toWellFormed();
      expect(replaceLoneSurrogates(text)).toBe(expected);
    }
  });
});

describe('referenceNfc', () => {
  it('is NFC for code points the reference knows', () => {
    expect(referenceNfc('e\u0301 A\u030a \u212b \u1100\u1161\u11a8')).toBe('é Å Å 각');
  });
  it('leaves marks newer than the reference\'s tables inert (U+1AC3, U+1DF6, U+0C3C)', () => {
    expect(referenceNfc('a\u1ac3\u0301')).toBe('a\u1ac3\u0301');
    expect(referenceNfc('Z\u1df6\u0301')).toBe('Z\u1df6\u0301');
    // ...but still normalizes around them.
    expect(referenceNfc('e\u0301\u0c3ce\u0301')).toBe('é\u0c3cé');
  });
});
