// Deterministic ~1 MB multilingual text for the encode benchmark (nothing is downloaded): paragraphs of
// English, German/French/Spanish/Vietnamese, Russian, Greek, Chinese, Japanese, Korean, Arabic, Hindi, code,
// numbers and emoji. Words are drawn with a Zipf-like law from per-language lexicons of generated words, so
// that, as in real text, frequent words repeat and a long tail does not.

function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const chars = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, i) => String.fromCodePoint(lo + i));

const LANGUAGES = {
  en: { weight: 30, syllables: 'the,an,in,er,on,at,es,or,ti,is,ing,ed,al,ar,ent,ion,re,co,de,pro,con,ly,ter,ver,per,com,est,und,ble,ment'.split(','), space: true },
  de: { weight: 5, syllables: 'ein,der,die,und,sch,ung,ich,ver,ge,ber,lich,keit,ü,ö,ä,ß,en,st,auf,zu'.split(','), space: true },
  fr: { weight: 5, syllables: 'le,la,des,que,ré,é,è,ê,ç,ment,tion,eur,ou,ai,on,pré,com,à,être,leur'.split(','), space: true },
  es: { weight: 5, syllables: 'el,la,de,que,ción,ñ,á,í,ó,ú,ar,os,es,men,te,con,per,ado,ien,ero'.split(','), space: true },
  vi: { weight: 2, syllables: 'người,của,và,các,có,một,những,được,trong,không,đã,này,cho,với,là'.split(','), space: true },
  ru: { weight: 8, syllables: 'про,ст,ен,ов,ни,ра,ко,то,на,по,ли,ть,ый,ая,ие,ск,ва,де,же,чт'.split(','), space: true },
  el: { weight: 2, syllables: 'το,και,της,να,στο,για,με,που,ει,ου,αι,ον,ης,ικ,ατ'.split(','), space: true },
  ar: { weight: 5, syllables: 'ال,من,في,على,ين,ات,ون,ية,ما,لا,عن,هذا,كان,قد,إلى'.split(','), space: true },
  hi: { weight: 4, syllables: 'के,है,में,की,और,से,को,का,एक,पर,यह,हैं,ने,भी,कर'.split(','), space: true },
  ko: { weight: 4, syllables: chars(0xac00, 0xac00 + 400).filter((_, i) => i % 3 === 0), space: true },
  zh: { weight: 12, syllables: chars(0x4e00, 0x4e00 + 3000).filter((_, i) => i % 2 === 0), space: false },
  ja: { weight: 6, syllables: [...chars(0x3042, 0x3093), ...chars(0x30a2, 0x30f3), ...chars(0x4e00, 0x4e00 + 800).filter((_, i) => i % 4 === 0)], space: false },
};

const CODE_LINES = [
  'function {w}({w}, {w}) {\n  return {w} + {w} * {n};\n}\n',
  'for (let i = 0; i < {n}; i++) {\n\t{w}[i] = {w}(i);\n}\n',
  'def {w}(self, {w}):\n    return self.{w}.get("{w}", {n})\n',
  'if ({w} != null && {w}.length > {n}) { throw new Error("{w}"); }\n',
  '#include <{w}.h>\nint {w}(void) { return {n}; }\n',
  'SELECT {w}, COUNT(*) FROM {w} WHERE {w} > {n} GROUP BY {w};\n',
];
const EMOJI = ['😀', '👍🏽', '🚀', '❤️', '👨‍👩‍👧', '🇯🇵', '🎉', '🤖', '✨', '🔥'];

function lexicon(rng, lang, size) {
  const words = [];
  for (let i = 0; i < size; i++) {
    let w = '';
    const n = 1 + Math.floor(rng() * (lang.space ? 3 : 2.2));
    for (let k = 0; k < n; k++) w += lang.syllables[Math.floor(rng() * lang.syllables.length)];
    words.push(w);
  }
  return words;
}

/** Zipf-like index in [0, n): small indices are much more frequent. */
const zipf = (rng, n) => Math.min(n - 1, Math.floor(Math.exp(rng() * Math.log(n + 1)) - 1));

/** Builds the benchmark text: `bytes` of UTF-8 (about), always the same for the same seed. */
export function multilingualText(bytes = 1_000_000, seed = 1234) {
  const rng = seeded(seed);
  const names = Object.keys(LANGUAGES);
  const lexicons = Object.fromEntries(names.map((n) => [n, lexicon(rng, LANGUAGES[n], 8000)]));
  const totalWeight = names.reduce((s, n) => s + LANGUAGES[n].weight, 0) + 8;
  const encoder = new TextEncoder();
  const parts = [];
  let size = 0;
  while (size < bytes) {
    let r = rng() * totalWeight;
    let para = '';
    const chosen = names.find((n) => (r -= LANGUAGES[n].weight) < 0);
    if (!chosen) {
      // code, numbers and emoji
      const en = lexicons.en;
      for (let l = 0; l < 4; l++) {
        para += CODE_LINES[Math.floor(rng() * CODE_LINES.length)]
          .replace(/\{w\}/g, () => en[zipf(rng, en.length)])
          .replace(/\{n\}/g, () => String(Math.floor(rng() * 100000)));
      }
      para += `Total: ${(rng() * 1e6).toFixed(2)} USD on 2024-${1 + Math.floor(rng() * 12)}-${1 + Math.floor(rng() * 28)} ${EMOJI[Math.floor(rng() * EMOJI.length)]}`;
    } else {
      const lang = LANGUAGES[chosen];
      const words = lexicons[chosen];
      const sentences = 2 + Math.floor(rng() * 6);
      for (let s = 0; s < sentences; s++) {
        const count = 5 + Math.floor(rng() * 15);
        let sentence = '';
        for (let k = 0; k < count; k++) {
          let w = words[zipf(rng, words.length)];
          if (k === 0 && lang.space) w = w[0].toUpperCase() + w.slice(1);
          sentence += (lang.space && k > 0 ? ' ' : '') + w;
          if (k < count - 1 && rng() < 0.08) sentence += lang.space ? ',' : '，';
          if (rng() < 0.01) sentence += ' ' + EMOJI[Math.floor(rng() * EMOJI.length)];
        }
        para += sentence + (lang.space ? (rng() < 0.1 ? '? ' : '. ') : '。');
      }
    }
    para += '\n\n';
    parts.push(para);
    size += encoder.encode(para).length;
  }
  return parts.join('');
}
