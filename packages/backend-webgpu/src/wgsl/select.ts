import { paramsDecl, type Fields } from './common.js';
import type { KernelDef } from './kernel-def.js';

/** Written as the result when a row has no non-NaN value. */
export const NO_TOKEN = 0xffffffff;

/** Shared WGSL: workgroup reductions (`wg` threads, a power of two) and an argmax with core's semantics. */
export const reduce = (wg: number): string => `
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
