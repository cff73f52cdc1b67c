import type { WeightFormat } from '@qwen2-ts/core';
import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import { FORMAT_HELPERS, weightAccess } from './formats.js';
import type { KernelDef } from './kernel-def.js';

export const MATMUL_FIELDS: Fields = [
  ['T', 'u32'], ['K', 'u32'], ['Kp', 'u32'], ['rows', 'u32'], ['N', 'u32'], ['n0', 'u32'], ['xOff', 'u32'], ['oOff', 'u32'], ['hasBias', 'u32'],
];

function header(format: WeightFormat, f16: boolean, slots: readonly number[]): { code: string; x: string; o: string; extras: KernelDef['extras']; acts: number } {
  const a = actDecls(slots);
  const wB = 1 + a.count;
  const code = (f16 ? 'enable f16;\n' : '') + paramsDecl(MATMUL_FIELDS) + a.decl + FORMAT_HELPERS + weightAccess(format, f16, '', wB, 'p.K', 'p.Kp', 'p.rows') +
    `@group(0) @binding(${wB + 1}) var<storage, read> bias: array<f32>;\n` + WG_INDEX;
  return { code, x: a.names[0]!, o: a.names[1]!, extras: ['ro', 'ro'], acts: a.count };
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
  const code = (f16 ? 'enable f16;\n' : '') + paramsDecl(fields) +
    '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n' +
    FORMAT_HELPERS + weightAccess(format, f16, '', 2, 'p.K', 'p.Kp', 'p.rows') +
    '@group(0) @binding(3) var<storage, read> aux: array<u32>;\n' + WG_INDEX + `
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
  return { key: `embed:${format}:${f16}`, code, fields, acts: 1, extras: ['ro', 'ro'] };
}
