// Our GGUF reader and its dequantization of every ggml block type, checked against llama.cpp as the
// independent reference: a random Qwen2 model whose matrices are random valid blocks of one type is
// written as GGUF, and llama.cpp (node-llama-cpp, CPU) and core's reference backend (`Qwen2.load` on the
// same file, weights dequantized to f32) must give the same next-token log-probabilities at every
// position of a few prompts of token ids.
//
// How close they can be: with f32 matrices and an f32 KV cache the two agree to ~1e-6, so everything but
// the dequantization (tensor names, dimension order, metadata, rope, attention) is pinned down by the
// F32 cases. With quantized matrices llama.cpp's CPU matmuls quantize the activations to 8 bits (q8_0 /
// q8_K), which moves the log-probabilities by ~2% of their spread; a wrong dequantization moves them by
// O(100%) (see the last tests, which simulate two such bugs). Log-probabilities are compared as one
// relative RMS over all positions (centred per position), which noise at a single position cannot
// dominate, and the greedy token must agree wherever our top-2 margin is well above that noise.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Qwen2, ReferenceBackend } from '@qwen2-ts/core';
import { TestRandom, writeGgufFixture, writeRandomGguf } from '@qwen2-ts/core/testing';
import { readGgufHeader } from '@qwen2-ts/loader';
import { wasmBackend } from '../../dist/index.js';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const fixtures = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gguf-reader-test-'));

/** K-quants need rows of whole 256-value super-blocks: every matrix here has rows of 256 or 512. */
const CONFIG = {
  vocabSize: 1024, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  headDim: 64, tieWordEmbeddings: false, maxPositionEmbeddings: 4096, ropeTheta: 1e6, rmsNormEps: 1e-6,
};

/** Prompts of token ids over the whole vocabulary (byte tokens, `<|endoftext|>` and padding rows alike). */
function prompts(vocabSize, count = 6, length = 16) {
  const random = new TestRandom(3);
  return Array.from({ length: count }, () => Array.from({ length }, () => random.int(vocabSize)));
}

/**
 * Largest relative RMS difference of the log-probabilities (pooled over all positions) for llama.cpp
 * on quantized matrices: measured 0.009-0.022 across the block types; the simulated bugs below give 1.4-1.5.
 */
const QUANTIZED_REL_RMS = 0.05;
/** Largest |Δ log-probability| of a single token for quantized matrices: measured at most 0.15. */
const QUANTIZED_MAX_ABS = 0.25;
/**
 * Positions where our top-1 / top-2 log-probability margin exceeds this must have llama.cpp's greedy
 * token too: twice the largest |Δ| measured, so activation rounding cannot swap them.
 */
const GREEDY_MARGIN = 0.3;
/**
 * q4_k on the wasm backend against the f32 reading, both vs llama.cpp: measured 1.45 (2.9e-2 against
 * 2.0e-2). Our int8 activations (per 32 values) and llama.cpp's (q8_K, per 256) round independently,
 * so their errors add: about sqrt(2) of either alone.
 */
const KEPT_VS_EXACT = 2;
/** Q4_K quantized again into q4_0 against q4_k kept, both vs llama.cpp: measured 4.6 (1.33e-1 against 2.9e-2). */
const REQUANTIZED_VS_KEPT = 2.5;

let llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
});
afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Natural-log softmax of one row of logits, in f64. */
function logSoftmax(logits) {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const z = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - z);
}

/**
 * llama.cpp's next-token log-probabilities at every position of each prompt. The greedy sampler leaves
 * the logits as they are, so node-llama-cpp's `probabilities` are the softmax of the raw logits over the
 * whole vocabulary. KV cache in f32 (llama.cpp's default is f16) and no flash attention, so that only
 * the matmuls differ from ours.
 */
async function llamaLogprobs(path, promptIds, vocabSize) {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const context = await model.createContext({
      contextSize: 64, threads: 2, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    const sequence = context.getSequence();
    const rows = [];
    for (const ids of promptIds) {
      await sequence.clearHistory();
      const out = await sequence.controlledEvaluate(ids.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }]));
      rows.push(out.map((o) => {
        const logp = new Float64Array(vocabSize).fill(NaN);
        for (const [token, p] of o.next.probabilities) logp[token] = Math.log(p);
        return logp;
      }));
    }
    await context.dispose();
    return rows;
  } finally {
    await model.dispose();
  }
}

/**
 * Ours: the file loaded by `Qwen2.load` (its own byte vocabulary as tokenizer), by default on the
 * reference backend with the matrices dequantized to f32; `format`, when given, is what the layers must
 * have been stored as.
 */
async function ourLogprobs(path, promptIds, { backend = new ReferenceBackend(), dtype = 'f32', format } = {}) {
  const ours = await Qwen2.load(path, { backend, dtype });
  try {
    if (format) expect(ours.weightFormat).toBe(format);
    const rows = [];
    for (const ids of promptIds) rows.push((await ours.logits(ids, { allPositions: true })).map(logSoftmax));
    return rows;
  } finally {
    await ours.dispose();
  }
}

/**
 * How far llama.cpp's log-probabilities are from ours: the RMS of their difference over its RMS spread
 * (each centred per position: a shift of a whole row is no disagreement), pooled over all positions;
 * the largest single difference; and the greedy tokens at the positions where our margin is clear.
 */
function compare(ours, theirs) {
  let diff2 = 0, spread2 = 0, maxAbs = 0, clear = 0, agree = 0, positions = 0;
  const disagreements = [];
  for (const [p, rows] of ours.entries()) {
    for (const [i, a] of rows.entries()) {
      const b = theirs[p][i];
      if (b.some(Number.isNaN)) throw new Error(`llama.cpp gave no probability for some token at prompt ${p}, position ${i}`);
      const n = a.length;
      let meanA = 0, meanD = 0;
      for (let k = 0; k < n; k++) { meanA += a[k]; meanD += a[k] - b[k]; }
      meanA /= n; meanD /= n;
      let top = 0, second = -1, best = 0;
      for (let k = 0; k < n; k++) {
        spread2 += (a[k] - meanA) ** 2;
        diff2 += (a[k] - b[k] - meanD) ** 2;
        maxAbs = Math.max(maxAbs, Math.abs(a[k] - b[k]));
        if (a[k] > a[top]) { second = top; top = k; } else if (k !== top && (second < 0 || a[k] > a[second])) second = k;
        if (b[k] > b[best]) best = k;
      }
      positions++;
      if (a[top] - a[second] > GREEDY_MARGIN) {
        clear++;
        if (best === top) agree++;
        else disagreements.push({ prompt: p, position: i, ours: top, llama: best, margin: a[top] - a[second] });
      }
    }
  }
  return { relRms: Math.sqrt(diff2 / spread2), maxAbs, positions, greedy: { clear, agree }, disagreements };
}

/** A GGUF file's bytes and parsed header. */
async function readGguf(path) {
  const bytes = readFileSync(path);
  const header = await readGgufHeader({
    name: path, size: bytes.length, read: async (offset, length) => new Uint8Array(bytes.subarray(offset, offset + length)), close: async () => {},
  });
  return { bytes, header };
}

/** Writes a copy of `path` in which every block of every tensor of type `typeName` went through `edit(block)`. */
async function editedCopy(path, typeName, edit) {
  const { bytes, header } = await readGguf(path);
  let edited = 0;
  for (const t of header.tensors.filter((t) => t.type.name === typeName)) {
    for (let o = t.offset; o < t.offset + t.byteLength; o += t.type.typeSize) edit(bytes.subarray(o, o + t.type.typeSize));
    edited++;
  }
  if (edited === 0) throw new Error(`no ${typeName} tensor in ${path}`);
  const out = path.replace(/\.gguf$/, '-edited.gguf');
  writeFileSync(out, bytes);
  return out;
}

/** One line per case, printed at the end: the measured agreement. */
const summary = [];
afterAll(() => {
  if (summary.length) console.log(`llama.cpp vs ours (log-probabilities):\n${summary.join('\n')}`);
});
function record(label, r) {
  summary.push(`  ${label.padEnd(22)} relRms ${r.relRms.toExponential(2)}  max|Δ| ${r.maxAbs.toFixed(4)}  greedy ${r.greedy.agree}/${r.greedy.clear} clear positions of ${r.positions}`);
}

/** Writes a random model of `type`, runs both sides on it, returns the comparison. */
async function randomCase(label, options) {
  const path = join(dir, `${label}.gguf`);
  await writeRandomGguf(path, { config: CONFIG, seed: 1, byteVocabulary: true, ...options });
  const ids = prompts(CONFIG.vocabSize);
  const r = compare(await ourLogprobs(path, ids), await llamaLogprobs(path, ids, CONFIG.vocabSize));
  record(label, r);
  return r;
}

function expectQuantizedAgreement(r) {
  expect(r.disagreements, 'greedy token where our margin is clear').toEqual([]);
  expect(r.greedy.clear, 'positions with a clear greedy token').toBeGreaterThanOrEqual(5);
  expect(r.relRms).toBeLessThan(QUANTIZED_REL_RMS);
  expect(r.maxAbs).toBeLessThan(QUANTIZED_MAX_ABS);
}

describe('GGUF reading and dequantization, against llama.cpp', () => {
  for (const tieWordEmbeddings of [false, true]) {
    it(`F32 matrices${tieWordEmbeddings ? ', tied embedding' : ''}: the same log-probabilities to ~1e-6`, async () => {
      const r = await randomCase(`F32${tieWordEmbeddings ? '-tied' : ''}`, { config: { ...CONFIG, tieWordEmbeddings }, matrixType: 'F32' });
      expect(r.greedy.agree).toBe(r.greedy.clear);
      expect(r.relRms).toBeLessThan(1e-4);
      expect(r.maxAbs).toBeLessThan(1e-3);
    }, 30_000);
  }

  for (const type of ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS']) {
    it(`${type} matrices (embedding and head too)`, async () => {
      const r = await randomCase(type, { matrixType: type });
      expectQuantizedAgreement(r);
    }, 30_000);
  }

  it('mixed types as llama.cpp quantizes them: Q4_K layers, Q6_K embedding and head', async () => {
    const r = await randomCase('Q4_K+Q6_K', { matrixType: 'Q4_K', embeddingType: 'Q6_K' });
    expectQuantizedAgreement(r);
  }, 30_000);

  // What a user runs: a Q4_K_M file on the wasm backend with dtype 'auto'. Its Q4_K blocks are kept as
  // q4_k and meet int8 activations, as in llama.cpp's own kernels; a backend without q4_k (webgpu, cuda)
  // gets them quantized a second time into q4_0, which this measures too.
  it('Q4_K_M on the wasm backend: the Q4_K blocks kept as q4_k, as close to llama.cpp as the f32 reading', async () => {
    const path = join(dir, 'Q4_K_M-wasm.gguf');
    await writeRandomGguf(path, { config: CONFIG, seed: 1, byteVocabulary: true, matrixType: 'Q4_K', embeddingType: 'Q6_K' });
    const ids = prompts(CONFIG.vocabSize);
    const theirs = await llamaLogprobs(path, ids, CONFIG.vocabSize);
    const wasm = await wasmBackend({ threads: 2 });
    const info = wasm.info;
    try {
      const kept = compare(await ourLogprobs(path, ids, { backend: wasm, dtype: 'auto', format: 'q4_k' }), theirs);
      // As a backend without q4_k kernels loads it (core chooses formats from info while loading).
      wasm.info = { ...info, formats: info.formats.filter((f) => f !== 'q4_k') };
      const requantized = compare(await ourLogprobs(path, ids, { backend: wasm, dtype: 'auto', format: 'q4_0' }), theirs);
      wasm.info = info;
      const exact = compare(await ourLogprobs(path, ids), theirs);
      record('Q4_K_M, wasm, kept as q4_k', kept);
      record('Q4_K_M, wasm, requantized to q4_0', requantized);
      record('Q4_K_M, reference, f32', exact);
      expectQuantizedAgreement(kept);
      expect(kept.relRms).toBeLessThan(KEPT_VS_EXACT * exact.relRms);
      expect(requantized.relRms).toBeGreaterThan(REQUANTIZED_VS_KEPT * kept.relRms);
    } finally {
      wasm.info = info;
      await wasm.dispose();
    }
  }, 60_000);

  it('tied Q8_0 embedding (no output.weight: the head is the embedding)', async () => {
    const r = await randomCase('Q8_0-tied', { config: { ...CONFIG, tieWordEmbeddings: true }, matrixType: 'Q8_0' });
    expectQuantizedAgreement(r);
  }, 30_000);

  // writeRandomGguf makes random blocks of block types only; F16 and BF16 files come from a fixture
  // checkpoint (natively f16), with a byte-level tokenizer.json so both sides have a vocabulary.
  for (const format of ['f16', 'bf16']) {
    it(`${format.toUpperCase()} matrices (the f16 fixture checkpoint written by writeGgufFixture)`, async () => {
      const alphabet = byteLevelAlphabet();
      const tokenizerJson = JSON.stringify({
        model: { type: 'BPE', vocab: Object.fromEntries(alphabet.map((c, i) => [c, i])), merges: [] },
        added_tokens: [{ id: 256, content: '<|endoftext|>', special: true }],
      });
      const modelDir = join(fixtures, 'models/tiny-f16-sharded');
      const vocabSize = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')).vocab_size;
      const path = join(dir, `fixture-${format}.gguf`);
      await writeGgufFixture(modelDir, path, { format, tokenizerJson });
      const ids = prompts(vocabSize);
      const r = compare(await ourLogprobs(path, ids), await llamaLogprobs(path, ids, vocabSize));
      record(format.toUpperCase(), r);
      expect(r.disagreements).toEqual([]);
      // llama.cpp's CPU matmul rounds the activations to the matrix's type: f16 (11 bits), bf16 (8 bits).
      expect(r.relRms).toBeLessThan(format === 'f16' ? 5e-3 : QUANTIZED_REL_RMS);
    }, 30_000);
  }

  // The comparison would catch a wrong dequantization: our side reads a copy of the file edited the way a
  // bug would misread it, llama.cpp the file itself. Both bugs keep every value in range.
  it('catches a K-quant scale-unpacking bug (the high 2 bits of sub-blocks 4-7 scales and mins dropped)', async () => {
    const path = join(dir, 'Q4_K-bug.gguf');
    await writeRandomGguf(path, { config: CONFIG, seed: 1, byteVocabulary: true, matrixType: 'Q4_K' });
    // Q4_K block: d, dmin (f16), then 12 scale bytes; bits 6-7 of scale bytes 0-7 are the high bits of sub-blocks 4-7.
    const buggy = await editedCopy(path, 'Q4_K', (block) => { for (let i = 0; i < 8; i++) block[4 + i] &= 0x3f; });
    const ids = prompts(CONFIG.vocabSize);
    const r = compare(await ourLogprobs(buggy, ids), await llamaLogprobs(path, ids, CONFIG.vocabSize));
    record('Q4_K scale bug', r);
    expect(r.relRms).toBeGreaterThan(5 * QUANTIZED_REL_RMS);
  }, 30_000);

  it('catches a nibble-order bug in Q4_0 (values 2k, 2k+1 read from one byte instead of k, k+16)', async () => {
    const path = join(dir, 'Q4_0-bug.gguf');
    await writeRandomGguf(path, { config: CONFIG, seed: 1, byteVocabulary: true, matrixType: 'Q4_0' });
    // A Q4_0 block: f16 scale, then 16 bytes: value j is the low nibble of byte j, value j+16 its high nibble.
    // The copy holds what the buggy order reads: value 2k = low nibble of byte k, value 2k+1 = its high nibble.
    const buggy = await editedCopy(path, 'Q4_0', (block) => {
      const qs = block.slice(2, 18);
      const value = (j) => (j % 2 === 0 ? qs[j >> 1] & 15 : qs[j >> 1] >> 4);
      for (let j = 0; j < 16; j++) block[2 + j] = value(j) | (value(j + 16) << 4);
    });
    const ids = prompts(CONFIG.vocabSize);
    const r = compare(await ourLogprobs(buggy, ids), await llamaLogprobs(path, ids, CONFIG.vocabSize));
    record('Q4_0 nibble bug', r);
    expect(r.relRms).toBeGreaterThan(5 * QUANTIZED_REL_RMS);
  }, 30_000);
});

/** GPT-2's byte-to-character mapping (the alphabet of byte-level BPE vocabularies), as in the GGUF byte vocabulary. */
function byteLevelAlphabet() {
  const printable = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
}
