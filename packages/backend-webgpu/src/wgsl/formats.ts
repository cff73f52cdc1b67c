import type { WeightFormat } from '@qwen2-ts/core';

/**
 * WGSL that reads weights of one storage format: binding declarations and `load8(row, k0)` (8 columns)
 * or `load4(row, k)` (4 columns) of a chunk-local row, widened to f32 exactly. Every format is decoded
 * exactly, so results do not depend on whether `shader-f16` is used: f16 halves are converted as native
 * `f16` with it and through `unpack2x16float` without it (q-scales always so). bf16 never needs
 * shader-f16 (its bits are the top half of an f32).
 *
 * Storage layouts (see host-weights.ts): f32/f16/bf16 rows are zero-padded to `Kp = roundUp(K, 8)`
 * columns; q8_0 rows are `K` int8 bytes; q4_0 rows are `K/32` blocks of 16 bytes; q-scales are f16,
 * `K/32` per row, contiguous over the chunk (index `row * K/32 + block`), stored in the same buffer right
 * after the chunk's quants (read as `u32` words of two whether or not `shader-f16` is on).
 */

/** The `W8` result type and the decoding helpers every `load8` uses (emit once per shader). */
export const FORMAT_HELPERS = `struct W8 { lo: vec4<f32>, hi: vec4<f32> }
fn bf2(u: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u)); }
fn i8x4(u: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(bitcast<i32>(u << 24u), bitcast<i32>(u << 16u), bitcast<i32>(u << 8u), bitcast<i32>(u)) >> vec4<u32>(24u));
}
fn nib4(u: u32, sh: u32) -> vec4<f32> {
  return vec4<f32>((vec4<u32>(u) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(sh))) & vec4<u32>(15u)) - vec4<f32>(8.0);
}
`;

/**
 * Declarations of one weight's buffer (`wq<s>`) and its reader. `s` is a suffix that tells several
 * weights of one shader apart ('' for a single weight). `kExpr`, `kpExpr` and `rowsExpr` are the WGSL
 * expressions of its logical and padded column counts and of the rows in the bound chunk (q formats:
 * the scales start after that many rows of quants).
 *
 * `width` 8 declares `load8<s>(r, k0)`: the 8 values at columns `k0 .. k0+7` (`k0 % 8 == 0`) as a `W8`,
 * one 16-byte load for f16/bf16. `width` 4 declares `load4<s>(r, k)`: the 4 values at `k .. k+3`
 * (`k % 4 == 0`) as a `vec4<f32>`, for kernels whose neighbouring threads read neighbouring groups of
 * 4 columns (the binding's element type is then the 4 columns' storage, so no load fetches more).
 */
export function weightAccess(format: WeightFormat, f16: boolean, s: string, wBinding: number, kExpr: string, kpExpr: string, rowsExpr: string, width: 4 | 8 = 8): string {
  const wq = `wq${s}`;
  const decl = (type: string) => `@group(0) @binding(${wBinding}) var<storage, read> ${wq}: array<${type}>;\n`;
  // Scale i of the chunk: f16 number i after the quants (u32 word quantWords + i / 2).
  const quantWords = format === 'q8_0' ? `${rowsExpr} * ${kExpr} / 4u` : `${rowsExpr} * ${kExpr} / 8u`;
  const scales = (word: (w: string) => string) => `fn scaleAt${s}(i: u32) -> f32 {
  let w = ${quantWords} + (i >> 1u);
  let h = unpack2x16float(${word('w')});
  return select(h.x, h.y, (i & 1u) == 1u);
}\n`;
  // 4 halves (f16 bits) held in a vec2<u32>, widened to f32 exactly.
  const halves4 = (u: string) => f16
    ? `vec4<f32>(vec2<f32>(bitcast<vec2<f16>>(${u}.x)), vec2<f32>(bitcast<vec2<f16>>(${u}.y)))`
    : `vec4<f32>(unpack2x16float(${u}.x), unpack2x16float(${u}.y))`;
  if (width === 4) {
    switch (format) {
      case 'f32':
        return decl('vec4<f32>') + `fn load4${s}(r: u32, k: u32) -> vec4<f32> { return ${wq}[(r * ${kpExpr} + k) >> 2u]; }\n`;
      case 'f16':
        return decl('vec2<u32>') + `fn load4${s}(r: u32, k: u32) -> vec4<f32> {
  let u = ${wq}[(r * ${kpExpr} + k) >> 2u];
  return ${halves4('u')};
}\n`;
      case 'bf16':
        return decl('vec2<u32>') + `fn load4${s}(r: u32, k: u32) -> vec4<f32> {
  let u = ${wq}[(r * ${kpExpr} + k) >> 2u];
  return vec4<f32>(bf2(u.x), bf2(u.y));
}\n`;
      case 'q8_0':
        return decl('u32') + scales((w) => `${wq}[${w}]`) + `fn load4${s}(r: u32, k: u32) -> vec4<f32> {
  let i = r * ${kExpr} + k;
  return scaleAt${s}(i >> 5u) * i8x4(${wq}[i >> 2u]);
}\n`;
      case 'q4_0':
        // Block byte j (j < 16) holds column j in its low nibble and column j + 16 in its high one.
        return decl('u32') + scales((w) => `${wq}[${w}]`) + `fn load4${s}(r: u32, k: u32) -> vec4<f32> {
  let b = (r * ${kExpr} + k) >> 5u;
  let j = k & 31u;
  return scaleAt${s}(b) * nib4(${wq}[b * 4u + ((j & 15u) >> 2u)], select(0u, 4u, j >= 16u));
}\n`;
    }
  }
  // Width 8: q formats read a vec2<u32> (8 bytes), the scale's word picked out of one.
  const pairScales = scales((w) => `select(${wq}[${w} >> 1u].x, ${wq}[${w} >> 1u].y, (${w} & 1u) == 1u)`);
  switch (format) {
    case 'f32':
      return decl('vec4<f32>') + `fn load8${s}(r: u32, k0: u32) -> W8 {
  let i = (r * ${kpExpr} + k0) >> 2u;
  return W8(${wq}[i], ${wq}[i + 1u]);
}\n`;
    case 'f16':
      // One 16-byte load either way (two vec4<f16> loads of 8 bytes each would double the load
      // instructions of a bandwidth-bound matvec); with shader-f16 the halves convert natively.
      return decl('vec4<u32>') + `fn load8${s}(r: u32, k0: u32) -> W8 {
  let u = ${wq}[(r * ${kpExpr} + k0) >> 3u];
  return W8(${halves4('u.xy')}, ${halves4('u.zw')});
}\n`;
    case 'bf16':
      return decl('vec4<u32>') + `fn load8${s}(r: u32, k0: u32) -> W8 {
  let u = ${wq}[(r * ${kpExpr} + k0) >> 3u];
  return W8(vec4<f32>(bf2(u.x), bf2(u.y)), vec4<f32>(bf2(u.z), bf2(u.w)));
}\n`;
    case 'q8_0':
      return decl('vec2<u32>') + pairScales + `fn load8${s}(r: u32, k0: u32) -> W8 {
  let q = ${wq}[(r * ${kExpr} + k0) >> 3u];
  let sc = scaleAt${s}((r * ${kExpr} + k0) >> 5u);
  return W8(sc * i8x4(q.x), sc * i8x4(q.y));
}\n`;
    case 'q4_0':
      return decl('vec2<u32>') + pairScales + `fn load8${s}(r: u32, k0: u32) -> W8 {
  let b = (r * ${kExpr} + k0) >> 5u;
  let j = k0 & 31u;
  let q = ${wq}[b * 2u + ((j & 15u) >> 3u)];
  let sh = select(0u, 4u, j >= 16u);
  let sc = scaleAt${s}(b);
  return W8(sc * nib4(q.x, sh), sc * nib4(q.y, sh));
}\n`;
  }
  throw new RangeError(`the webgpu backend has no kernels for ${format} weights`);
}
