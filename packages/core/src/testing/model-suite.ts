import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, KVCacheDtype, Tensor, WeightFormat } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { loadModelWeights } from '../model/weights.js';
import { Qwen2Model } from '../model/qwen2-model.js';
import { nativeFormat } from '../weights/convert.js';
import { FIXTURE_MODELS, loadFixture, openFixtureModel, type Fixture, type Golden } from './fixtures.js';
import { MODEL_TOLERANCE } from './tolerances.js';
import { argmaxOf, maxAbsDiff } from './random.js';

/** What one model run produced, for comparing a backend with the goldens or with the reference. */
interface ModelOutputs {
  lastLogits: Float32Array[];
  greedy: number[][];
  /** The same continuations decoded with device tokens (each step recorded before its token is read). */
  greedyOnDevice?: number[][];
  allPositions: Float32Array[];
  /** The argmax of every position of the all-positions prompt, taken by the backend (forwardArgmax). */
  allArgmax: number[];
  /** Greedy continuations decoded speculatively, from guesses (see {@link speculativeGreedy}). */
  speculative: number[][];
  incremental: Float32Array[];
  smallChunks: Float32Array;
  /** Activations at the golden debug position: `embed`, `layer.N.attn_out`, ..., `final_norm`. */
  debug: Map<string, Float32Array>;
}

/** Runs every golden scenario of a fixture on `backend` with weights stored as `format` and a `kv` cache. */
async function runFixture(backend: Backend, fixture: Fixture, format: WeightFormat, kv: KVCacheDtype = 'f32'): Promise<ModelOutputs> {
  const opened = await openFixtureModel(fixture);
  try {
    const weights = await loadModelWeights(opened.checkpoint, opened.config, backend, { format });
    const model = new Qwen2Model(backend, opened.config, weights);
    const small = new Qwen2Model(backend, opened.config, weights, { maxChunk: 7 });
    const g = fixture.golden;
    const out: ModelOutputs = { lastLogits: [], greedy: [], allPositions: [], allArgmax: [], speculative: [], incremental: [], smallChunks: new Float32Array(), debug: new Map() };
    try {
      out.debug = await inspectDebugPosition(backend, model, g, kv);
      for (const s of g.sequences) {
        const seq = model.createSequence(s.input_ids.length + 16, kv);
        let logits = model.forward(seq, s.input_ids);
        out.lastLogits.push(await backend.read(logits));
        const tokens: number[] = [];
        for (let i = 0; i < 16; i++) {
          const next = (await backend.argmax(logits))[0]!;
          tokens.push(next);
          if (i < 15) logits = model.forward(seq, [next]);
        }
        out.greedy.push(tokens);
        seq.free();
        out.speculative.push(await speculativeGreedy(backend, model, s.input_ids, s.greedy_new_tokens, kv));
        if (backend.argmaxOnDevice) {
          const dseq = model.createSequence(s.input_ids.length + 16, kv);
          let drawn = backend.argmaxOnDevice(model.forward(dseq, s.input_ids));
          const onDevice: number[] = [];
          for (let i = 0; i < 16; i++) {
            const ahead = i < 15 ? backend.argmaxOnDevice(model.forwardOnDevice(dseq, drawn)) : undefined;
            onDevice.push((await drawn.ids())[0]!);
            if (ahead) drawn = ahead;
          }
          (out.greedyOnDevice ??= []).push(onDevice);
          dseq.free();
        }
      }
      const ap = model.createSequence(g.all_positions.input_ids.length, kv);
      out.allPositions = await model.forwardAll(ap, g.all_positions.input_ids);
      ap.truncate(0);
      out.allArgmax = Array.from(await model.forwardArgmax(ap, g.all_positions.input_ids));
      ap.free();
      const inc = model.createSequence(g.sequences[g.incremental.seq_index]!.input_ids.length, kv);
      for (const step of g.incremental.steps) {
        expect(inc.length).toBe(step.start_position);
        out.incremental.push(await backend.read(model.forward(inc, step.tokens)));
      }
      inc.free();
      // The longest prompt again, prefilled in chunks of 7 tokens.
      const longest = g.sequences.reduce((a, b) => (b.input_ids.length > a.input_ids.length ? b : a));
      const sc = small.createSequence(longest.input_ids.length, kv);
      out.smallChunks = await backend.read(small.forward(sc, longest.input_ids));
      sc.free();
    } finally {
      small.dispose();
      model.dispose();
    }
    return out;
  } finally {
    await opened.close();
  }
}

/**
 * 16 greedy tokens decoded as speculative decoding does: each step runs the pending token with three
 * guesses in one pass, keeps the guesses up to the first that differs from the backend's argmax, takes
 * that argmax as the next token and forgets the cache past what it kept. The guesses are the golden
 * continuation, all of it on even steps and with the second guess wrong on odd ones, so that both full
 * acceptance and rollback happen; the tokens must be those of plain greedy decoding.
 */
async function speculativeGreedy(backend: Backend, model: Qwen2Model, prompt: number[], golden: number[], kv: KVCacheDtype): Promise<number[]> {
  const V = model.config.vocabSize;
  const seq = model.createSequence(prompt.length + 16 + 4, kv);
  try {
    const out = [(await backend.argmax(model.forward(seq, prompt)))[0]!];
    for (let step = 0; out.length < 16; step++) {
      const guesses = [0, 1, 2].map((i) => golden[(out.length + i) % golden.length]!);
      if (step % 2 === 1) guesses[1] = (guesses[1]! + 1) % V;
      const base = seq.length;
      const best = await model.forwardArgmax(seq, [out[out.length - 1]!, ...guesses]);
      let kept = 0;
      while (kept < guesses.length && best[kept] === guesses[kept]) kept++;
      out.push(...guesses.slice(0, kept), best[kept]!);
      seq.truncate(base + 1 + kept);
    }
    return out.slice(0, 16);
  } finally {
    seq.free();
  }
}

/**
 * 16 greedy tokens of every golden sequence decoded with {@link Qwen2Model.forwardBatch}: sequence i
 * joins at pass i with its whole prompt, in the same pass as the others' decoding steps, so that passes
 * mix a prompt with single tokens and widen to all the sequences, at positions that all differ, then
 * narrow as the first ones finish. Each row is compared with a pass of the same tokens through a copy of
 * that sequence run alone (`worst`: the largest difference); `prompts` are the rows of the prompts.
 */
async function batchedGreedy(backend: Backend, fixture: Fixture, format: WeightFormat): Promise<{ tokens: number[][]; prompts: Float32Array[]; widest: number; worst: number }> {
  const opened = await openFixtureModel(fixture);
  let model: Qwen2Model;
  try {
    // Passes as wide as the longest prompt with every other sequence's token.
    const maxChunk = fixture.golden.sequences.reduce((n, s) => n + s.input_ids.length, 0);
    model = new Qwen2Model(backend, opened.config, await loadModelWeights(opened.checkpoint, opened.config, backend, { format }), { maxChunk });
  } finally {
    await opened.close();
  }
  const members = fixture.golden.sequences.map((s) => ({
    prompt: s.input_ids,
    tokens: [] as number[],
    seq: model.createSequence(s.input_ids.length + 16),
    solo: model.createSequence(s.input_ids.length + 16),
  }));
  const prompts: Float32Array[] = [];
  let widest = 0;
  let worst = 0;
  try {
    for (let pass = 0; ; pass++) {
      const decoding = members.filter((m) => m.tokens.length > 0 && m.tokens.length < 16);
      const joining = members[pass];
      const inPass = joining ? [...decoding, joining] : decoding;
      if (inPass.length === 0) break;
      widest = Math.max(widest, inPass.length);
      const fed = inPass.map((m) => (m === joining ? m.prompt : [m.tokens[m.tokens.length - 1]!]));
      const logits = model.forwardBatch(inPass.map((m) => m.seq), fed);
      expect([logits.rows, logits.cols]).toEqual([inPass.length, model.config.vocabSize]);
      const rows = await backend.read(logits);
      const ids = await backend.argmax(logits);
      for (const [i, m] of inPass.entries()) {
        // What a generation in the batch reads: its own row, as a view.
        const own = backend.view(logits, i, 1);
        const row = rows.slice(i * logits.cols, (i + 1) * logits.cols);
        expect(await backend.read(own)).toEqual(row);
        expect((await backend.argmax(own))[0]).toBe(ids[i]);
        if (m === joining) prompts.push(row);
        const alone = await backend.read(model.forward(m.solo, fed[i]!));
        worst = Math.max(worst, maxAbsDiff(row, alone));
        m.tokens.push(ids[i]!);
      }
    }
    return { tokens: members.map((m) => m.tokens), prompts, widest, worst };
  } finally {
    for (const m of members) {
      m.seq.free();
      m.solo.free();
    }
    model.dispose();
  }
}

/**
 * Runs the golden debug sequence once with an inspection hook that copies the debug position's row at
 * every point of the forward pass, so that a wrong backend is told where the first divergence is.
 */
async function inspectDebugPosition(backend: Backend, model: Qwen2Model, g: Golden, kv: KVCacheDtype): Promise<Map<string, Float32Array>> {
  const ids = g.sequences[g.debug.seq_index]!.input_ids;
  const pos = g.debug.position;
  const copies = new Map<string, Tensor>();
  model.inspect = (point, layer, t) => {
    const key = layer === undefined ? point : `layer.${layer}.${point}`;
    const dst = backend.alloc(1, t.cols);
    backend.copy(t.rows === 1 ? t : backend.view(t, pos, 1), dst);
    copies.set(key, dst);
  };
  const seq = model.createSequence(ids.length, kv);
  try {
    model.forward(seq, ids);
  } finally {
    model.inspect = undefined;
    seq.free();
  }
  const out = new Map<string, Float32Array>();
  for (const [k, t] of copies) {
    out.set(k, await backend.read(t));
    backend.free(t);
  }
  return out;
}

/** Golden debug values in forward-pass order, keyed like {@link inspectDebugPosition}'s map. */
function goldenDebug(g: Golden): [string, number[]][] {
  const d = g.debug;
  const list: [string, number[]][] = [['embed', d.embed]];
  d.layers.forEach((l, i) => list.push([`layer.${i}.attn_out`, l.attn_out], [`layer.${i}.mlp_out`, l.mlp_out], [`layer.${i}.hidden_out`, l.hidden_out]));
  list.push(['final_norm', d.final_norm]);
  return list;
}

/** Options of {@link registerModelSuite}. */
export interface ModelSuiteOptions {
  fixturesDir: string;
  /** Fixture models to run (default: all). */
  models?: readonly string[];
  /** Weight formats to run (default: every format the backend supports). */
  formats?: readonly WeightFormat[];
  /** Per-test limit in milliseconds (default 120 s). */
  timeoutMs?: number;
}

/**
 * Registers the whole-model tests: for every fixture and weight format, the backend's logits (last
 * position of each golden prompt, every position of one prompt, the incremental chunked schedule and a
 * 7-token-chunk prefill) and greedy continuations, against the float64 goldens when the format stores
 * the checkpoint exactly, and against the reference backend with the same format otherwise.
 */
export function registerModelSuite(makeBackend: () => Promise<Backend>, options: ModelSuiteOptions, isReference: boolean): void {
  let backend: Backend;
  beforeAll(async () => {
    backend = await makeBackend();
  });
  afterAll(async () => {
    await backend?.dispose();
  });
  const ref = new ReferenceBackend();
  afterAll(() => ref.dispose());
  const allFormats: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

  for (const name of options.models ?? FIXTURE_MODELS) {
    describe(name, () => {
      let fixture: Fixture;
      beforeAll(async () => {
        fixture = await loadFixture(options.fixturesDir, name);
      });
      for (const format of options.formats ?? allFormats) {
        it(`weights as ${format}`, async (ctx) => {
          if (!backend.info.formats.includes(format)) ctx.skip(`backend '${backend.info.name}' does not store ${format}`);
          const g = fixture.golden;
          const exact = format === 'f32' || format === nativeFormat(g.dtype);
          const got = await runFixture(backend, fixture, format);
          const report: string[] = [];
          const check = (what: string, a: Float32Array, b: Float32Array, tol: number) => {
            const err = maxAbsDiff(a, b);
            report.push(`${what} ${err.toExponential(2)}`);
            expect(err, `${name} ${format} ${what}: max abs error ${err} > ${tol}`).toBeLessThanOrEqual(tol);
          };
          const goldenTol = exact ? MODEL_TOLERANCE.golden : Infinity;
          if (exact) {
            // First the activations, in forward order: a failure names the first op that went wrong.
            for (const [key, want] of goldenDebug(g)) {
              const have = got.debug.get(key);
              expect(have, `${name} ${format}: no activation '${key}' was inspected`).toBeDefined();
              check(`debug ${key} (position ${g.debug.position}, first ${want.length} dims)`, have!.subarray(0, want.length), Float32Array.from(want), MODEL_TOLERANCE.golden * 10);
            }
          }
          // A lossy format is held to a relative RMS error (its max error alone says little on random weights).
          const checkRel = (what: string, a: Float32Array, b: Float32Array) => {
            const err = relativeRms(a, b);
            const tol = MODEL_TOLERANCE.lossyRelativeRms[format];
            report.push(`${what} relative RMS ${err.toExponential(2)}`);
            expect(err, `${name} ${format} ${what}: relative RMS error ${err} > ${tol}`).toBeLessThanOrEqual(tol);
          };
          g.sequences.forEach((s, i) => {
            check(`seq${i} logits vs golden`, got.lastLogits[i]!, fixture.lastLogits(i), goldenTol);
            if (!exact) checkRel(`seq${i} logits vs golden`, got.lastLogits[i]!, fixture.lastLogits(i));
          });
          fixture.allPositionLogits().forEach((row, t) => check(`position ${t} vs golden`, got.allPositions[t]!, row, goldenTol));
          // Incremental: each chunk's last logits equal the full forward at that position, i.e. the golden.
          g.incremental.steps.forEach((step, i) => {
            const want = step.last_logits ? Float32Array.from(step.last_logits) : undefined;
            if (want) check(`incremental step ${i} vs golden`, got.incremental[i]!, want, goldenTol);
            else {
              const top = step.last_top20!;
              const picked = Float32Array.from(top.ids, (id) => got.incremental[i]![id]!);
              check(`incremental step ${i} top-20 vs golden`, picked, Float32Array.from(top.values), goldenTol);
            }
          });
          const longest = g.sequences.reduce((a, b, j) => (b.input_ids.length > g.sequences[a]!.input_ids.length ? j : a), 0);
          check('7-token chunks vs one pass', got.smallChunks, got.lastLogits[longest]!, exact ? 1e-4 : MODEL_TOLERANCE.sameFormat[format]);

          // The backend's argmax over all positions is the host's over the same rows.
          expect(got.allArgmax, `${name} ${format} forwardArgmax`).toEqual(got.allPositions.map((r) => argmaxOf(r)));
          // Checking guesses several at a time, and forgetting the cache past the kept ones, changes
          // nothing greedy decoding picks (the goldens' top-2 margins are at least 2e-3).
          if (exact) g.sequences.forEach((s, i) => expect(got.speculative[i], `${name} ${format} speculative greedy tokens of sequence ${i}`).toEqual(s.greedy_new_tokens));
          else report.push(`speculative greedy agreement with plain ${got.speculative.filter((t, i) => t.every((id, j) => got.greedy[i]![j] === id)).length}/${got.greedy.length}`);
          // Device tokens change when a step is recorded, not what it computes.
          if (got.greedyOnDevice) expect(got.greedyOnDevice, `${name} ${format} greedy tokens through device tokens`).toEqual(got.greedy);
          const greedyMatches = g.sequences.map((s, i) => s.greedy_new_tokens.every((t, j) => got.greedy[i]![j] === t));
          if (exact) {
            g.sequences.forEach((s, i) => expect(got.greedy[i], `${name} ${format} greedy tokens of sequence ${i}`).toEqual(s.greedy_new_tokens));
            expect(g.all_positions.argmax).toEqual(got.allPositions.map((r) => argmaxOf(r)));
          } else {
            // A lossy format changes the weights, so the goldens' greedy tokens are reported, not required;
            // the backend must instead match the reference backend holding the same converted weights.
            report.push(`greedy agreement with golden ${greedyMatches.filter(Boolean).length}/${greedyMatches.length}`);
            if (!isReference) {
              const want = await runFixture(ref, fixture, format);
              const tol = MODEL_TOLERANCE.sameFormat[format];
              want.lastLogits.forEach((w, i) => check(`seq${i} logits vs reference (${format})`, got.lastLogits[i]!, w, tol));
              want.allPositions.forEach((w, i) => check(`position ${i} vs reference (${format})`, got.allPositions[i]!, w, tol));
              want.incremental.forEach((w, i) => check(`incremental ${i} vs reference (${format})`, got.incremental[i]!, w, tol));
              const agree = want.greedy.filter((w, i) => w.every((t, j) => got.greedy[i]![j] === t)).length;
              report.push(`greedy agreement with reference ${agree}/${want.greedy.length}`);
              if (format !== 'q8_0' && format !== 'q4_0') want.greedy.forEach((w, i) => expect(got.greedy[i], `greedy vs reference (${format}) seq ${i}`).toEqual(w));
            }
          }
          console.info(`[conformance] ${backend.info.name} ${name} ${format}: max ${summarize(report)}`);
        }, options.timeoutMs ?? 120_000);
      }
      for (const format of ['f32', 'q4_0'] as const) {
        it(`batched decoding (${format} weights): the golden sequences decoded together, each joining with its prompt`, async (ctx) => {
          if (!backend.info.formats.includes(format)) ctx.skip(`backend '${backend.info.name}' does not store ${format}`);
          const { tokens, prompts, widest, worst } = await batchedGreedy(backend, fixture, format);
          // Every row had its own solo pass to compare with; the batch grew to every sequence at once.
          expect(widest).toBe(fixture.golden.sequences.length);
          const tol = format === 'f32' ? 1e-4 : MODEL_TOLERANCE.sameFormat[format];
          expect(worst, `${name} ${format}: batched rows vs one-sequence passes, max abs error ${worst} > ${tol}`).toBeLessThanOrEqual(tol);
          if (format === 'f32') {
            fixture.golden.sequences.forEach((s, i) => {
              const err = maxAbsDiff(prompts[i]!, fixture.lastLogits(i));
              expect(err, `${name} batched prompt ${i} vs golden logits: max abs error ${err}`).toBeLessThanOrEqual(MODEL_TOLERANCE.golden);
              expect(tokens[i], `${name} batched greedy tokens of sequence ${i}`).toEqual(s.greedy_new_tokens);
            });
          }
          console.info(`[conformance] ${backend.info.name} ${name} batched decoding ${format}: max error vs one-sequence passes ${worst.toExponential(2)}`);
        }, options.timeoutMs ?? 120_000);
      }
      it('weights as f32 with an f16 KV cache', async () => {
        // Only the cache rounds: the logits stay within MODEL_TOLERANCE.f16KVCache of the goldens and
        // greedy decoding (plain, on device tokens and speculative) keeps every golden token.
        const g = fixture.golden;
        const got = await runFixture(backend, fixture, 'f32', 'f16');
        const tol = MODEL_TOLERANCE.f16KVCache;
        const worst: number[] = [];
        const check = (what: string, a: Float32Array, b: Float32Array) => {
          const err = maxAbsDiff(a, b);
          worst.push(err);
          expect(err, `${name} f16 KV cache ${what}: max abs error ${err} > ${tol}`).toBeLessThanOrEqual(tol);
        };
        g.sequences.forEach((s, i) => check(`seq${i} logits vs golden`, got.lastLogits[i]!, fixture.lastLogits(i)));
        fixture.allPositionLogits().forEach((row, t) => check(`position ${t} vs golden`, got.allPositions[t]!, row));
        g.incremental.steps.forEach((step, i) => {
          if (step.last_logits) check(`incremental step ${i} vs golden`, got.incremental[i]!, Float32Array.from(step.last_logits));
        });
        g.sequences.forEach((s, i) => {
          expect(got.greedy[i], `${name} f16 KV cache greedy tokens of sequence ${i}`).toEqual(s.greedy_new_tokens);
          expect(got.speculative[i], `${name} f16 KV cache speculative greedy tokens of sequence ${i}`).toEqual(s.greedy_new_tokens);
        });
        if (got.greedyOnDevice) expect(got.greedyOnDevice).toEqual(got.greedy);
        expect(got.allArgmax).toEqual(got.allPositions.map((r) => argmaxOf(r)));
        console.info(`[conformance] ${backend.info.name} ${name} f32 weights, f16 KV cache: max error vs golden ${Math.max(...worst).toExponential(2)}`);
      }, options.timeoutMs ?? 120_000);
    });
  }
}

/** RMS of `a - b` over the standard deviation of `b`. */
function relativeRms(a: Float32Array, b: Float32Array): number {
  let mean = 0;
  for (const v of b) mean += v / b.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += (b[i]! - mean) ** 2;
  }
  return Math.sqrt(num / den);
}

/** The worst error per kind of check, for the log. */
function summarize(report: string[]): string {
  const worst = new Map<string, number>();
  const other: string[] = [];
  for (const r of report) {
    const m = /^(.*?)( \d+)?( .*)? (\S+)$/.exec(r);
    const value = Number(m?.[4]);
    if (!m || Number.isNaN(value)) {
      other.push(r);
      continue;
    }
    const key = `${m[1]}${m[3] ?? ''}`.replace(/\d+/g, '#');
    worst.set(key, Math.max(worst.get(key) ?? 0, value));
  }
  return [...[...worst].map(([k, v]) => `${k}: ${v.toExponential(2)}`), ...other].join('; ');
}
