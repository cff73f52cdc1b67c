import { applyPenalties, sampleFromLogits, validateSamplingParams, type SamplingParams } from '@qwen2-ts/core';
import type { Arena } from './arena.js';

/**
 * Draws a token from the row of `n` logits at byte offset `ptr` of `arena` with core's
 * `sampleFromLogits` semantics, computed in the kernel module: the penalties on a copy of the row, then
 * the kernels' passes (max, `exp((v - max) / T)` in f32 with a float64 sum, top-k's cut by a heap), the
 * filters as one kept set ("at least `lo`, above `thr`, and the first `ties` at `thr` in id order"), its
 * mass and the draw in id order. Top-p sorts only what it must: top-k's candidates, or without top-k the
 * tokens of the one histogram bucket (16 top bits of the f32 probability) where its walk from the most
 * likely token stops.
 *
 * The reference computes in float64 with `Math.exp` over the whole vocabulary (about 4 ms of a 12 ms
 * Qwen2-0.5B decode step on two cores); this takes under one. Probabilities are f32, as
 * the GPU samplers' are: a draw differs from the reference's only when `uniform * total` falls within
 * rounding of a token's boundary, or where rounding decides whether exactly tied tokens reach topP.
 * Greedy draws (temperature 0), and rows holding NaN or an infinity, go to the reference itself.
 */
export function sampleInKernels(arena: Arena, ptr: number, n: number, params: SamplingParams): number {
  validateSamplingParams(params);
  const row = (): Float32Array => arena.f32.subarray(ptr >>> 2, (ptr >>> 2) + n);
  if (params.temperature === 0 || n < 2) return sampleFromLogits(row(), params);
  const k = arena.kernels;
  let x = ptr;
  if (hasPenalties(params)) {
    // The penalties on a copy: the logits stay as the model left them.
    x = arena.scratchBlock('sample logits', n * 4);
    arena.u8.copyWithin(x, ptr, ptr + n * 4);
    applyPenalties(arena.f32.subarray(x >>> 2, (x >>> 2) + n), params);
  }
  const max = k.sample_max(x, n);
  if (Number.isNaN(max)) return sampleFromLogits(row(), params);
  const e = arena.scratchBlock('sample probabilities', n * 4);
  const sum = k.sample_exp(x, e, n, max, 1 / params.temperature);

  // The kept set; probabilities are in units of e, where the top token is exactly 1.
  let cut: KeptSet = { thr: 0, ties: 0 };
  const topK = params.topK > 0 && params.topK < n;
  if (topK) cut = { thr: k.sample_kth(e, n, params.topK, arena.scratchBlock('sample heap', params.topK * 4)), ties: n };
  if (params.topP < 1) cut = topK ? topPAmongTopK(arena, e, n, cut.thr, params.topP) : topPOfAll(arena, e, n, sum, params.topP);
  // Min-p after both: at least minP times the top kept token, which is the top token (1). Tokens of
  // probability 0 are never kept (the reference keeps p > 0 only).
  const lo = Math.max(MIN_POSITIVE_F32, params.minP);
  const total = k.sample_kept_mass(e, n, lo, cut.thr, cut.ties);
  return k.sample_draw(e, n, lo, cut.thr, cut.ties, params.uniform * total);
}

/** Tokens above `thr`, and the first `ties` (in id order) equal to it. */
interface KeptSet {
  thr: number;
  ties: number;
}

/** The smallest positive f32 (a subnormal): a cut that keeps every token above 0. */
const MIN_POSITIVE_F32 = 1.401298464324817e-45;
/** Histogram buckets of the kernels' `sample_histogram`. */
const BUCKETS = 16384;

function hasPenalties(params: SamplingParams): boolean {
  return params.history.ids.length > 0 && (params.repetitionPenalty !== 1 || params.presencePenalty !== 0 || params.frequencyPenalty !== 0);
}

/**
 * Top-p over top-k's kept set (every token at least `kth`: k of them, more on ties), renormalized: the
 * reference's walk down the sorted probabilities, on those few.
 */
function topPAmongTopK(arena: Arena, e: number, n: number, kth: number, topP: number): KeptSet {
  const sorted = collect(arena, e, n, Math.max(kth, MIN_POSITIVE_F32), Infinity).sort();
  let total = 0;
  for (const v of sorted) total += v;
  return walkDown(sorted, 0, 0, total, topP);
}

/**
 * Top-p over every token: the mass per histogram bucket finds the bucket where the walk from the most
 * likely token stops (the kept mass before it is still below topP); only that bucket's tokens are sorted.
 */
function topPOfAll(arena: Arena, e: number, n: number, total: number, topP: number): KeptSet {
  const hist = arena.scratchBlock('sample histogram', BUCKETS * 12);
  arena.kernels.sample_histogram(e, n, hist);
  const mass = new Float64Array(arena.memory.buffer, hist, BUCKETS);
  const counts = new Int32Array(arena.memory.buffer, hist + BUCKETS * 8, BUCKETS);
  let before = 0;
  let count = 0;
  let bucket = -1;
  let massAbove = 0;
  let countAbove = 0;
  for (let b = BUCKETS - 1; b >= 0; b--) {
    if (counts[b] === 0) continue;
    if (count > 0 && before / total >= topP) break;
    bucket = b;
    massAbove = before;
    countAbove = count;
    before += mass[b]!;
    count += counts[b]!;
  }
  const bits = new Uint32Array([bucket << 16, (bucket + 1) << 16]);
  const [lo, hi] = new Float32Array(bits.buffer);
  return walkDown(collect(arena, e, n, lo!, hi!).sort(), massAbove, countAbove, total, topP);
}

/**
 * The reference's top-p walk from the largest of `sorted` (ascending) down, after `countBefore` tokens
 * of mass `before` above them: tokens are taken while the mass before the next is below topP of
 * `total`. The last taken value is the threshold; of the values equal to it, as many stay as were taken.
 */
function walkDown(sorted: Float64Array, before: number, countBefore: number, total: number, topP: number): KeptSet {
  let count = countBefore;
  let j = sorted.length - 1;
  for (; j >= 0; j--) {
    if (count > 0 && before / total >= topP) break;
    before += sorted[j]!;
    count++;
  }
  const thr = sorted[j + 1]!;
  let ties = 0;
  for (let i = j + 1; i < sorted.length && sorted[i] === thr; i++) ties++;
  return { thr, ties };
}

/** The probabilities (as float64) in [lo, hi), in id order. */
function collect(arena: Arena, e: number, n: number, lo: number, hi: number): Float64Array {
  const vals = arena.scratchBlock('sample values', n * 4);
  const m = arena.kernels.sample_collect(e, n, lo, hi, vals);
  return Float64Array.from(new Float32Array(arena.memory.buffer, vals, m));
}
