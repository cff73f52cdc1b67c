import type { KVCacheDtype } from '@qwen2-ts/core';
import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';
import { KV_HALVES_WGSL, kvElement } from './kv-cache.js';

/** Largest head size the attention kernels take (4 values per thread of 64). */
export const MAX_HEAD_DIM = 256;

export const ATTN_PARTIAL_FIELDS: Fields = [
  ['T', 'u32'], ['H', 'u32'], ['group', 'u32'], ['D', 'u32'], ['cap', 'u32'], ['startPos', 'u32'], ['window', 'u32'],
  ['nSplits', 'u32'], ['splitLen', 'u32'], ['qOff', 'u32'], ['oOff', 'u32'], ['scale', 'f32'],
];

/**
 * Attention, phase 1 (flash-decoding): one workgroup per (token, head, split of the key range). Keys are
 * visited in tiles of 64 with an online softmax (running max, sum and value accumulator), so a split
 * can be arbitrarily long; splitting the sequence gives a long context enough workgroups to fill a GPU
 * even for one token. Writes `(max, sum, acc[D])` per workgroup to a scratch buffer.
 *
 * Each thread scores one key of a tile. With `vec4` (head sizes that are a multiple of 4; of 8 for an
 * f16 cache) it reads the key row 16 bytes at a time: the 64 threads' rows lie `D` values apart, so each
 * load makes a subgroup touch one cache line per thread, and 16-byte loads need a quarter of the scalar
 * loads' lines; four partial dot products keep four loads in flight.
 *
 * The weighted sum of value rows: with `vec4`, thread `(g, c)` owns the dimensions of the `c`-th 16
 * bytes of a row (4 floats; 8 halves of an f16 cache) for the `G` key groups' `g`-th (keys g, g + G,
 * ...), reading value rows 16 bytes at a time, four keys' loads in flight, and the groups' sums are
 * added once per split. (Scalar: each thread owns dimensions `lid + 64i`, or words `lid + 64i` of an
 * f16 cache, and visits every key of the tile, one load in flight per key.) A short context's decode
 * step is a handful of such workgroups, so the time of one tile's chain of loads, not bandwidth, is what
 * the GPU waits for.
 *
 * An f16 cache (see kv-cache.ts) is read as words of two halves, dimensions `i` and `i + D/2`, widened
 * exactly by `unpack2x16float`; each half meets q's value and lands in the output at its own dimension,
 * and everything after the loads is f32 as for an f32 cache.
 */
export function attentionPartialKernel(direct = false, slots: readonly number[] = [0], vec4 = false, dtype: KVCacheDtype = 'f32'): KernelDef {
  // direct: one split only, so the result is final: normalize and write the output (no phase 2).
  const a = direct ? actDecls(slots) : { decl: '@group(0) @binding(1) var<storage, read_write> q: array<f32>;\n', names: ['q'], count: 1 };
  const [Q, O] = [a.names[0]!, a.names[1] ?? ''];
  const kb = 1 + a.count;
  const row = kvElement(dtype, vec4);
  // Where the split's result goes: its value `v` at dimension d, then (not direct) m and l.
  const put = (d: string, v: string): string => direct ? `${O}[p.oOff + th * p.D + ${d}] = ${v} / l;` : `scr[ob + 2u + ${d}] = ${v};`;
  const r = (dtype === 'f16' ? (vec4 ? f16Vec4Rows : f16Rows) : vec4 ? f32Vec4Rows : f32Rows)(Q, put);
  const code = paramsDecl(ATTN_PARTIAL_FIELDS) + a.decl +
    `@group(0) @binding(${kb}) var<storage, read> kc: array<${row}>;\n` +
    `@group(0) @binding(${kb + 1}) var<storage, read> vc: array<${row}>;\n` +
    (direct ? '' : `@group(0) @binding(${kb + 2}) var<storage, read_write> scr: array<f32>;\n`) + WG_INDEX + (dtype === 'f16' && vec4 ? KV_HALVES_WGSL : '') + `
const NEG: f32 = -1e30;
${r.shared}
var<workgroup> sc: array<f32, 64>;
@compute @workgroup_size(64)
fn main(${BUILTINS}) {
  let w = wgIndex(wid, nwg);
  let s = w % p.nSplits;
  let th = w / p.nSplits;
  let h = th % p.H;
  let t = th / p.H;
  if (t >= p.T) { return; }
  let pos = p.startPos + t;
  var lo = 0u;
  if (p.window != 0u && pos + 1u > p.window) { lo = pos + 1u - p.window; }
  let hi = pos + 1u;
  let start = lo + s * p.splitLen;
  let end = min(hi, start + p.splitLen);
  let kvBase = (h / p.group) * p.cap;
${r.setup}
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  for (var p0 = start; p0 < end; p0 += 64u) {
    let pp = p0 + lid;
    var sv = NEG;
    if (pp < end) {
${r.score}
      sv = dotv * p.scale;
    }
    sc[lid] = sv;
    workgroupBarrier();
    let cnt = min(64u, end - p0);
    var tmax = NEG;
    for (var j = 0u; j < cnt; j++) { tmax = max(tmax, sc[j]); }
    let mNew = max(m, tmax);
    let f = exp(m - mNew);
    workgroupBarrier();
    var e = 0.0;
    if (pp < end) { e = exp(sv - mNew); }
    sc[lid] = e;
    workgroupBarrier();
    var tsum = 0.0;
    for (var j = 0u; j < cnt; j++) { tsum += sc[j]; }
${r.accumulate}
    l = l * f + tsum;
    m = mNew;
    workgroupBarrier();
  }
${direct ? '' : `  let ob = w * (p.D + 2u);
  if (lid == 0u) { scr[ob] = m; scr[ob + 1u] = l; }
`}${r.finish}
}
`;
  return { key: `attn-partial:${direct}:${slots.join('')}:${vec4}:${dtype}`, code, fields: ATTN_PARTIAL_FIELDS, acts: a.count, extras: direct ? ['ro', 'ro'] : ['ro', 'ro', 'rw'] };
}

/**
 * The parts of {@link attentionPartialKernel} that depend on how the cache stores a row: workgroup
 * memory, staging q (and the accumulator), one key's dot product `dotv` (key `pp`), the tile's weighted
 * sum of value rows, and writing the split's result through `put(dimension, value)`.
 */
interface CacheRows { shared: string; setup: string; score: string; accumulate: string; finish: string }
type Put = (d: string, v: string) => string;

/** f32 rows, one value at a time. */
function f32Rows(Q: string, put: Put): CacheRows {
  return {
    shared: `var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;`,
    setup: `  for (var d = lid; d < p.D; d += 64u) { qs[d] = ${Q}[p.qOff + th * p.D + d]; }
  var acc = array<f32, 4>();`,
    score: `      var dotv = 0.0;
      let kb = (kvBase + pp) * p.D;
      for (var d = 0u; d < p.D; d++) { dotv += qs[d] * kc[kb + d]; }`,
    accumulate: `    for (var i = 0u; i < 4u; i++) { acc[i] *= f; }
    for (var j = 0u; j < cnt; j++) {
      let ej = sc[j];
      let vb = (kvBase + p0 + j) * p.D;
      for (var i = 0u; i < 4u; i++) {
        let d = lid + i * 64u;
        if (d < p.D) { acc[i] += ej * vc[vb + d]; }
      }
    }`,
    finish: `  for (var i = 0u; i < 4u; i++) {
    let d = lid + i * 64u;
    if (d < p.D) { ${put('d', 'acc[i]')} }
  }`,
  };
}

/** f32 rows as vec4s (D a multiple of 4). */
function f32Vec4Rows(Q: string, put: Put): CacheRows {
  return {
    shared: `var<workgroup> qs: array<vec4<f32>, ${MAX_HEAD_DIM / 4}>;
var<workgroup> vs: array<vec4<f32>, 64>;`,
    setup: `  // Row length in vec4s; thread (g, c) of the value sum (g < G live).
  let Q4 = p.D / 4u;
  let G = 64u / Q4;
  let c = lid % Q4;
  let g = lid / Q4;
  for (var d = lid; d < Q4; d += 64u) {
    let qb = p.qOff + th * p.D + d * 4u;
    qs[d] = vec4<f32>(${Q}[qb], ${Q}[qb + 1u], ${Q}[qb + 2u], ${Q}[qb + 3u]);
  }
  var accv = vec4<f32>();`,
    score: `      let kb = (kvBase + pp) * Q4;
      var d0 = vec4<f32>();
      var d1 = vec4<f32>();
      var d2 = vec4<f32>();
      var d3 = vec4<f32>();
      var d = 0u;
      for (; d + 4u <= Q4; d += 4u) {
        d0 += qs[d] * kc[kb + d];
        d1 += qs[d + 1u] * kc[kb + d + 1u];
        d2 += qs[d + 2u] * kc[kb + d + 2u];
        d3 += qs[d + 3u] * kc[kb + d + 3u];
      }
      for (; d < Q4; d++) { d0 += qs[d] * kc[kb + d]; }
      let dotv = dot((d0 + d1) + (d2 + d3), vec4<f32>(1.0));`,
    accumulate: `    accv *= f;
    if (g < G) {
      // Keys g, g + G, ...: four rows' loads issued before their products.
      let step = G * Q4;
      var j = g;
      for (; j + 3u * G < cnt; j += 4u * G) {
        let r = (kvBase + p0 + j) * Q4 + c;
        let v0 = vc[r];
        let v1 = vc[r + step];
        let v2 = vc[r + 2u * step];
        let v3 = vc[r + 3u * step];
        accv += (sc[j] * v0 + sc[j + G] * v1) + (sc[j + 2u * G] * v2 + sc[j + 3u * G] * v3);
      }
      for (; j < cnt; j += G) { accv += sc[j] * vc[(kvBase + p0 + j) * Q4 + c]; }
    }`,
    finish: `  // Add up the key groups' sums of each 4 dimensions.
  vs[lid] = accv;
  workgroupBarrier();
  if (lid < Q4) {
    var sum = vec4<f32>();
    for (var gi = 0u; gi < G; gi++) { sum += vs[gi * Q4 + lid]; }
    for (var i = 0u; i < 4u; i++) { ${put('lid * 4u + i', 'sum[i]')} }
  }`,
  };
}

/**
 * f16 rows one word (two halves: dimensions i and i + W, W = D/2) at a time. q is staged as it is; each
 * thread owns words `lid` and `lid + 64` of the value sum (W <= MAX_HEAD_DIM / 2 = 128).
 */
function f16Rows(Q: string, put: Put): CacheRows {
  return {
    shared: `var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;`,
    setup: `  let W = p.D / 2u;
  for (var d = lid; d < p.D; d += 64u) { qs[d] = ${Q}[p.qOff + th * p.D + d]; }
  var acc = array<vec2<f32>, 2>();`,
    score: `      var dotv = 0.0;
      let kb = (kvBase + pp) * W;
      for (var i = 0u; i < W; i++) {
        let k2 = unpack2x16float(kc[kb + i]);
        dotv += qs[i] * k2.x + qs[i + W] * k2.y;
      }`,
    accumulate: `    for (var i = 0u; i < 2u; i++) { acc[i] *= f; }
    for (var j = 0u; j < cnt; j++) {
      let ej = sc[j];
      let vb = (kvBase + p0 + j) * W;
      for (var i = 0u; i < 2u; i++) {
        let wi = lid + i * 64u;
        if (wi < W) { acc[i] += ej * unpack2x16float(vc[vb + wi]); }
      }
    }`,
    finish: `  for (var i = 0u; i < 2u; i++) {
    let wi = lid + i * 64u;
    if (wi < W) {
      ${put('wi', 'acc[i].x')}
      ${put('wi + W', 'acc[i].y')}
    }
  }`,
  };
}

/**
 * f16 rows as vec4<u32> (D a multiple of 8): 8 halves per load, dimensions `4o .. 4o+3` (low halves) and
 * the same plus W = D/2 (high halves) for the o-th. q is staged in that order, `qs[2o]` and `qs[2o + 1]`,
 * so the dot product pairs each half with its own dimension of q; thread (g, c) accumulates both groups
 * of 4 dimensions of its 16 bytes. Four loads in flight, as for f32 rows, now 32 values.
 */
function f16Vec4Rows(Q: string, put: Put): CacheRows {
  return {
    shared: `var<workgroup> qs: array<vec4<f32>, ${MAX_HEAD_DIM / 4}>;
var<workgroup> vs: array<vec4<f32>, 128>;`,
    setup: `  // Row length in vec4<u32>s (8 halves); thread (g, c) of the value sum (g < G live).
  let W = p.D / 2u;
  let Q8 = p.D / 8u;
  let G = 64u / Q8;
  let c = lid % Q8;
  let g = lid / Q8;
  for (var d = lid; d < Q8; d += 64u) {
    let qb = p.qOff + th * p.D + d * 4u;
    qs[2u * d] = vec4<f32>(${Q}[qb], ${Q}[qb + 1u], ${Q}[qb + 2u], ${Q}[qb + 3u]);
    qs[2u * d + 1u] = vec4<f32>(${Q}[qb + W], ${Q}[qb + W + 1u], ${Q}[qb + W + 2u], ${Q}[qb + W + 3u]);
  }
  var accLo = vec4<f32>();
  var accHi = vec4<f32>();`,
    score: `      let kb = (kvBase + pp) * Q8;
      var d0 = vec4<f32>();
      var d1 = vec4<f32>();
      var d2 = vec4<f32>();
      var d3 = vec4<f32>();
      var d = 0u;
      for (; d + 4u <= Q8; d += 4u) {
        let k0 = kvHalves(kc[kb + d]);
        let k1 = kvHalves(kc[kb + d + 1u]);
        let k2 = kvHalves(kc[kb + d + 2u]);
        let k3 = kvHalves(kc[kb + d + 3u]);
        d0 += qs[2u * d] * k0.lo + qs[2u * d + 1u] * k0.hi;
        d1 += qs[2u * d + 2u] * k1.lo + qs[2u * d + 3u] * k1.hi;
        d2 += qs[2u * d + 4u] * k2.lo + qs[2u * d + 5u] * k2.hi;
        d3 += qs[2u * d + 6u] * k3.lo + qs[2u * d + 7u] * k3.hi;
      }
      for (; d < Q8; d++) {
        let k0 = kvHalves(kc[kb + d]);
        d0 += qs[2u * d] * k0.lo + qs[2u * d + 1u] * k0.hi;
      }
      let dotv = dot((d0 + d1) + (d2 + d3), vec4<f32>(1.0));`,
    accumulate: `    accLo *= f;
    accHi *= f;
    if (g < G) {
      // Keys g, g + G, ...: four rows' loads issued before their products.
      let step = G * Q8;
      var j = g;
      for (; j + 3u * G < cnt; j += 4u * G) {
        let r = (kvBase + p0 + j) * Q8 + c;
        let v0 = kvHalves(vc[r]);
        let v1 = kvHalves(vc[r + step]);
        let v2 = kvHalves(vc[r + 2u * step]);
        let v3 = kvHalves(vc[r + 3u * step]);
        accLo += (sc[j] * v0.lo + sc[j + G] * v1.lo) + (sc[j + 2u * G] * v2.lo + sc[j + 3u * G] * v3.lo);
        accHi += (sc[j] * v0.hi + sc[j + G] * v1.hi) + (sc[j + 2u * G] * v2.hi + sc[j + 3u * G] * v3.hi);
      }
      for (; j < cnt; j += G) {
        let v = kvHalves(vc[(kvBase + p0 + j) * Q8 + c]);
        accLo += sc[j] * v.lo;
        accHi += sc[j] * v.hi;
      }
    }`,
    finish: `  // Add up the key groups' sums of each 8 dimensions (low halves in vs[0..63], high in vs[64..127]).
  vs[lid] = accLo;
  vs[64u + lid] = accHi;
  workgroupBarrier();
  if (lid < Q8) {
    var sumLo = vec4<f32>();
    var sumHi = vec4<f32>();
    for (var gi = 0u; gi < G; gi++) {
      sumLo += vs[gi * Q8 + lid];
      sumHi += vs[64u + gi * Q8 + lid];
    }
    for (var i = 0u; i < 4u; i++) {
      ${put('lid * 4u + i', 'sumLo[i]')}
      ${put('W + lid * 4u + i', 'sumHi[i]')}
    }
  }`,
  };
}

export const ATTN_COMBINE_FIELDS: Fields = [['rows', 'u32'], ['D', 'u32'], ['nSplits', 'u32'], ['oOff', 'u32']];

/** Attention, phase 2: merges the splits of each (token, head) by their maxima and sums. */
export function attentionCombineKernel(): KernelDef {
  const code = paramsDecl(ATTN_COMBINE_FIELDS) +
    '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n' +
    '@group(0) @binding(2) var<storage, read> scr: array<f32>;\n' + WG_INDEX + `
@compute @workgroup_size(64)
fn main(${BUILTINS}) {
  let th = wgIndex(wid, nwg);
  if (th >= p.rows) { return; }
  let stride = p.D + 2u;
  let b = th * p.nSplits * stride;
  var mx = -1e30;
  for (var s = 0u; s < p.nSplits; s++) { mx = max(mx, scr[b + s * stride]); }
  var l = 0.0;
  for (var s = 0u; s < p.nSplits; s++) { l += scr[b + s * stride + 1u] * exp(scr[b + s * stride] - mx); }
  for (var d = lid; d < p.D; d += 64u) {
    var v = 0.0;
    for (var s = 0u; s < p.nSplits; s++) { v += scr[b + s * stride + 2u + d] * exp(scr[b + s * stride] - mx); }
    o[p.oOff + th * p.D + d] = v / l;
  }
}
`;
  return { key: 'attn-combine', code, fields: ATTN_COMBINE_FIELDS, acts: 1, extras: ['ro'] };
}
