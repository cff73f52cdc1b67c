import { paramsDecl, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';

/** Written as the result when a row has no non-NaN value. */
export const NO_TOKEN = 0xffffffff;

/** Shared WGSL: workgroup reductions (`wg` threads, a power of two) and an argmax with core's semantics. */
const reduce = (wg: number): string => `
const NONE: u32 = 0xffffffffu;
var<workgroup> redF: array<f32, ${wg}>;
var<workgroup> redI: array<u32, ${wg}>;
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
// (v, i) beats (bv, bi): NaN never wins, larger wins, lower index on ties.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  if (i == NONE) { return false; }
  if (bi == NONE) { return true; }
  return v > bv || (v == bv && i < bi);
}
fn argmaxReduce(v0: f32, i0: u32, lid: u32) -> u32 {
  redF[lid] = v0;
  redI[lid] = i0;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s && better(redF[lid + s], redI[lid + s], redF[lid], redI[lid])) {
      redF[lid] = redF[lid + s];
      redI[lid] = redI[lid + s];
    }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redI[0]);
  workgroupBarrier();
  return r;
}
fn sumF(v: f32, lid: u32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { redF[lid] += redF[lid + s]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  workgroupBarrier();
  return r;
}
// Exclusive prefix sum over the workgroup (Hillis-Steele in redI); the total is left in redI[${wg - 1}].
fn exclusiveScanU(v: u32, lid: u32) -> u32 {
  redI[lid] = v;
  workgroupBarrier();
  for (var s = 1u; s < ${wg}u; s <<= 1u) {
    let add = select(0u, redI[select(0u, lid - s, lid >= s)], lid >= s);
    workgroupBarrier();
    redI[lid] += add;
    workgroupBarrier();
  }
  return redI[lid] - v;
}
struct SumFU { f: f32, u: u32 }
// sumF of v and the sum of c in one tree (the f32 sum in sumF's order, so to the same bits).
fn sumFU(v: f32, c: u32, lid: u32) -> SumFU {
  redF[lid] = v;
  redI[lid] = c;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      redF[lid] += redF[lid + s];
      redI[lid] += redI[lid + s];
    }
    workgroupBarrier();
  }
  let r = SumFU(workgroupUniformLoad(&redF[0]), workgroupUniformLoad(&redI[0]));
  workgroupBarrier();
  return r;
}
fn maxU(v: u32, lid: u32) -> u32 {
  redI[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { redI[lid] = max(redI[lid], redI[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redI[0]);
  workgroupBarrier();
  return r;
}
`;

const ARGMAX_FIELDS: Fields = [['n', 'u32'], ['off', 'u32'], ['resOff', 'u32']];

/**
 * Row-wise argmax (first index on ties, NaN never wins): one workgroup of 256 threads per row. Each
 * thread loads 8 logits (256 apart) before comparing any, so 8 loads are in flight instead of one: a
 * greedy decode step waits for this single workgroup to scan the whole vocabulary (151,936 logits, about
 * 75 rounds of 8 per thread instead of about 600 of one).
 */
export function argmaxKernel(): KernelDef {
  const loads = Array.from({ length: 8 }, (_, j) => `    let v${j} = x[b + i + ${j * 256}u];`).join('\n');
  const takes = Array.from({ length: 8 }, (_, j) => `    take(v${j}, i + ${j * 256}u);`).join('\n');
  const code = paramsDecl(ARGMAX_FIELDS) + '@group(0) @binding(1) var<storage, read_write> x: array<f32>;\n@group(0) @binding(2) var<storage, read_write> res: array<u32>;\n' + reduce(256) + `
var<private> bv: f32;
var<private> bi: u32;
// Indices come in increasing order per thread: a strictly larger value replaces, so the first wins.
fn take(v: f32, i: u32) {
  if (!isNan(v) && (bi == NONE || v > bv)) { bv = v; bi = i; }
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = p.off + wid.x * p.n;
  bv = 0.0;
  bi = NONE;
  var i = lid;
  for (; i + 1792u < p.n; i += 2048u) {
${loads}
${takes}
  }
  for (; i < p.n; i += 256u) { take(x[b + i], i); }
  let r = argmaxReduce(bv, bi, lid);
  if (lid == 0u) { res[p.resOff + wid.x] = r; }
}
`;
  return { key: 'argmax', code, fields: ARGMAX_FIELDS, acts: 1, extras: ['rw'] };
}

const SAMPLE_FIELDS: Fields = [
  ['n', 'u32'], ['off', 'u32'], ['resOff', 'u32'], ['histN', 'u32'], ['histOff', 'u32'], ['prevOff', 'u32'], ['hasPrev', 'u32'], ['topK', 'u32'],
  ['temperature', 'f32'], ['topP', 'f32'], ['minP', 'f32'], ['rep', 'f32'], ['presence', 'f32'], ['frequency', 'f32'], ['uniform', 'f32'],
];

/**
 * Sampling on the device, in one workgroup, with core's `sampleFromLogits` semantics: penalties, then
 * greedy or softmax at temperature, top-k, top-p, min-p, and a draw in ascending id order. The kept set
 * is always "probability at least some cutoff", over the bit patterns of the (non-negative) unnormalized
 * probabilities: top-k's is the k-th largest pattern, found by a radix select (8 histogram passes), and
 * top-p's by bisection over its candidates (the kept tokens that reach half of the bound no top-p token
 * is below) compacted after the probabilities (one summing pass over them per step), so nothing is
 * sorted. `e` holds 2n floats. Arithmetic is f32 (the reference uses
 * float64): a draw can differ only when `uniform * total` falls within rounding of a token boundary, or
 * on exact probability ties at the top-p boundary (the reference keeps a prefix of the tied tokens by
 * id; this keeps all or none). With `hasPrev`, the id at `res[prevOff]` (the token drawn last, which the
 * host's history does not hold yet) counts as one more occurrence in the history.
 */
export function sampleKernel(wg: number): KernelDef {
  const code = paramsDecl(SAMPLE_FIELDS) +
    '@group(0) @binding(1) var<storage, read_write> x: array<f32>;\n' +
    '@group(0) @binding(2) var<storage, read_write> e: array<f32>;\n' +
    '@group(0) @binding(3) var<storage, read_write> res: array<u32>;\n' +
    '@group(0) @binding(4) var<storage, read> aux: array<u32>;\n' + reduce(wg) + `
const WG: u32 = ${wg}u;
var<workgroup> pre: array<f32, ${wg + 1}>;
var<workgroup> crossing: u32;
var<workgroup> topv: f32;
fn kept(i: u32, cut: u32) -> bool { let b = bitcast<u32>(e[i]); return b != 0u && b >= cut; }
var<workgroup> hist: array<atomic<u32>, 16>;
var<workgroup> prevListed: atomic<u32>;
fn penalize(id: u32, count: i32) {
  var v = e[id];
  if (p.rep != 1.0) { v = select(v * p.rep, v / p.rep, v > 0.0); }
  v -= p.presence + p.frequency * f32(count);
  e[id] = v;
}
// The k-th largest bit pattern among e (k <= n): a radix select, 4 bits per pass from the top, each pass
// a histogram of the next digit among the patterns that share the digits chosen so far. Counts are
// exact, so this is the pattern a bisection over patterns would find, in 8 passes instead of 31.
fn kthLargest(k: u32, lid: u32) -> u32 {
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
    for (var i = lid; i < p.n; i += WG) {
      let b = bitcast<u32>(e[i]);
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
}
// Mass of the compacted kept probabilities (e[n .. n+m)) whose patterns are above u.
fn massAbove(u: u32, m: u32, lid: u32) -> f32 {
  var s = 0.0;
  for (var j = lid; j < m; j += WG) { let b = bitcast<u32>(e[p.n + j]); if (b > u) { s += e[p.n + j]; } }
  return sumF(s, lid);
}
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = p.n;
  // Read before anything is written: this draw's result may go where the previous one lies.
  let prev = select(NONE, res[p.prevOff], p.hasPrev != 0u);
  if (lid == 0u) { atomicStore(&prevListed, 0u); }
  for (var i = lid; i < n; i += WG) { e[i] = x[p.off + i]; }
  storageBarrier();
  workgroupBarrier();
  for (var j = lid; j < p.histN; j += WG) {
    let id = aux[p.histOff + j];
    var count = bitcast<i32>(aux[p.histOff + p.histN + j]);
    if (id == prev) {
      count += 1;
      atomicStore(&prevListed, 1u);
    }
    if (id < n && count > 0) { penalize(id, count); }
  }
  storageBarrier();
  workgroupBarrier();
  // The previous token, when the history has no entry for it: its first occurrence.
  if (lid == 0u && prev < n && atomicLoad(&prevListed) == 0u) { penalize(prev, 1); }
  storageBarrier();
  // Greedy (temperature 0), or every logit -inf/NaN: the argmax of the penalized logits.
  var bv = 0.0;
  var bi = NONE;
  for (var i = lid; i < n; i += WG) {
    let v = e[i];
    if (!isNan(v) && (bi == NONE || v > bv)) { bv = v; bi = i; }
  }
  let best = argmaxReduce(bv, bi, lid);
  if (lid == 0u && best != NONE) { topv = e[best]; }
  let top = workgroupUniformLoad(&topv);
  if (p.temperature == 0.0 || best == NONE || bitcast<u32>(top) == 0xff800000u) {
    if (lid == 0u) { res[p.resOff] = best; }
    return;
  }
  let mx = top;
  let invT = 1.0 / p.temperature;
  for (var i = lid; i < n; i += WG) {
    let v = e[i];
    e[i] = select(exp((v - mx) * invT), 0.0, isNan(v));
  }
  storageBarrier();
  var cut = 1u;
  if (p.topK > 0u && p.topK < n) {
    // Keep the top k: patterns at least the k-th largest (at least 1: zero never counts; at most 1.0,
    // the largest probability, should a NaN pattern rank above it).
    cut = max(cut, clamp(kthLargest(p.topK, lid), 1u, 0x3f800000u));
  }
  if (p.topP < 1.0) {
    // The mass and count of the tokens kept so far.
    var s = 0.0;
    var c = 0u;
    for (var i = lid; i < n; i += WG) { if (kept(i, cut)) { s += e[i]; c++; } }
    let keptSum = sumFU(s, c, lid);
    let total = keptSum.f;
    let count = keptSum.u;
    let goal = p.topP * total;
    // No token below (1 - topP) * total / count is ever kept: if one were, it and every token after it
    // would together hold more than (1 - topP) * total, yet none of them reaches that share of it. Nor
    // can such tokens move the bisection, which starts above them. Half that bound leaves room for
    // rounding; the more peaked the distribution, the fewer tokens remain.
    cut = max(cut, bitcast<u32>(0.5 * (1.0 - p.topP) * total / f32(count)));
    // The remaining candidates, compacted once after e in a fixed order (thread by thread), so that the
    // bisection's 31 summing scans read only them (after top-k, tens of tokens instead of the vocabulary).
    var mine = 0u;
    for (var i = lid; i < n; i += WG) { if (kept(i, cut)) { mine++; } }
    var w = n + exclusiveScanU(mine, lid);
    let m = workgroupUniformLoad(&redI[WG - 1u]);
    for (var i = lid; i < n; i += WG) { if (kept(i, cut)) { e[w] = e[i]; w++; } }
    storageBarrier();
    var lo = cut;
    var hi = 0x3f800000u;
    for (var it = 0u; it < 31u; it++) {
      let mid = lo + (hi - lo) / 2u;
      if (massAbove(mid, m, lid) < goal) { hi = mid; } else { lo = mid + 1u; }
    }
    cut = max(cut, lo);
  }
  if (p.minP > 0.0) { cut = max(cut, bitcast<u32>(p.minP)); }
  // Draw in ascending id order: each thread owns a contiguous range; thread 0 finds the range where
  // the cumulative mass crosses uniform * total, and that range's owner finds the token.
  let chunk = (n + WG - 1u) / WG;
  let first = min(n, lid * chunk);
  let last = min(n, first + chunk);
  var local = 0.0;
  var lastKept = NONE;
  for (var i = first; i < last; i++) { if (kept(i, cut)) { local += e[i]; lastKept = i; } }
  pre[lid] = local;
  let lastAll = maxU(select(lastKept, 0u, lastKept == NONE), lid);
  if (lid == 0u) {
    var total = 0.0;
    for (var t = 0u; t < WG; t++) { total += pre[t]; }
    let goal = p.uniform * total;
    var cum = 0.0;
    crossing = NONE;
    for (var t = 0u; t < WG; t++) {
      let next = cum + pre[t];
      if (next > goal) { crossing = t; pre[WG] = cum; break; }
      cum = next;
    }
    pre[WG] = select(pre[WG], goal, crossing == NONE);
    redF[0] = goal;
  }
  workgroupBarrier();
  let who = crossing;
  let goal = redF[0];
  if (who == NONE) {
    if (lid == 0u) { res[p.resOff] = lastAll; }
    return;
  }
  if (lid == who) {
    var cum = pre[WG];
    var found = lastKept;
    for (var i = first; i < last; i++) {
      if (kept(i, cut)) {
        cum += e[i];
        if (cum > goal) { found = i; break; }
      }
    }
    res[p.resOff] = found;
  }
}
`;
  return { key: `sample:${wg}`, code, fields: SAMPLE_FIELDS, acts: 1, extras: ['rw', 'rw', 'ro'] };
}
