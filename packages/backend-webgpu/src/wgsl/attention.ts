import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';

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
 * Each thread scores one key of a tile. With `vec4` (head sizes that are a multiple of 4) it reads the
 * key row 16 bytes at a time: the 64 threads' rows lie `D` floats apart, so each load makes a subgroup
 * touch one cache line per thread, and 16-byte loads need a quarter of the scalar loads' lines; four
 * partial dot products keep four loads in flight.
 *
 * The weighted sum of value rows: with `vec4`, thread `(g, c)` owns 4 dimensions `4c .. 4c+3` of the
 * `G = 64 / (D/4)` key groups' `g`-th (keys g, g + G, ...), reading value rows 16 bytes at a time,
 * four keys' loads in flight, and the groups' sums are added once per split. (Scalar: each thread owns
 * dimensions `lid + 64i` and visits every key of the tile, one load in flight per key.) A short
 * context's decode step is a handful of such workgroups, so the time of one tile's chain of loads,
 * not bandwidth, is what the GPU waits for.
 */
export function attentionPartialKernel(direct = false, slots: readonly number[] = [0], vec4 = false): KernelDef {
  // direct: one split only, so the result is final: normalize and write the output (no phase 2).
  const a = direct ? actDecls(slots) : { decl: '@group(0) @binding(1) var<storage, read_write> q: array<f32>;\n', names: ['q'], count: 1 };
  const [Q, O] = [a.names[0]!, a.names[1] ?? ''];
  const kb = 1 + a.count;
  const row = vec4 ? 'vec4<f32>' : 'f32';
  // Where the split's result goes: its 4 (vec4) or 1 values at dimension d, then (not direct) m and l.
  const put = (d: string, v: string): string => direct ? `${O}[p.oOff + th * p.D + ${d}] = ${v} / l;` : `scr[ob + 2u + ${d}] = ${v};`;
  const finish = vec4 ? `  // Add up the key groups' sums of each 4 dimensions.
  vs[lid] = accv;
  workgroupBarrier();
  if (lid < Q4) {
    var sum = vec4<f32>();
    for (var gi = 0u; gi < G; gi++) { sum += vs[gi * Q4 + lid]; }
    for (var i = 0u; i < 4u; i++) { ${put('lid * 4u + i', 'sum[i]')} }
  }` : `  for (var i = 0u; i < 4u; i++) {
    let d = lid + i * 64u;
    if (d < p.D) { ${put('d', 'acc[i]')} }
  }`;
  const code = paramsDecl(ATTN_PARTIAL_FIELDS) + a.decl +
    `@group(0) @binding(${kb}) var<storage, read> kc: array<${row}>;\n` +
    `@group(0) @binding(${kb + 1}) var<storage, read> vc: array<${row}>;\n` +
    (direct ? '' : `@group(0) @binding(${kb + 2}) var<storage, read_write> scr: array<f32>;\n`) + WG_INDEX + `
const NEG: f32 = -1e30;
${vec4 ? `var<workgroup> qs: array<vec4<f32>, ${MAX_HEAD_DIM / 4}>;
var<workgroup> vs: array<vec4<f32>, 64>;` : `var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;`}
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
${vec4 ? `  // Row length in vec4s; thread (g, c) of the value sum (g < G live).
  let Q4 = p.D / 4u;
  let G = 64u / Q4;
  let c = lid % Q4;
  let g = lid / Q4;
  for (var d = lid; d < Q4; d += 64u) {
    let qb = p.qOff + th * p.D + d * 4u;
    qs[d] = vec4<f32>(${Q}[qb], ${Q}[qb + 1u], ${Q}[qb + 2u], ${Q}[qb + 3u]);
  }
  var accv = vec4<f32>();` : `  for (var d = lid; d < p.D; d += 64u) { qs[d] = ${Q}[p.qOff + th * p.D + d]; }
  var acc = array<f32, 4>();`}
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  for (var p0 = start; p0 < end; p0 += 64u) {
    let pp = p0 + lid;
    var sv = NEG;
    if (pp < end) {
${vec4 ? `      let kb = (kvBase + pp) * Q4;
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
      let dotv = dot((d0 + d1) + (d2 + d3), vec4<f32>(1.0));` : `      var dotv = 0.0;
      let kb = (kvBase + pp) * p.D;
      for (var d = 0u; d < p.D; d++) { dotv += qs[d] * kc[kb + d]; }`}
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
${vec4 ? `    accv *= f;
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
    }` : `    for (var i = 0u; i < 4u; i++) { acc[i] *= f; }
    for (var j = 0u; j < cnt; j++) {
      let ej = sc[j];
      let vb = (kvBase + p0 + j) * p.D;
      for (var i = 0u; i < 4u; i++) {
        let d = lid + i * 64u;
        if (d < p.D) { acc[i] += ej * vc[vb + d]; }
      }
    }`}
    l = l * f + tsum;
    m = mNew;
    workgroupBarrier();
  }
${direct ? '' : `  let ob = w * (p.D + 2u);
  if (lid == 0u) { scr[ob] = m; scr[ob + 1u] = l; }
`}${finish}
}
`;
  return { key: `attn-partial:${direct}:${slots.join('')}:${vec4}`, code, fields: ATTN_PARTIAL_FIELDS, acts: a.count, extras: direct ? ['ro', 'ro'] : ['ro', 'ro', 'rw'] };
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
