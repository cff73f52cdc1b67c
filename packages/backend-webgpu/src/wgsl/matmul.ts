import type { WeightFormat } from '@qwen2-ts/core';
import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import { FORMAT_HELPERS, hasScales, weightAccess } from './formats.js';
import type { KernelDef } from './kernel-def.js';

/** Most tokens a matvec dispatch handles (it reads each weight once for all of them); more use the GEMM. */
export const MATVEC_MAX_T = 4;
/** Threads per output row of the matvec. */
const MV_WG = 64;

export const MATMUL_FIELDS: Fields = [
  ['T', 'u32'], ['K', 'u32'], ['Kp', 'u32'], ['rows', 'u32'], ['N', 'u32'], ['n0', 'u32'], ['xOff', 'u32'], ['oOff', 'u32'], ['hasBias', 'u32'],
];

/** The matvec's uniforms when it also adds its result to a residual: out[rOff + i] = res[aOff + i] + y[i]. */
const RESIDUAL_FIELDS: Fields = [...MATMUL_FIELDS, ['aOff', 'u32'], ['rOff', 'u32']];

function header(format: WeightFormat, f16: boolean, slots: readonly number[], fields: Fields = MATMUL_FIELDS): { code: string; x: string; o: string; names: string[]; extras: KernelDef['extras']; acts: number } {
  const a = actDecls(slots);
  const scales = hasScales(format);
  const wB = 1 + a.count;
  const sB = wB + 1;
  const bB = scales ? sB + 1 : sB;
  const code = (f16 ? 'enable f16;\n' : '') + paramsDecl(fields) + a.decl + FORMAT_HELPERS + weightAccess(format, f16, '', wB, sB, 'p.K', 'p.Kp') +
    `@group(0) @binding(${bB}) var<storage, read> bias: array<f32>;\n` + WG_INDEX;
  return { code, x: a.names[0]!, o: a.names[1]!, names: a.names, extras: scales ? ['ro', 'ro', 'ro'] : ['ro', 'ro'], acts: a.count };
}

/** Lanes per output row of the matvec for `kp` padded columns: enough to cover a row in one step, 8..64. */
export function matvecLanes(kp: number): number {
  let lanes = 8;
  while (lanes < MV_WG && lanes * 8 < kp) lanes *= 2;
  return lanes;
}

/**
 * Decode matvec: a workgroup of 64 threads covers `64 / lanes` output rows with `lanes` threads each
 * (64 for real model widths; fewer for narrow rows, so no thread idles). Each thread reads 8 consecutive
 * weights per step (16-byte loads for f16/bf16, coalesced across the lanes), for up to
 * {@link MATVEC_MAX_T} tokens at once; a shared-memory tree sums the partials of each row. Bandwidth-bound
 * on a GPU by design.
 */
export function matvecKernel(format: WeightFormat, f16: boolean, slots: readonly number[], lanes: number, subgroups = false, residual = false): KernelDef {
  // Subgroups only when one row spans the whole workgroup: a subgroup then never mixes rows, whatever
  // its size and however invocations are assigned to subgroups.
  const sg = subgroups && lanes === MV_WG;
  const h = header(format, f16, slots, residual ? RESIDUAL_FIELDS : MATMUL_FIELDS);
  // With `residual` (slots: x, y, res, out) the epilogue also writes out = res + y: the residual add that
  // follows o_proj and down_proj, fused so that it costs no dispatch of its own.
  const addResidual = residual ? `
      ${h.names[3]}[p.rOff + t * p.N + p.n0 + r] = ${h.names[2]}[p.aOff + t * p.N + p.n0 + r] + v;` : '';
  const code = (sg ? 'enable subgroups;\n' : '') + h.code + `
const WG: u32 = ${MV_WG}u;
const L: u32 = ${lanes}u;
const MT: u32 = ${MATVEC_MAX_T}u;
var<workgroup> red: array<f32, ${MV_WG * MATVEC_MAX_T}>;
fn xv(base: u32, k: u32) -> f32 { return select(0.0, ${h.x}[base + k], k < p.K); }
@compute @workgroup_size(${MV_WG})
fn main(${BUILTINS}${sg ? ', @builtin(subgroup_invocation_id) sgi: u32' : ''}) {
  let lane = lid % L;
  let r = wgIndex(wid, nwg) * (WG / L) + lid / L;
  var acc = array<f32, ${MATVEC_MAX_T}>();
  if (r < p.rows) {
    for (var k0 = lane * 8u; k0 < p.Kp; k0 += L * 8u) {
      let w = load8(r, k0);
      for (var t = 0u; t < MT; t++) {
        if (t < p.T) {
          let b = p.xOff + t * p.K;
          let xl = vec4<f32>(xv(b, k0), xv(b, k0 + 1u), xv(b, k0 + 2u), xv(b, k0 + 3u));
          let xh = vec4<f32>(xv(b, k0 + 4u), xv(b, k0 + 5u), xv(b, k0 + 6u), xv(b, k0 + 7u));
          acc[t] += dot(w.lo, xl) + dot(w.hi, xh);
        }
      }
    }
  }
${sg ? `  // Subgroup sums, then one barrier: invocation 0 adds the subgroup leaders' values (others wrote 0).
  for (var t = 0u; t < MT; t++) {
    let s = subgroupAdd(acc[t]);
    red[t * WG + lid] = select(0.0, s, sgi == 0u);
  }
  workgroupBarrier();
  if (lid == 0u) {
    for (var t = 0u; t < MT; t++) {
      var s = 0.0;
      for (var i = 0u; i < WG; i += 4u) { s += red[t * WG + i] + red[t * WG + i + 1u] + red[t * WG + i + 2u] + red[t * WG + i + 3u]; }
      red[t * WG] = s;
    }
  }` : `  for (var t = 0u; t < MT; t++) { red[t * WG + lid] = acc[t]; }
  workgroupBarrier();
  for (var s = L / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var t = 0u; t < MT; t++) { red[t * WG + lid] += red[t * WG + lid + s]; }
    }
    workgroupBarrier();
  }`}
  if (lane == 0u && r < p.rows) {
    for (var t = 0u; t < p.T; t++) {
      var v = red[t * WG + lid];
      if (p.hasBias != 0u) { v += bias[p.n0 + r]; }
      ${h.o}[p.oOff + t * p.N + p.n0 + r] = v;${addResidual}
    }
  }
}
`;
  return { key: `matvec:${format}:${f16}:${slots.join('')}:${lanes}:${sg}:${residual}`, code, fields: residual ? RESIDUAL_FIELDS : MATMUL_FIELDS, acts: h.acts, extras: h.extras };
}

/**
 * Prefill GEMM: 64x64 output tiles, 256 threads of 4x4 outputs each, K in steps of 32 staged through
 * workgroup memory (16 KiB: the default limit). Weights are decoded once per tile load.
 */
export function gemmKernel(format: WeightFormat, f16: boolean, slots: readonly number[]): KernelDef {
  const h = header(format, f16, slots);
  const code = h.code + `
var<workgroup> xs: array<vec4<f32>, 512>;
var<workgroup> ws: array<vec4<f32>, 512>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nb = wid.x * 64u;
  let m0 = wid.y * 64u;
  let tm = lid / 16u;
  let tn = lid % 16u;
  let lr = lid / 4u;
  let lk = (lid % 4u) * 8u;
  var acc = array<vec4<f32>, 4>();
  for (var kt = 0u; kt < p.Kp; kt += 32u) {
    let t = m0 + lr;
    let k = kt + lk;
    let xb = p.xOff + t * p.K + k;
    for (var i = 0u; i < 8u; i++) {
      var v = 0.0;
      if (t < p.T && k + i < p.K) { v = ${h.x}[xb + i]; }
      xs[(lk + i) * 16u + lr / 4u][lr % 4u] = v;
    }
    let n = nb + lr;
    var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
    if (n < p.rows && k < p.Kp) { w = load8(n, k); }
    let c = lr % 4u;
    let base = lk * 16u + lr / 4u;
    ws[base][c] = w.lo.x;
    ws[base + 16u][c] = w.lo.y;
    ws[base + 32u][c] = w.lo.z;
    ws[base + 48u][c] = w.lo.w;
    ws[base + 64u][c] = w.hi.x;
    ws[base + 80u][c] = w.hi.y;
    ws[base + 96u][c] = w.hi.z;
    ws[base + 112u][c] = w.hi.w;
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      let a = xs[kk * 16u + tm];
      let b = ws[kk * 16u + tn];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = m0 + tm * 4u + i;
    if (t >= p.T) { break; }
    let row = acc[i];
    for (var j = 0u; j < 4u; j++) {
      let n = nb + tn * 4u + j;
      if (n < p.rows) {
        var v = row[j];
        if (p.hasBias != 0u) { v += bias[p.n0 + n]; }
        ${h.o}[p.oOff + t * p.N + p.n0 + n] = v;
      }
    }
  }
}
`;
  return { key: `gemm:${format}:${f16}:${slots.join('')}`, code, fields: MATMUL_FIELDS, acts: h.acts, extras: h.extras };
}

/** `out[t] = table[ids[t]]`: one thread per 8 columns of one token; tokens outside this chunk's rows skip. */
export function embedKernel(format: WeightFormat, f16: boolean): KernelDef {
  const fields: Fields = [['T', 'u32'], ['K', 'u32'], ['Kp', 'u32'], ['r0', 'u32'], ['rows', 'u32'], ['idsOff', 'u32'], ['oOff', 'u32']];
  const scales = hasScales(format);
  const code = (f16 ? 'enable f16;\n' : '') + paramsDecl(fields) +
    '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n' +
    FORMAT_HELPERS + weightAccess(format, f16, '', 2, 3, 'p.K', 'p.Kp') +
    `@group(0) @binding(${scales ? 4 : 3}) var<storage, read> aux: array<u32>;\n` + WG_INDEX + `
@compute @workgroup_size(64)
fn main(${BUILTINS}) {
  let i = wgIndex(wid, nwg) * 64u + lid;
  let units = p.Kp / 8u;
  let t = i / units;
  if (t >= p.T) { return; }
  let id = aux[p.idsOff + t];
  if (id < p.r0 || id >= p.r0 + p.rows) { return; }
  let k0 = (i % units) * 8u;
  let w = load8(id - p.r0, k0);
  let b = p.oOff + t * p.K + k0;
  var vals = array<f32, 8>(w.lo.x, w.lo.y, w.lo.z, w.lo.w, w.hi.x, w.hi.y, w.hi.z, w.hi.w);
  for (var j = 0u; j < 8u; j++) {
    if (k0 + j < p.K) { o[b + j] = vals[j]; }
  }
}
`;
  return { key: `embed:${format}:${f16}`, code, fields, acts: 1, extras: scales ? ['ro', 'ro', 'ro'] : ['ro', 'ro'] };
}

/** Uniform fields of {@link matvecMultiKernel} for `n` weights. */
export function multiFields(n: number): Fields {
  const f: [string, 'u32'][] = [['T', 'u32'], ['K', 'u32'], ['Kp', 'u32'], ['xOff', 'u32']];
  for (let i = 0; i < n; i++) f.push([`rows${i}`, 'u32'], [`oOff${i}`, 'u32'], [`hasBias${i}`, 'u32']);
  return f;
}

/**
 * The decode matvec of several weights that read the same input (q/k/v, gate/up) in one dispatch: their
 * rows are laid end to end, each workgroup row picks its weight, bias and output. Saves a dispatch per
 * extra weight (per-dispatch cost dominates a small model's decode on a fast GPU). Bindings: the
 * activations (`slots`: x then the outputs), then per weight its data, scales (q formats) and bias.
 */
export function matvecMultiKernel(format: WeightFormat, f16: boolean, slots: readonly number[], lanes: number, subgroups: boolean): KernelDef {
  const n = slots.length - 1;
  const sg = subgroups && lanes === MV_WG;
  const a = actDecls(slots);
  const fields = multiFields(n);
  const scales = hasScales(format);
  let decl = '';
  const extras: KernelDef['extras'][number][] = [];
  let b = 1 + a.count;
  for (let i = 0; i < n; i++) {
    decl += weightAccess(format, f16, `_${i}`, b, b + 1, 'p.K', 'p.Kp');
    b += scales ? 2 : 1;
    decl += `@group(0) @binding(${b}) var<storage, read> bias_${i}: array<f32>;\n`;
    b += 1;
    extras.push(...(scales ? (['ro', 'ro', 'ro'] as const) : (['ro', 'ro'] as const)));
  }
  const X = a.names[0]!;
  const ends = Array.from({ length: n }, (_, i) => Array.from({ length: i + 1 }, (_, j) => `p.rows${j}`).join(' + '));
  const pick = Array.from({ length: n }, (_, i) => `${i === 0 ? '' : ' else '}if (sel == ${i}u) { w = load8_${i}(lr, k0); }`).join('');
  const write = Array.from({ length: n }, (_, i) => `${i === 0 ? '' : ' else '}if (sel == ${i}u) {
        if (p.hasBias${i} != 0u) { v += bias_${i}[lr]; }
        ${a.names[i + 1]!}[p.oOff${i} + t * p.rows${i} + lr] = v;
      }`).join('');
  let select = '';
  for (let i = 1; i < n; i++) select += `  if (r >= ${ends[i - 1]}) { sel = ${i}u; lr = r - (${ends[i - 1]}); }\n`;
  const code = (sg ? 'enable subgroups;\n' : '') + (f16 ? 'enable f16;\n' : '') + paramsDecl(fields) + a.decl + FORMAT_HELPERS + decl + WG_INDEX + `
const WG: u32 = ${MV_WG}u;
const L: u32 = ${lanes}u;
const MT: u32 = ${MATVEC_MAX_T}u;
var<workgroup> red: array<f32, ${MV_WG * MATVEC_MAX_T}>;
fn xv(base: u32, k: u32) -> f32 { return select(0.0, ${X}[base + k], k < p.K); }
@compute @workgroup_size(${MV_WG})
fn main(${BUILTINS}${sg ? ', @builtin(subgroup_invocation_id) sgi: u32' : ''}) {
  let lane = lid % L;
  let r = wgIndex(wid, nwg) * (WG / L) + lid / L;
  let total = ${ends[n - 1]};
  var sel = 0u;
  var lr = r;
${select}  var acc = array<f32, ${MATVEC_MAX_T}>();
  if (r < total) {
    for (var k0 = lane * 8u; k0 < p.Kp; k0 += L * 8u) {
      var w: W8;
      ${pick}
      for (var t = 0u; t < MT; t++) {
        if (t < p.T) {
          let b = p.xOff + t * p.K;
          let xl = vec4<f32>(xv(b, k0), xv(b, k0 + 1u), xv(b, k0 + 2u), xv(b, k0 + 3u));
          let xh = vec4<f32>(xv(b, k0 + 4u), xv(b, k0 + 5u), xv(b, k0 + 6u), xv(b, k0 + 7u));
          acc[t] += dot(w.lo, xl) + dot(w.hi, xh);
        }
      }
    }
  }
${sg ? `  for (var t = 0u; t < MT; t++) {
    let s = subgroupAdd(acc[t]);
    red[t * WG + lid] = select(0.0, s, sgi == 0u);
  }
  workgroupBarrier();
  if (lid == 0u) {
    for (var t = 0u; t < MT; t++) {
      var s = 0.0;
      for (var i = 0u; i < WG; i += 4u) { s += red[t * WG + i] + red[t * WG + i + 1u] + red[t * WG + i + 2u] + red[t * WG + i + 3u]; }
      red[t * WG] = s;
    }
  }` : `  for (var t = 0u; t < MT; t++) { red[t * WG + lid] = acc[t]; }
  workgroupBarrier();
  for (var s = L / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var t = 0u; t < MT; t++) { red[t * WG + lid] += red[t * WG + lid + s]; }
    }
    workgroupBarrier();
  }`}
  if (lane == 0u && r < total) {
    for (var t = 0u; t < p.T; t++) {
      var v = red[t * WG + lid];
      ${write}
    }
  }
}
`;
  return { key: `matvec-multi:${format}:${f16}:${slots.join('')}:${lanes}:${sg}`, code, fields, acts: a.count, extras };
}
