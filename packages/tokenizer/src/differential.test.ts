// Differential test against Hugging Face's tokenizer (npm tokenizers@0.23.2, the Rust crate as a native
// addon): tens of thousands of seeded random strings must give identical ids and identical decodes.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { fixturePath, loadQwen2Instruct } from './test-fixtures.js';
import { referenceNfc } from './normalize.js';
import { randomAnyCodePointText, randomText, seededRandom, withLoneSurrogates } from './test-random-text.js';

interface HfEncoding { getIds(): number[] }
interface HfTokenizer {
  encodeBatch(inputs: string[]): Promise<HfEncoding[]>;
  decodeBatch(ids: number[][], skipSpecialTokens: boolean): Promise<string[]>;
}
const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers') as { Tokenizer: { fromFile(path: string): HfTokenizer } };

const COUNT = 20_000;
const SPECIAL = /<\|(?:endoftext|im_start|im_end)\|>/;

/** NFC as Hugging Face applies it: per segment between special tokens (they are split out first). */
function nfcPerSegment(text: string): string {
  return text
    .split(/(<\|(?:endoftext|im_start|im_end)\|>)/)
    .map((part) => (SPECIAL.test(part) ? part : part.normalize('NFC')))
    .join('');
}

async function compare(texts: string[]) {
  const hf = Tokenizer.fromFile(fixturePath('tokenizer/tokenizer.json'));
  const tok = loadQwen2Instruct();
  const expected: number[][] = [];
  for (let i = 0; i < texts.length; i += 2000) {
    const batch = await hf.encodeBatch(texts.slice(i, i + 2000));
    for (const e of batch) expected.push(e.getIds());
  }
  const hfDecoded = await hf.decodeBatch(expected, false);
  const mismatches: Array<{ text: string; ours: number[]; hf: number[] }> = [];
  const decodeMismatches: Array<{ text: string; ours: string; hf: string }> = [];
  texts.forEach((text, i) => {
    const ours = tok.encode(text);
    if (ours.length !== expected[i].length || ours.some((id, k) => id !== expected[i][k])) {
      mismatches.push({ text, ours, hf: expected[i] });
    }
    const decoded = tok.decode(expected[i]);
    if (decoded !== hfDecoded[i]) decodeMismatches.push({ text, ours: decoded, hf: hfDecoded[i] });
  });
  return { tok, mismatches, decodeMismatches };
}

describe(`differential vs tokenizers@0.23.2 on ${COUNT} seeded random strings`, () => {
  const rng = seededRandom(20241128);
  const texts = Array.from({ length: COUNT }, () => randomText(rng));

  it('gives identical ids and decodes, and decode(encode(s)) is NFC(s)', async () => {
    const { tok, mismatches, decodeMismatches } = await compare(texts);
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(decodeMismatches.slice(0, 5)).toEqual([]);
    let nfcBoundaryCases = 0;
    for (const text of texts) {
      const decoded = tok.decode(tok.encode(text));
      expect(decoded).toBe(nfcPerSegment(text));
      if (decoded !== text.normalize('NFC')) {
        // Only possible where a combining mark follows a special token: HF (and we) NFC each segment
        // between special tokens separately, so '>' + U+0338 at a token boundary does not compose.
        nfcBoundaryCases++;
        expect(text).toMatch(/<\|(?:endoftext|im_start|im_end)\|>\p{M}/u);
      }
    }
    expect(nfcBoundaryCases).toBeLessThan(COUNT / 1000);
  }, 120_000);
});

describe('differential: random code points of every plane and Unicode version, combining marks', () => {
  // Beyond the Unicode <= 14 requirement: characters up to the host's Unicode version. The reference's
  // regex classes are Unicode 16 and its NFC tables Unicode 9, both pinned here (unicode-classes.generated.ts).
  const rng = seededRandom(314159);
  const texts = Array.from({ length: 10_000 }, () => randomAnyCodePointText(rng));
  it('gives identical ids and decodes', async () => {
    const { tok, mismatches, decodeMismatches } = await compare(texts);
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(decodeMismatches.slice(0, 5)).toEqual([]);
    // The reference leaves marks it does not know unnormalized, so this holds with its NFC, not the host's.
    for (const text of texts.slice(0, 2000)) {
      if (SPECIAL.test(text)) continue;
      expect(tok.decode(tok.encode(text))).toBe(referenceNfc(text));
    }
    // e.g. U+1AC3 (Unicode 14): the host reorders and composes around it, the reference does not.
    expect('a\u1ac3\u0301'.normalize('NFC')).not.toBe('a\u1ac3\u0301');
    expect(tok.decode(tok.encode('a\u1ac3\u0301'))).toBe('a\u1ac3\u0301');
  }, 60_000);
});

describe('differential: lone surrogates (Rust sees U+FFFD)', () => {
  const rng = seededRandom(7);
  const texts = Array.from({ length: 2000 }, () => withLoneSurrogates(rng, randomText(rng, 4)));
  it('gives identical ids and decodes', async () => {
    const { tok, mismatches, decodeMismatches } = await compare(texts);
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(decodeMismatches.slice(0, 5)).toEqual([]);
    expect(tok.decode(tok.encode('a\ud800b'))).toBe('a\ufffdb');
  }, 60_000);
});

describe('differential: 100 KB words and runs', () => {
  const rng = seededRandom(99);
  const letters = Array.from({ length: 100_000 }, () => String.fromCharCode(0x61 + Math.floor(rng() * 26))).join('');
  const cjk = Array.from({ length: 40_000 }, () => String.fromCharCode(0x4e00 + Math.floor(rng() * 2000))).join('');
  const texts = [
    'a'.repeat(100_000),
    letters,
    ' ' + letters,
    cjk,
    '1234567890'.repeat(10_000),
    ' '.repeat(50_000) + 'x' + '\n'.repeat(50_000),
    '=-'.repeat(50_000),
    '\u{1F600}'.repeat(30_000),
    "don't ".repeat(20_000),
  ];
  it('gives identical ids', async () => {
    const { mismatches } = await compare(texts);
    expect(mismatches.map((m) => m.text.slice(0, 20))).toEqual([]);
  }, 60_000);
});
