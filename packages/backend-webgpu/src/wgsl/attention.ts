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
 * touch one cache line per thread, and 16-byte loads need a quarter of the scalar loads' lines.
 */
export function attentionPartialKernel(direct = false, slots: readonly number[] = [0], vec4 = false): KernelDef {
  // direct: one split only, so the result is final: normalize and write the output (no phase 2).
  const a = direct ? actDecls(slots) : { decl: '@group(0) @binding(1) var<storage, read_write> q: array<f32>;\n', names: ['q'], count: 1 };
  const [Q, O] = [a.names[0]!, a.names[1] ?? ''];
  const kb = 1 + a.count;
  const code = paramsDecl(ATTN_PARTIAL_FIELDS) + a.decl +
    `@group(0) @binding(${kb}) var<storage, read> kc: array<${vec4 ? 'vec4<f32>' : 'f32'}>;\n` +
    `@group(0) @binding(${kb + 1}) var<storage, read> vc: array<f32>;\n` +
    (direct ? '' : `@group(0) @binding(${kb + 2}) var<storage, read_write> scr: array<f32>;\n`) + WG_INDEX + `
const NEG: f32 = -1e30;
${vec4 ? `var<workgroup> qs: array<vec4<f32>, ${MAX_HEAD_DIM / 4}>;` : `var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;`}
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
${vec4 ? `  for (var d = lid; d < p.D / 4u; d += 64u) {
    let qb = p.qOff + th * p.D + d * 4u;
    qs[d] = vec4<f32>(${Q}[qb], ${Q}[qb + 1u], ${Q}[qb + 2u], ${Q}[qb + 3u]);
  }` : `  for (var d = lid; d < p.D; d += 64u) { qs[d] = ${Q}[p.qOff + th * p.D + d]; }`}
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  var acc = array<f32, 4>();
  for (var p0 = start; p0 < end; p0 += 64u) {
    let pp = p0 + lid;
    var sv = NEG;
    if (pp < end) {
      var dotv = 0.0;
${vec4 ? `      let kb = (kvBase + pp) * (p.D / 4u);
      for (var d = 0u; d < p.D / 4u; d++) { dotv += dot(qs[d], kc[kb + d]); }` : `      let kb = (kvBase + pp) * p.D;
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
    for (var i = 0u; i < 4u; i++) { acc[i] *= f; }
    for (var j = 0u; j < cnt; j++) {
      let ej = sc[j];
      tsum += ej;
      let vb = (kvBase + p0 + j) * p.D;
      for (var i = 0u; i < 4u; i++) {
        let d = lid + i * 64u;
        if (d < p.D) { acc[i] += ej * vc[vb + d]; }
      }
    }
    l = l * f + tsum;
    m = mNew;
    workgroupBarrier();
  }
${direct ? `  for (var i = 0u; i < 4u; i++) {
    let d = lid + i * 64u;
    if (d < p.D) { ${O}[p.oOff + th * p.D + d] = acc[i] / l; }
  }` : `  let ob = w * (p.D + 2u);
  if (lid == 0u) { scr[ob] = m; scr[ob + 1u] = l; }
  for (var i = 0u; i < 4u; i++) {
    let d = lid + i * 64u;
    if (d < p.D) { scr[ob + 2u + d] = acc[i]; }
  }`}
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
