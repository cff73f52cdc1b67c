import { paramsDecl, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';
import { reduce } from './select.js';

/**
 * Sampling on the device with core's `sampleFromLogits` semantics (penalties, then greedy or softmax at
 * temperature, top-k, top-p, min-p, and a draw in ascending id order), in three dispatches:
 *
 * 1. `sample-logits`, a workgroup per {@link SAMPLE_CHUNK} tokens: the chunk's logits with the penalties
 *    of the history, and the chunk's greedy best (its value is the chunk's max).
 * 2. `sample-candidates`, a workgroup per chunk: the softmax's max from the chunks' bests, the chunk's
 *    unnormalized probabilities `exp((v - max) / T)` (the top one is exactly 1) and the chunk's
 *    candidates, compacted in id order: the tokens the filters can keep (its own top k; or, with top-p
 *    and no top-k, those above a quarter of (1 - topP) / n, which no top-p token is below; or, with
 *    min-p alone, those at least minP).
 * 3. `sample-draw`, one workgroup: greedy from the chunks' bests, or the filters and the draw over the
 *    gathered candidates; with no filter at all, the draw finds its chunk from the chunks' masses.
 *
 * The kept set is always "probability pattern at least some cut": top-k's cut is the k-th largest
 * pattern, found by a radix select (8 histogram passes), and top-p's by bisection over its candidates,
 * compacted, so nothing is sorted. Arithmetic is f32 (the reference uses float64): a draw can differ
 * only when `uniform * total` falls within rounding of a token boundary, or on exact probability ties at
 * the top-p boundary (the reference keeps a prefix of the tied tokens by id; this keeps all or none).
 * With `hasPrev`, the id at `res[prevOff]` (the token drawn last, which the host's history does not hold
 * yet) counts as one more occurrence in the history. Before, one workgroup made about 15 passes over
 * the whole vocabulary, each some 150 rounds of loads per thread; now those passes are spread over about
 * 75 workgroups (Qwen2's vocabulary), and the one workgroup that filters sees the candidates only. On a
 * CPU adapter (lavapipe), where workgroups cost more than their loads, this is slower (see README).
 *
 * The scratch `e` holds {@link sampleScratchFloats} floats: penalized logits, candidate probabilities
 * and ids (each chunk's from the chunk's start), the gathered list's probabilities and ids, top-p's
 * compacted candidates (n each), then 6 per chunk (best value and id, mass, count above 0, candidates).
 */
export const SAMPLE_CHUNK = 2048; // 8 KiB of workgroup memory: half the limit WebGPU guarantees

/** Floats of sampling scratch for a vocabulary of `n`. */
export function sampleScratchFloats(n: number): number {
  return 6 * n + 6 * Math.ceil(n / SAMPLE_CHUNK);
}

/** Largest vocabulary the sampler takes with a draw workgroup of `wg` threads (one chunk per thread). */
export function sampleMaxVocab(wg: number): number {
  return wg * SAMPLE_CHUNK;
}

const SAMPLE_FIELDS: Fields = [
  ['n', 'u32'], ['off', 'u32'], ['resOff', 'u32'], ['histN', 'u32'], ['histOff', 'u32'], ['serial', 'u32'], ['prevOff', 'u32'], ['hasPrev', 'u32'], ['topK', 'u32'],
  ['temperature', 'f32'], ['topP', 'f32'], ['minP', 'f32'], ['rep', 'f32'], ['presence', 'f32'], ['frequency', 'f32'], ['uniform', 'f32'],
];

const BINDINGS =
  '@group(0) @binding(1) var<storage, read_write> x: array<f32>;\n' +
  '@group(0) @binding(2) var<storage, read_write> e: array<f32>;\n' +
  '@group(0) @binding(3) var<storage, read_write> res: array<u32>;\n' +
  '@group(0) @binding(4) var<storage, read> aux: array<u32>;\n';

/** Scratch regions (offsets into `e`, from the vocabulary size) and the chunk partials' fields. */
const LAYOUT = `
const CH: u32 = ${SAMPLE_CHUNK}u;
fn chunks() -> u32 { return (p.n + CH - 1u) / CH; }
fn candV() -> u32 { return p.n; }
fn candI() -> u32 { return 2u * p.n; }
fn listV() -> u32 { return 3u * p.n; }
fn listI() -> u32 { return 4u * p.n; }
fn compact() -> u32 { return 5u * p.n; }
// Chunk c's partials: best value, best id, mass, count above 0, candidates.
fn part(c: u32, f: u32) -> u32 { return 6u * p.n + 6u * c + f; }
var<workgroup> topv: f32;
// The best (greedy) token over the chunks' bests, and its penalized logit (the softmax's max) in topv:
// every workgroup finds the same. NONE when every logit is NaN.
fn globalBest(lid: u32, wg: u32) -> u32 {
  var bv = 0.0;
  var bi = NONE;
  for (var c = lid; c < chunks(); c += wg) {
    let i = bitcast<u32>(e[part(c, 1u)]);
    let v = e[part(c, 0u)];
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
  }
  let best = argmaxReduce(bv, bi, lid);
  if (lid == 0u) { topv = e[select(best, 0u, best == NONE)]; }
  return best;
}
// Greedy, or nothing but -inf and NaN (the best is -inf, or there is none).
fn greedy(best: u32, top: f32) -> bool { return p.temperature == 0.0 || best == NONE || bitcast<u32>(top) == 0xff800000u; }
fn topKActive() -> bool { return p.topK > 0u && p.topK < p.n; }
`;

/**
 * The k-th largest bit pattern among `len` values read by `at(i)`: a radix select, 4 bits per pass from
 * the top, each pass a histogram of the next digit among the patterns that share the digits chosen so
 * far. Counts are exact, so this is the pattern a bisection over patterns would find, in 8 passes
 * instead of 31.
 */
function kthLargestFn(name: string, at: (i: string) => string, wg: number): string {
  return `
fn ${name}(k: u32, len: u32, lid: u32) -> u32 {
  var prefix = 0u;
  var need = k;
  for (var step = 0u; step < 8u; step++) {
    let shift = 28u - 4u * step;
    // The digits above this one (none on the first pass; a shift by 32 would wrap, so it is not used then).
    let mask = select(0xffffffffu << (shift + 4u), 0u, step == 0u);
    if (lid < 16u) { atomicStore(&hist[lid], 0u); }
    workgroupBarrier();
    // Initialized explicitly: lavapipe did not zero an uninitialized var declared in a loop body anew
    // on each iteration (WGSL says it should), and the counts carried over from the previous pass.
    var bins = array<u32, 16>();
    for (var i = lid; i < len; i += ${wg}u) {
      let b = bitcast<u32>(${at('i')});
      if ((b & mask) == prefix) { bins[(b >> shift) & 15u]++; }
    }
    for (var d = 0u; d < 16u; d++) { if (bins[d] > 0u) { atomicAdd(&hist[d], bins[d]); } }
    workgroupBarrier();
    // The largest digit whose patterns, with those of larger digits, number at least need.
    var above = 0u;
    var chosen = 0u;
    for (var d = 15i; d >= 0i; d--) {
      let c = atomicLoad(&hist[u32(d)]);
      if (above + c >= need) { chosen = u32(d); break; }
      above += c;
    }
    need -= above;
    prefix |= chosen << shift;
    workgroupBarrier();
  }
  return prefix;
}`;
}

/** Dispatch 1: a workgroup per chunk; penalized logits and the chunk's greedy best. */
export function sampleLogitsKernel(): KernelDef {
  const code = paramsDecl(SAMPLE_FIELDS) + BINDINGS + reduce(256) + LAYOUT + `
var<workgroup> xs: array<f32, ${SAMPLE_CHUNK}>;
var<workgroup> prevListed: atomic<u32>;
fn penalize(j: u32, count: i32) {
  var v = xs[j];
  if (p.rep != 1.0) { v = select(v * p.rep, v / p.rep, v > 0.0); }
  v -= p.presence + p.frequency * f32(count);
  xs[j] = v;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * CH;
  let len = min(CH, p.n - base);
  // The draw of this sampling may later go where the previous one lies; dispatch 3 writes it.
  let prev = select(NONE, res[p.prevOff], p.hasPrev != 0u);
  if (lid == 0u) { atomicStore(&prevListed, 0u); }
  for (var i = lid; i < len; i += 256u) { xs[i] = x[p.off + base + i]; }
  workgroupBarrier();
  // Every workgroup reads the whole history and applies the entries of its own tokens: in parallel when
  // the ids are distinct; in order, on one thread, when an id repeats (core then penalizes its logit once
  // per entry, in order). The previous token adds one to the first entry with its id.
  if (p.serial == 0u) {
    for (var j = lid; j < p.histN; j += 256u) {
      let id = aux[p.histOff + j];
      var count = bitcast<i32>(aux[p.histOff + p.histN + j]);
      if (id == prev) {
        count += 1;
        atomicStore(&prevListed, 1u);
      }
      if (id >= base && id < base + len && count > 0) { penalize(id - base, count); }
    }
  } else if (lid == 0u) {
    for (var j = 0u; j < p.histN; j++) {
      let id = aux[p.histOff + j];
      var count = bitcast<i32>(aux[p.histOff + p.histN + j]);
      if (id == prev && atomicLoad(&prevListed) == 0u) {
        count += 1;
        atomicStore(&prevListed, 1u);
      }
      if (id >= base && id < base + len && count > 0) { penalize(id - base, count); }
    }
  }
  workgroupBarrier();
  // The previous token, when the history has no entry for it: its first occurrence.
  if (lid == 0u && prev >= base && prev < base + len && atomicLoad(&prevListed) == 0u) { penalize(prev - base, 1); }
  workgroupBarrier();
  var bv = 0.0;
  var bi = NONE;
  for (var i = lid; i < len; i += 256u) {
    let v = xs[i];
    e[base + i] = v;
    if (!isNan(v) && (bi == NONE || v > bv)) { bv = v; bi = base + i; }
  }
  let best = argmaxReduce(bv, bi, lid);
  if (lid == 0u) {
    e[part(wid.x, 0u)] = xs[select(best - base, 0u, best == NONE)]; // not read where the id is NONE
    e[part(wid.x, 1u)] = bitcast<f32>(best);
  }
}
`;
  return { key: 'sample-logits', code, fields: SAMPLE_FIELDS, acts: 1, extras: ['rw', 'rw', 'ro'] };
}

/** Dispatch 2: a workgroup per chunk; the chunk's probabilities, mass and candidates. */
export function sampleCandidatesKernel(): KernelDef {
  const code = paramsDecl(SAMPLE_FIELDS) + BINDINGS + reduce(256) + LAYOUT + `
var<workgroup> xs: array<f32, ${SAMPLE_CHUNK}>;
var<workgroup> hist: array<atomic<u32>, 16>;
const PER: u32 = ${SAMPLE_CHUNK / 256}u;
${kthLargestFn('kthLargest', (i) => `xs[${i}]`, 256)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * CH;
  let len = min(CH, p.n - base);
  let best = globalBest(lid, 256u);
  let top = workgroupUniformLoad(&topv);
  if (greedy(best, top)) { return; }
  let invT = 1.0 / p.temperature;
  var mass = 0.0;
  var kept = 0u;
  for (var i = lid; i < len; i += 256u) {
    let v = e[base + i];
    let q = select(exp((v - top) * invT), 0.0, isNan(v));
    xs[i] = q;
    mass += q;
    kept += select(0u, 1u, q > 0.0);
  }
  let chunkSum = sumFU(mass, kept, lid);
  var cut = 1u;
  if (topKActive()) {
    // The chunk's own top k: every token of the k largest overall is among its chunk's.
    if (chunkSum.u > p.topK) { cut = clamp(kthLargest(p.topK, len, lid), 1u, 0x3f800000u); }
  } else if (p.topP < 1.0) {
    // No token below (1 - topP) * total / count is kept by top-p; total >= 1 (the top token's 1) and
    // count <= n, so a quarter of (1 - topP) / n is below that bound.
    cut = max(cut, bitcast<u32>(0.25 * (1.0 - p.topP) / f32(p.n)));
  } else if (p.minP > 0.0) {
    // Min-p alone: at least minP times the top probability, 1.
    cut = max(cut, bitcast<u32>(p.minP));
  }
  // Compaction in id order: thread t owns entries PER * t .. PER * t + PER - 1 of the chunk.
  var mine = 0u;
  for (var i = lid * PER; i < min(len, lid * PER + PER); i++) { if (bitcast<u32>(xs[i]) >= cut) { mine++; } }
  var w = base + exclusiveScanU(mine, lid);
  let taken = workgroupUniformLoad(&redI[255u]);
  for (var i = lid * PER; i < min(len, lid * PER + PER); i++) {
    if (bitcast<u32>(xs[i]) >= cut) {
      e[candV() + w] = xs[i];
      e[candI() + w] = bitcast<f32>(base + i);
      w++;
    }
  }
  if (lid == 0u) {
    e[part(wid.x, 2u)] = chunkSum.f;
    e[part(wid.x, 3u)] = bitcast<f32>(chunkSum.u);
    e[part(wid.x, 4u)] = bitcast<f32>(taken);
  }
}
`;
  return { key: 'sample-candidates', code, fields: SAMPLE_FIELDS, acts: 1, extras: ['rw', 'rw', 'ro'] };
}

/** Dispatch 3: one workgroup of `wg` threads (a power of two, at least the chunk count); greedy, or the filters and the draw. */
export function sampleDrawKernel(wg: number): KernelDef {
  const code = paramsDecl(SAMPLE_FIELDS) + BINDINGS + reduce(wg) + LAYOUT + `
const WG: u32 = ${wg}u;
var<workgroup> pre: array<f32, ${wg + 1}>;
var<workgroup> crossing: u32;
var<workgroup> found: u32;
var<workgroup> goalW: f32;
var<workgroup> startW: f32;
var<workgroup> hist: array<atomic<u32>, 16>;
${kthLargestFn('kthLargest', (i) => `e[listV() + ${i}]`, wg)}
fn keptAt(j: u32, cut: u32) -> bool { let b = bitcast<u32>(e[j]); return b != 0u && b >= cut; }
// Mass of top-p's compacted candidates (e[compact() .. + m)) whose patterns are above u.
fn massAbove(u: u32, m: u32, lid: u32) -> f32 {
  var s = 0.0;
  for (var j = lid; j < m; j += WG) { let b = bitcast<u32>(e[compact() + j]); if (b > u) { s += e[compact() + j]; } }
  return sumF(s, lid);
}
// The draw in ascending order over e[vb .. vb + m), kept where the pattern is at least cut: the first
// whose cumulative mass, from start, exceeds goal (with ownGoal, uniform times their total); the last
// kept one if rounding runs past the end. Each thread owns a contiguous range; thread 0 finds the range
// where the mass crosses, and that range's owner finds the entry. Returns its index in the range.
fn drawIn(vb: u32, m: u32, cut: u32, start: f32, goal: f32, ownGoal: bool, lid: u32) -> u32 {
  let chunk = (m + WG - 1u) / WG;
  let first = min(m, lid * chunk);
  let last = min(m, first + chunk);
  var local = 0.0;
  var lastKept = NONE;
  for (var i = first; i < last; i++) { if (keptAt(vb + i, cut)) { local += e[vb + i]; lastKept = i; } }
  pre[lid] = local;
  let lastAll = maxU(select(lastKept, 0u, lastKept == NONE), lid);
  if (lid == 0u) {
    var g = goal;
    if (ownGoal) {
      var total = 0.0;
      for (var t = 0u; t < WG; t++) { total += pre[t]; }
      g = p.uniform * total;
    }
    var cum = start;
    crossing = NONE;
    for (var t = 0u; t < WG; t++) {
      let next = cum + pre[t];
      if (next > g) { crossing = t; pre[WG] = cum; break; }
      cum = next;
    }
    goalW = g;
    found = lastAll;
  }
  workgroupBarrier();
  let who = crossing;
  let g = goalW;
  if (lid == who) {
    var cum = pre[WG];
    for (var i = first; i < last; i++) {
      if (keptAt(vb + i, cut)) {
        cum += e[vb + i];
        if (cum > g) { found = i; break; }
      }
    }
  }
  return workgroupUniformLoad(&found);
}
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) lid: u32) {
  let best = globalBest(lid, WG);
  let top = workgroupUniformLoad(&topv);
  if (greedy(best, top)) {
    if (lid == 0u) { res[p.resOff] = best; }
    return;
  }
  let nc = chunks();
  // Chunk lid's candidates, mass and count above 0.
  var cands = 0u;
  var mass = 0.0;
  var kept = 0u;
  if (lid < nc) {
    cands = bitcast<u32>(e[part(lid, 4u)]);
    mass = e[part(lid, 2u)];
    kept = bitcast<u32>(e[part(lid, 3u)]);
  }
  let all = sumFU(mass, kept, lid);
  if (!topKActive() && p.topP >= 1.0 && p.minP <= 0.0) {
    // No filter: the chunk where the cumulative mass crosses uniform * total, then the token there;
    // past the end (rounding), the last token of the last chunk with any.
    pre[lid] = mass;
    redI[lid] = cands;
    workgroupBarrier();
    if (lid == 0u) {
      var total = 0.0;
      var lastChunk = 0u;
      for (var c = 0u; c < nc; c++) {
        total += pre[c];
        if (redI[c] > 0u) { lastChunk = c; }
      }
      let goal = p.uniform * total;
      var cum = 0.0;
      crossing = NONE;
      for (var c = 0u; c < nc; c++) {
        if (cum + pre[c] > goal) { crossing = c; break; }
        cum += pre[c];
      }
      startW = select(cum, 0.0, crossing == NONE);
      goalW = select(goal, 3.4e38, crossing == NONE);
      crossing = select(crossing, lastChunk, crossing == NONE);
    }
    let c = workgroupUniformLoad(&crossing);
    let start = startW;
    let goal = goalW;
    let m = redI[c];
    workgroupBarrier();
    let j = drawIn(candV() + c * CH, m, 1u, start, goal, false, lid);
    if (lid == 0u) { res[p.resOff] = bitcast<u32>(e[candI() + c * CH + j]); }
    return;
  }
  // Gather the chunks' candidates in id order. redI holds the inclusive sums of their counts; the
  // chunk of list entry g is the first whose sum exceeds g.
  exclusiveScanU(cands, lid);
  let m = workgroupUniformLoad(&redI[WG - 1u]);
  for (var g = lid; g < m; g += WG) {
    var lo = 0u;
    var hi = nc - 1u;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (redI[mid] > g) { hi = mid; } else { lo = mid + 1u; }
    }
    let start = select(redI[max(lo, 1u) - 1u], 0u, lo == 0u);
    let src = lo * CH + g - start;
    e[listV() + g] = e[candV() + src];
    e[listI() + g] = e[candI() + src];
  }
  storageBarrier();
  workgroupBarrier();
  var cut = 1u;
  if (topKActive() && m > p.topK) {
    // Keep the top k: patterns at least the k-th largest (at least 1: zero never counts; at most 1.0,
    // the largest probability, should a NaN pattern rank above it).
    cut = max(cut, clamp(kthLargest(p.topK, m, lid), 1u, 0x3f800000u));
  }
  if (p.topP < 1.0) {
    // The mass and count of the tokens kept so far: with top-k, of the list; without, of every token
    // with a probability (the list holds those above top-p's floor).
    var total = all.f;
    var count = all.u;
    if (topKActive()) {
      var s = 0.0;
      var c = 0u;
      for (var j = lid; j < m; j += WG) { if (keptAt(listV() + j, cut)) { s += e[listV() + j]; c++; } }
      let keptSum = sumFU(s, c, lid);
      total = keptSum.f;
      count = keptSum.u;
    }
    let goal = p.topP * total;
    // No token below (1 - topP) * total / count is ever kept: if one were, it and every token after it
    // would together hold more than (1 - topP) * total, yet none of them reaches that share of it. Nor
    // can such tokens move the bisection, which starts above them. Half that bound leaves room for
    // rounding; the more peaked the distribution, the fewer tokens remain.
    cut = max(cut, bitcast<u32>(0.5 * (1.0 - p.topP) * total / f32(count)));
    // The remaining candidates, compacted once in a fixed order (thread by thread), so that the
    // bisection's 31 summing scans read only them.
    var mine = 0u;
    for (var j = lid; j < m; j += WG) { if (keptAt(listV() + j, cut)) { mine++; } }
    var w = compact() + exclusiveScanU(mine, lid);
    let mk = workgroupUniformLoad(&redI[WG - 1u]);
    for (var j = lid; j < m; j += WG) { if (keptAt(listV() + j, cut)) { e[w] = e[listV() + j]; w++; } }
    storageBarrier();
    var lo = cut;
    var hi = 0x3f800000u;
    for (var it = 0u; it < 31u; it++) {
      let mid = lo + (hi - lo) / 2u;
      if (massAbove(mid, mk, lid) < goal) { hi = mid; } else { lo = mid + 1u; }
    }
    cut = max(cut, lo);
  }
  if (p.minP > 0.0) { cut = max(cut, bitcast<u32>(p.minP)); }
  let j = drawIn(listV(), m, cut, 0.0, 0.0, true, lid);
  if (lid == 0u) { res[p.resOff] = bitcast<u32>(e[listI() + j]); }
}
`;
  return { key: `sample-draw:${wg}`, code, fields: SAMPLE_FIELDS, acts: 1, extras: ['rw', 'rw', 'ro'] };
}
