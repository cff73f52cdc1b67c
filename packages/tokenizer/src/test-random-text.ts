// Test-only: a seeded generator of adversarial strings for the differential test against Hugging Face's
// tokenizer. Characters come from blocks whose assignments are all Unicode 14 or older.

/** mulberry32: small, fast, seeded PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];
const fromRange = (rng: Rng, [lo, hi]: readonly [number, number]) => String.fromCodePoint(int(rng, lo, hi));
const repeat = (rng: Rng, min: number, max: number, f: () => string) => {
  let s = '';
  for (let i = int(rng, min, max); i > 0; i--) s += f();
  return s;
};

const SCRIPTS: ReadonlyArray<readonly [number, number]> = [
  [0x4e00, 0x9fa5], // CJK
  [0x3041, 0x3096], // Hiragana
  [0x30a1, 0x30fa], // Katakana
  [0xac00, 0xd7a3], // Hangul syllables
  [0x0621, 0x064a], // Arabic
  [0x05d0, 0x05ea], // Hebrew
  [0x0905, 0x0939], // Devanagari letters
  [0x093e, 0x094c], // Devanagari vowel signs (Mc/Mn)
  [0x0e01, 0x0e3a], // Thai
  [0x0410, 0x044f], // Cyrillic
  [0x0391, 0x03c9], // Greek
  [0x00c0, 0x024f], // Latin-1 + Extended A/B
  [0x0531, 0x0556], // Armenian
  [0x10d0, 0x10fa], // Georgian
  [0x1780, 0x17b3], // Khmer
  [0x1e00, 0x1eff], // Latin Extended Additional (Vietnamese)
];

// Blocks that gained no characters after Unicode 14 (unassigned code points are filtered out).
const STABLE_BLOCKS: ReadonlyArray<readonly [number, number]> = [
  [0x0020, 0x036f], [0x0370, 0x052f], [0x0590, 0x06ff], [0x0900, 0x097f], [0x0e00, 0x0e7f],
  [0x10a0, 0x10ff], [0x1100, 0x11ff], [0x1e00, 0x1fff], [0x2000, 0x209c], [0x20a0, 0x20bf],
  [0x2100, 0x214f], [0x2150, 0x218b], [0x2190, 0x23ff], [0x2460, 0x27bf], [0x3000, 0x30ff],
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef], [0x10000, 0x1007f], [0x1d400, 0x1d7ff],
  [0x1f300, 0x1f64f], [0x1f680, 0x1f6d7], [0x1f910, 0x1f93e], [0x20000, 0x2a6dd],
];
const UNASSIGNED = /\p{Cn}/u;

const CONTRACTION_TAILS = ['s', 'S', 't', 'T', 're', 'RE', 'Re', 'rE', 've', 'VE', 'vE', 'm', 'M', 'll', 'LL', 'lL', 'Ll', 'd', 'D', 'ſ', 'x', 'st', 'ß', 'r', 'v', 'l', ''];
const DIGITS: ReadonlyArray<readonly [number, number]> = [
  [0x30, 0x39], [0x30, 0x39], [0x660, 0x669], [0x6f0, 0x6f9], [0x966, 0x96f], [0xff10, 0xff19],
  [0x2070, 0x2079], [0x00b2, 0x00b3], [0x00bc, 0x00be], [0x2160, 0x216f], [0x1d7d8, 0x1d7e1], [0x2460, 0x2473],
];
const SPACES = [' ', '  ', '\t', '\n', '\r\n', '\r', '\u0085', '\ufeff', '\u3000', '\u00a0', '\u2028', '\u2029', '\u200b', '\u1680', '\u2003', '\u202f', '\u205f', '\v', '\f', '\n\n', ' \n ', '\u180e', '\u200d', ' \t', '\r\r\n'];
const COMBINING = [0x0300, 0x036f] as const;
const EMOJI = [
  '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}', '\u{1F469}\u{1F3FD}\u200D\u{1F4BB}', '\u{1F44D}\u{1F3FF}',
  '\u{1F1EF}\u{1F1F5}', '\u{1F1FA}\u{1F1F8}', '1\uFE0F\u20E3', '#\uFE0F\u20E3', '\u2764\uFE0F', '\u{1F3F3}\uFE0F\u200D\u{1F308}',
  '\u{1F600}', '\u{1F602}', '\u{1F914}', '\u{1F9D1}\u{1F3FB}\u200D\u{1F91D}\u200D\u{1F9D1}\u{1F3FF}', '\u2728', '\u{1F525}',
];
const PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~—…«»¿¡、。「」・•€£¥©®™°±×÷≠≤→∀∑'.split('');
const SPECIAL_LOOKALIKES = [
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|endoftext', '<|im_', '|>', '<|', '<|IM_START|>', '< |im_start|>',
  '<|im_start|>>', '<<|im_end|>', '<|endoftext|><|endoftext|>', '<tool_call>', '<|fim_prefix|>', 'im_end|>', '<|im_end',
];
const CODE = [
  'def f(x):\n    return x**2\n', 'if (a && b) {\n\treturn;\n}', '</div>', 'x_1 = y.z;', '// comment', '#include <stdio.h>',
  'SELECT * FROM t WHERE id=1;', 'fn main() -> i32 { 0 }', 'console.log(`${a}`);', '    ', '\t\t', '0x1F_u8', '1e-9', '3.14159',
];
const NON_NFC = ['e\u0301', 'A\u030a', '\u212b', '\u1100\u1161\u11a8', '\u1112\u1161\u11ab', 'o\u0308\u0304', '\u0958', 'ﬁ', 'Å', '\u0041\u0338', '>\u0338', '\u00e9\u0301'];

function fragment(rng: Rng): string {
  switch (int(rng, 0, 14)) {
    case 0: {
      const word = repeat(rng, 1, 10, () => String.fromCharCode(int(rng, 0, 1) ? int(rng, 0x61, 0x7a) : int(rng, 0x41, 0x5a)));
      return (rng() < 0.6 ? ' ' : '') + word;
    }
    case 1:
      return "'" + pick(rng, CONTRACTION_TAILS) + (rng() < 0.3 ? pick(rng, ['', ' ', 'x', 's', '\n']) : '');
    case 2:
      return (rng() < 0.3 ? ' ' : '') + repeat(rng, 1, 6, () => fromRange(rng, pick(rng, DIGITS)));
    case 3:
      return repeat(rng, 1, 3, () => pick(rng, SPACES));
    case 4: {
      const script = pick(rng, SCRIPTS);
      return (rng() < 0.4 ? ' ' : '') + repeat(rng, 1, 8, () => fromRange(rng, script));
    }
    case 5:
      return rng() < 0.5 ? pick(rng, NON_NFC) : fromRange(rng, pick(rng, SCRIPTS)) + repeat(rng, 1, 2, () => fromRange(rng, COMBINING));
    case 6:
      return (rng() < 0.3 ? ' ' : '') + repeat(rng, 1, 3, () => pick(rng, EMOJI));
    case 7:
      return (rng() < 0.3 ? ' ' : '') + repeat(rng, 1, 4, () => pick(rng, PUNCT));
    case 8: {
      const c = int(rng, 0, 65);
      return String.fromCharCode(c < 32 ? c : c === 32 ? 0x7f : 0x80 + (c - 33));
    }
    case 9:
      return pick(rng, SPECIAL_LOOKALIKES);
    case 10:
    case 11: {
      for (;;) {
        const ch = fromRange(rng, pick(rng, STABLE_BLOCKS));
        if (!UNASSIGNED.test(ch)) return ch;
      }
    }
    case 12:
      return pick(rng, ['a', ' ', '\n', '=', '-', '中', '\u{1F600}', '1', "'", '\u0301', '\u3000']).repeat(int(rng, 5, 40));
    case 13:
      return pick(rng, CODE);
    default:
      return pick(rng, [' ', '.', ',', ' the', ' and', 'The', ' of', '\n']);
  }
}

/** One random string of 1..maxFragments fragments. */
export function randomText(rng: Rng, maxFragments = 12): string {
  return repeat(rng, 1, maxFragments, () => fragment(rng));
}

/** Inserts lone surrogates at random places (what a broken JS string can hold). */
export function withLoneSurrogates(rng: Rng, text: string): string {
  const at = int(rng, 0, text.length);
  const lone = pick(rng, ['\ud800', '\udfff', '\udc00\ud800', '\ud83d', '\ude00x', '\ud83d\ud83d']);
  return text.slice(0, at) + lone + text.slice(at);
}

const ANY_PLANE = [0, 0, 0, 1, 1, 2, 3, 14];
const NOT_A_CHARACTER = /\p{Cn}|\p{Cs}|\p{Co}/u;
const MARK_HEAVY = ["'s", "'S", "'ſ", "'ll", ' ', '\n', '\r\n', '\t', '\u0085', '\ufeff', '\u3000', '<|im_start|>', '<|endoftext|>', 'a', 'Z', '1', '!', '😀', '\u0301', '\u0316', '\u0307', '\u0334', '中', 'x\u0338'];

/**
 * A string mixing common pieces with random assigned code points of any plane and any Unicode version
 * (what the host knows): exercises the pinned regex classes and NFC's knowledge of combining marks.
 */
export function randomAnyCodePointText(rng: Rng): string {
  return repeat(rng, 1, 10, () => {
    if (rng() < 0.5) return pick(rng, MARK_HEAVY);
    for (;;) {
      const ch = String.fromCodePoint(pick(rng, ANY_PLANE) * 0x10000 + Math.floor(rng() * 0x10000));
      if (!NOT_A_CHARACTER.test(ch)) return ch;
    }
  });
}
