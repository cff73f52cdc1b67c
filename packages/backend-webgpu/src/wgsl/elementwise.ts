import type { KVCacheDtype } from '@qwen2-ts/core';
import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';
import { KV_PACK_WGSL, kvElement } from './kv-cache.js';

const EW_FIELDS: Fields = [['n', 'u32'], ['aOff', 'u32'], ['bOff', 'u32'], ['oOff', 'u32']];

/** Element-wise ops over `n` values: `add`, `swiglu` (silu(a) * b) and `copy` (a). One thread per value. */
export function elementwiseKernel(op: 'add' | 'swiglu' | 'copy', slots: readonly number[]): KernelDef {
  const a = actDecls(slots);
  const [A, B, O] = op === 'copy' ? [a.names[0]!, '', a.names[1]!] : [a.names[0]!, a.names[1]!, a.names[2]!];
  const expr =
    op === 'add' ? `${A}[p.aOff + i] + ${B}[p.bOff + i]`
    : op === 'swiglu' ? `silu(${A}[p.aOff + i]) * ${B}[p.bOff + i]`
    : `${A}[p.aOff + i]`;
  const code = paramsDecl(EW_FIELDS) + a.decl + WG_INDEX + `
fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
@compute @workgroup_size(256)
fn main(${BUILTINS}) {
  let i = wgIndex(wid, nwg) * 256u + lid;
  if (i >= p.n) { return; }
  ${O}[p.oOff + i] = ${expr};
}
`;
  return { key: `ew:${op}:${slots.join('')}`, code, fields: EW_FIELDS, acts: a.count, extras: [] };
}

const NORM_FIELDS: Fields = [['n', 'u32'], ['xOff', 'u32'], ['oOff', 'u32'], ['eps', 'f32']];

/** Row-wise RMSNorm: one workgroup of 256 threads per row, f32 sum of squares through a shared tree. */
export function rmsNormKernel(slots: readonly number[]): KernelDef {
  const a = actDecls(slots);
  const [X, O] = a.names as [string, string];
  const code = paramsDecl(NORM_FIELDS) + a.decl + `@group(0) @binding(${1 + a.count}) var<storage, read> g: array<f32>;\n` + `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let xb = p.xOff + wid.x * p.n;
  let ob = p.oOff + wid.x * p.n;
  var ss = 0.0;
  for (var i = lid; i < p.n; i += 256u) { let v = ${X}[xb + i]; ss += v * v; }
  red[lid] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.n) + p.eps);
  for (var i = lid; i < p.n; i += 256u) { ${O}[ob + i] = ${X}[xb + i] * inv * g[i]; }
}
`;
  return { key: `rmsnorm:${slots.join('')}`, code, fields: NORM_FIELDS, acts: a.count, extras: ['ro'] };
}

const ROPE_FIELDS: Fields = [['T', 'u32'], ['heads', 'u32'], ['half', 'u32'], ['xOff', 'u32'], ['tabOff', 'u32']];

/**
 * Rotary embedding, rotate-half pairs `(i, i + half)`, in place. cos/sin come from a host-computed
 * table (float64 angles, then rounded), because f32 angles lose precision at long positions.
 */
export function ropeKernel(): KernelDef {
  const code = paramsDecl(ROPE_FIELDS) + '@group(0) @binding(1) var<storage, read_write> x: array<f32>;\n@group(0) @binding(2) var<storage, read> tab: array<f32>;\n' + WG_INDEX + `
@compute @workgroup_size(256)
fn main(${BUILTINS}) {
  let g = wgIndex(wid, nwg) * 256u + lid;
  let perRow = p.heads * p.half;
  let t = g / perRow;
  if (t >= p.T) { return; }
  let r = g % perRow;
  let h = r / p.half;
  let i = r % p.half;
  let c = tab[p.tabOff + (t * p.half + i) * 2u];
  let s = tab[p.tabOff + (t * p.half + i) * 2u + 1u];
  let b = p.xOff + t * perRow * 2u + h * p.half * 2u + i;
  let x1 = x[b];
  let x2 = x[b + p.half];
  x[b] = x1 * c - x2 * s;
  x[b + p.half] = x2 * c + x1 * s;
}
`;
  return { key: 'rope', code, fields: ROPE_FIELDS, acts: 1, extras: ['ro'] };
}

const ROPE_PAIR_FIELDS: Fields = [['T', 'u32'], ['headsA', 'u32'], ['headsB', 'u32'], ['half', 'u32'], ['aOff', 'u32'], ['bOff', 'u32'], ['tabOff', 'u32']];

/**
 * RoPE of two tensors at the same positions (q and k of one layer) in one dispatch: the same rotation
 * as {@link ropeKernel}, over `headsA` heads of the first tensor and then `headsB` of the second.
 * `slots` are their distinct buffers (one binding when both live in the same one).
 */
export function ropePairKernel(slots: readonly number[]): KernelDef {
  const a = actDecls(slots);
  const [A, B] = a.names as [string, string];
  const code = paramsDecl(ROPE_PAIR_FIELDS) + a.decl + `@group(0) @binding(${1 + a.count}) var<storage, read> tab: array<f32>;
` + WG_INDEX + `
@compute @workgroup_size(256)
fn main(${BUILTINS}) {
  let g = wgIndex(wid, nwg) * 256u + lid;
  let perRow = (p.headsA + p.headsB) * p.half;
  let t = g / perRow;
  if (t >= p.T) { return; }
  var r = g % perRow;
  let i = r % p.half;
  let c = tab[p.tabOff + (t * p.half + i) * 2u];
  let s = tab[p.tabOff + (t * p.half + i) * 2u + 1u];
  if (r < p.headsA * p.half) {
    let b = p.aOff + t * p.headsA * p.half * 2u + (r / p.half) * p.half * 2u + i;
    let x1 = ${A}[b];
    let x2 = ${A}[b + p.half];
    ${A}[b] = x1 * c - x2 * s;
    ${A}[b + p.half] = x2 * c + x1 * s;
  } else {
    r -= p.headsA * p.half;
    let b = p.bOff + t * p.headsB * p.half * 2u + (r / p.half) * p.half * 2u + i;
    let x1 = ${B}[b];
    let x2 = ${B}[b + p.half];
    ${B}[b] = x1 * c - x2 * s;
    ${B}[b + p.half] = x2 * c + x1 * s;
  }
}
`;
  return { key: `rope2:${slots.join('')}`, code, fields: ROPE_PAIR_FIELDS, acts: a.count, extras: ['ro'] };
}

const ROPE_KV_FIELDS: Fields = [...ROPE_PAIR_FIELDS, ['vOff', 'u32'], ['width', 'u32'], ['D', 'u32'], ['cap', 'u32'], ['startPos', 'u32']];

/**
 * {@link ropePairKernel} on q and k, plus the KV write of the rotated k and of v into one layer's cache
 * (`[kvHead][position][headDim]`, as {@link writeKVKernel}): one dispatch for RoPE and cache update.
 * `slots` are the distinct buffers of q, k and v. An f16 cache (`D = 2 * half`; see kv-cache.ts) takes
 * k's rotated pair as one word, and v one word (dimensions `i` and `i + half`) per thread: a row has
 * `width / 2` v threads instead of `width`.
 */
export function ropeWriteKVKernel(slots: readonly number[], dtype: KVCacheDtype = 'f32'): KernelDef {
  const a = actDecls(slots);
  const [Q, K, V] = a.names as [string, string, string];
  const f16 = dtype === 'f16';
  const kWrite = f16 ? `kc[(h * p.cap + p.startPos + t) * p.half + i] = kvPack(y1, y2);` : `let dst = (h * p.cap + p.startPos + t) * p.D + i;
      kc[dst] = y1;
      kc[dst + p.half] = y2;`;
  const vWrite = f16 ? `let j = r - qPairs - kPairs;
    let vh = j / p.half;
    let i = j % p.half;
    let src = p.vOff + t * p.width + vh * p.D + i;
    vc[(vh * p.cap + p.startPos + t) * p.half + i] = kvPack(${V}[src], ${V}[src + p.half]);` : `let j = r - qPairs - kPairs;
    vc[((j / p.D) * p.cap + p.startPos + t) * p.D + j % p.D] = ${V}[p.vOff + t * p.width + j];`;
  const code = paramsDecl(ROPE_KV_FIELDS) + a.decl + `@group(0) @binding(${1 + a.count}) var<storage, read> tab: array<f32>;
@group(0) @binding(${2 + a.count}) var<storage, read_write> kc: array<${kvElement(dtype, false)}>;
@group(0) @binding(${3 + a.count}) var<storage, read_write> vc: array<${kvElement(dtype, false)}>;
` + WG_INDEX + (f16 ? KV_PACK_WGSL : '') + `
@compute @workgroup_size(256)
fn main(${BUILTINS}) {
  let g = wgIndex(wid, nwg) * 256u + lid;
  let qPairs = p.headsA * p.half;
  let kPairs = p.headsB * p.half;
  let perRow = qPairs + kPairs + p.width${f16 ? ' / 2u' : ''};
  let t = g / perRow;
  if (t >= p.T) { return; }
  var r = g % perRow;
  if (r < qPairs + kPairs) {
    let i = r % p.half;
    let c = tab[p.tabOff + (t * p.half + i) * 2u];
    let s = tab[p.tabOff + (t * p.half + i) * 2u + 1u];
    if (r < qPairs) {
      let b = p.aOff + t * qPairs * 2u + (r / p.half) * p.half * 2u + i;
      let x1 = ${Q}[b];
      let x2 = ${Q}[b + p.half];
      ${Q}[b] = x1 * c - x2 * s;
      ${Q}[b + p.half] = x2 * c + x1 * s;
    } else {
      r -= qPairs;
      let h = r / p.half;
      let b = p.bOff + t * kPairs * 2u + h * p.half * 2u + i;
      let x1 = ${K}[b];
      let x2 = ${K}[b + p.half];
      let y1 = x1 * c - x2 * s;
      let y2 = x2 * c + x1 * s;
      ${K}[b] = y1;
      ${K}[b + p.half] = y2;
      ${kWrite}
    }
  } else {
    ${vWrite}
  }
}
`;
  return { key: `ropekv:${slots.join('')}:${dtype}`, code, fields: ROPE_KV_FIELDS, acts: a.count, extras: ['ro', 'rw', 'rw'] };
}

const KV_FIELDS: Fields = [['T', 'u32'], ['width', 'u32'], ['D', 'u32'], ['cap', 'u32'], ['startPos', 'u32'], ['kOff', 'u32'], ['vOff', 'u32']];

/**
 * Stores k and v rows into one layer's cache, laid out `[kvHead][position][headDim]`: one thread per
 * value, or per word of an f16 cache (dimensions `i` and `i + D/2` of a head; see kv-cache.ts).
 */
export function writeKVKernel(slots: readonly number[], dtype: KVCacheDtype = 'f32'): KernelDef {
  const a = actDecls(slots);
  const [Kin, Vin] = a.names as [string, string];
  const f16 = dtype === 'f16';
  const body = f16 ? `  let W = p.D / 2u;
  let t = g / (p.width / 2u);
  if (t >= p.T) { return; }
  let j = g % (p.width / 2u);
  let h = j / W;
  let i = j % W;
  let dst = (h * p.cap + p.startPos + t) * W + i;
  let src = t * p.width + h * p.D + i;
  kc[dst] = kvPack(${Kin}[p.kOff + src], ${Kin}[p.kOff + src + W]);
  vc[dst] = kvPack(${Vin}[p.vOff + src], ${Vin}[p.vOff + src + W]);` : `  let t = g / p.width;
  if (t >= p.T) { return; }
  let j = g % p.width;
  let h = j / p.D;
  let d = j % p.D;
  let dst = (h * p.cap + p.startPos + t) * p.D + d;
  kc[dst] = ${Kin}[p.kOff + t * p.width + j];
  vc[dst] = ${Vin}[p.vOff + t * p.width + j];`;
  const el = kvElement(dtype, false);
  const code = paramsDecl(KV_FIELDS) + a.decl +
    `@group(0) @binding(${1 + a.count}) var<storage, read_write> kc: array<${el}>;\n@group(0) @binding(${2 + a.count}) var<storage, read_write> vc: array<${el}>;\n` + WG_INDEX + (f16 ? KV_PACK_WGSL : '') + `
@compute @workgroup_size(256)
fn main(${BUILTINS}) {
  let g = wgIndex(wid, nwg) * 256u + lid;
${body}
}
`;
  return { key: `writekv:${slots.join('')}:${dtype}`, code, fields: KV_FIELDS, acts: a.count, extras: ['rw', 'rw'] };
}
