import type { KVCacheDtype, WeightFormat } from '@qwen2-ts/core';
import { actDecls, BUILTINS, paramsDecl, WG_INDEX, type Fields } from './common.js';
import { FORMAT_HELPERS, weightAccess } from './formats.js';
import type { ExtraBinding, KernelDef } from './kernel-def.js';
import { KV_PACK_WGSL, kvElement } from './kv-cache.js';

/** Most tokens a matvec dispatch handles (it reads each weight once for all of them); more use the GEMM. */
export const MATVEC_MAX_T = 4;
/** Threads per workgroup of the matvec. */
const MV_WG = 64;
/**
 * Most steps of 8 columns a thread loads before it does any arithmetic on them: up to 4 weight loads in
 * flight per thread instead of 1, so that a workgroup's few steps along a row (7 at 7B's hidden width)
 * do not each wait out the memory latency alone.
 */
const MV_MAX_STEPS = 4;

/** Lanes per output row of the matvec for `kp` padded columns: enough to cover a row in one step, 8..64. */
export function matvecLanes(kp: number): number {
  let lanes = 8;
  while (lanes < MV_WG && lanes * 8 < kp) lanes *= 2;
  return lanes;
}

/**
 * Steps a matvec thread loads at once for rows of `kp` padded columns read by `lanes` threads: as many as
 * a row has (a step past the row's end loads nothing new but still costs its arithmetic), at most
 * {@link MV_MAX_STEPS}.
 */
export function matvecSteps(kp: number, lanes: number): number {
  return Math.max(1, Math.min(MV_MAX_STEPS, Math.ceil(kp / (lanes * 8))));
}

/** How a matvec dispatch spreads its rows over threads and reads its input; see {@link matvecLayout}. */
export interface MatvecLayout {
  /** Threads per output row, 8..64 ({@link matvecLanes}). */
  readonly lanes: number;
  /** Steps of 8 columns a thread loads before it does any arithmetic ({@link matvecSteps}). */
  readonly steps: number;
  /**
   * x (and the norm weight) read as `vec4<f32>`: 2 loads per step and token instead of 8. x is read
   * from cache once per row, 4 bytes per column against the weights' 2 (f16) or 0.56 (q4_0) from memory,
   * so the cache's request rate, not memory bandwidth, would bound the matvec on a GPU with scalar loads.
   */
  readonly vec4: boolean;
  /**
   * Each thread computes two consecutive rows of a single weight, so the x it reads from cache serves
   * twice the weight bytes. Quantized rows need it: a q4_0 column is 0.56 bytes of weights to read from
   * memory against 4 bytes of x from cache, and the cache's request rate would otherwise bound the matvec.
   */
  readonly pairs: boolean;
}

/** Output rows one matvec workgroup computes (its dispatch has `ceil(rows / this)` workgroups). */
export function matvecRowsPerWorkgroup(layout: MatvecLayout): number {
  return (MV_WG / layout.lanes) * (layout.pairs ? 2 : 1);
}

/**
 * The layout of a matvec over rows of `kp` padded columns (`k` real ones) whose input starts at f32
 * offset `xOffset` of its buffer. `slots` are the dispatch's binding slots (see actDecls): x is read as
 * vec4 only when its buffer is bound to no other tensor of the dispatch (that binding's type changes)
 * and its rows start 16-byte aligned. `rotaryPairs`: rows computed in pairs, at least two per workgroup.
 * `single`: the dispatch reads one weight (maybe a chunk of one), of `format`; quantized ones are read
 * two rows per thread (see {@link MatvecLayout.pairs}; gate/up's rows already share x in pairs).
 */
export function matvecLayout(kp: number, k: number, xOffset: number, slots: readonly number[], rotaryPairs: boolean, single?: WeightFormat): MatvecLayout {
  const lanes = rotaryPairs ? Math.min(MV_WG / 2, matvecLanes(kp)) : matvecLanes(kp);
  const vec4 = k % 4 === 0 && xOffset % 4 === 0 && slots.indexOf(slots[0]!, 1) < 0;
  return { lanes, steps: matvecSteps(kp, lanes), vec4, pairs: single === 'q8_0' || single === 'q4_0' };
}

/**
 * What one decode matvec dispatch computes besides `y_i = x . W_i^T (+ bias_i)`. Each option replaces a
 * dispatch of its own (per-dispatch cost bounds a small model's decode on a fast GPU).
 */
export interface MatvecShape {
  /**
   * Weights read in this dispatch, all over the same input. One weight may be split by rows into
   * chunks (one dispatch per chunk, `n0` / `N` uniforms); several are stacked, each whole.
   */
  readonly weights: number;
  /**
   * Two weights whose rows pair up (gate/up): each workgroup row computes both and also writes
   * `silu(y_0) * y_1` (the SwiGLU that follows them).
   */
  readonly gated?: boolean;
  /** One weight: also write `res + y` (the residual add that follows o_proj and down_proj). */
  readonly residual?: boolean;
  /**
   * The input is RMS-normalized on the fly: `x` is the raw row, the norm weight `g` is bound after the
   * weights, each row scales its dot product by the row's `1/rms` (summed beside it), and workgroup 0
   * writes the normalized row too, so the tensor the norm op would have written still holds it.
   */
  readonly norm?: boolean;
  /**
   * Three weights q, k, v (heads of `2 * half` rows each): rows are computed in rotary pairs
   * `(i, i + half)` of a head, q and k rotated (RoPE, cos/sin from the aux table), and the rotated k
   * and v stored into the layer's KV cache too (the `rope`, `rope` and `writeKV` that follow).
   */
  readonly rope?: boolean;
  /**
   * How that cache stores values (default f32). f16: a row pair `(i, i + half)` is one word of the cache
   * (see kv-cache.ts), which the thread that holds both sums writes whole.
   */
  readonly kv?: KVCacheDtype;
}

/**
 * The logical tensors of a matvec dispatch, in binding-slot order: the input, one output per weight,
 * then the SwiGLU output (`gated`), the residual operand and sum (`residual`), the normalized input
 * (`norm`). `slots[i]` (see actDecls) is the distinct buffer of logical tensor `i`.
 */
export function matvecTensorCount(shape: MatvecShape): number {
  return 1 + shape.weights + (shape.gated ? 1 : 0) + (shape.residual ? 2 : 0) + (shape.norm ? 1 : 0);
}

/** Uniform fields of a matvec of `shape`. A single weight has chunk fields; stacked weights one set each. */
export function matvecFields(shape: MatvecShape): Fields {
  const f: [string, 'u32' | 'f32'][] = [['T', 'u32'], ['K', 'u32'], ['Kp', 'u32'], ['xOff', 'u32']];
  if (shape.weights === 1) f.push(['rows', 'u32'], ['N', 'u32'], ['n0', 'u32'], ['oOff', 'u32'], ['hasBias', 'u32']);
  else for (let i = 0; i < shape.weights; i++) f.push([`rows${i}`, 'u32'], [`oOff${i}`, 'u32'], [`hasBias${i}`, 'u32']);
  if (shape.gated) f.push(['sOff', 'u32']);
  if (shape.residual) f.push(['aOff', 'u32'], ['rOff', 'u32']);
  if (shape.norm) f.push(['eps', 'f32'], ['nOff', 'u32']);
  if (shape.rope) f.push(['half', 'u32'], ['tabOff', 'u32'], ['cap', 'u32'], ['startPos', 'u32']);
  return f;
}

/**
 * Decode matvec: a workgroup of 64 threads covers `64 / lanes` output rows with `lanes` threads each
 * (64 for real model widths; fewer for narrow rows, so no thread idles). A step of a row's `lanes`
 * threads covers `8 * lanes` columns: thread j reads the 4 at `4j` and the 4 at `4 * lanes + 4j` (weights
 * and x alike), so each load of a subgroup is one contiguous span. A thread issues the loads of `steps`
 * steps ({@link matvecSteps}) before it uses any, for up to {@link MATVEC_MAX_T} tokens at once; subgroup
 * sums (when offered and a row spans the workgroup) or a shared-memory tree add up the partials of each
 * row. Bandwidth-bound on a GPU by design.
 *
 * Bindings: the distinct activation buffers (`slots`, see {@link matvecTensorCount}), then per weight its
 * data (q formats: quants then scales) and bias, then the norm weight (`norm`), then the rope table
 * and the layer's key and value caches (`rope`).
 */
export function matvecKernel(format: WeightFormat, f16: boolean, slots: readonly number[], layout: MatvecLayout, subgroups: boolean, shape: MatvecShape): KernelDef {
  const n = shape.weights;
  const { lanes, steps, vec4, pairs } = layout;
  if (slots.length !== matvecTensorCount(shape)) throw new Error(`internal: matvec of ${JSON.stringify(shape)} with ${slots.length} tensors`);
  if (vec4 && slots.indexOf(slots[0]!, 1) >= 0) throw new Error('internal: vec4 reads of an x that shares its binding');
  if ((shape.gated && n !== 2) || (shape.residual && n !== 1) || (shape.rope && (n !== 3 || lanes === MV_WG)) || (pairs && n !== 1)) throw new Error(`internal: matvec shape ${JSON.stringify(shape)}`);
  // Subgroups only when one row spans the whole workgroup: a subgroup then never mixes rows, whatever
  // its size and however invocations are assigned to subgroups.
  const sg = subgroups && lanes === MV_WG;
  const a = actDecls(slots, vec4 ? [slots[0]!] : []);
  const names = a.names;
  const X = names[0]!;
  let next = 1 + n;
  const S = shape.gated ? names[next++]! : '';
  const [RES, SUM] = shape.residual ? [names[next++]!, names[next++]!] : ['', ''];
  const NO = shape.norm ? names[next++]! : '';
  // Accumulator channels per token: one per product (two when gated or in row pairs), plus the sum of squares.
  const products = shape.gated || pairs ? 2 : 1;
  const channels = products + (shape.norm ? 1 : 0);
  const SS = products;

  const fields = matvecFields(shape);
  // Names of weight i's buffers and uniforms: a single weight (maybe a chunk of one) has no suffix.
  const sfx = (i: number): string => (n === 1 ? '' : `_${i}`);
  const rowsOf = (i: number): string => (n === 1 ? 'p.rows' : `p.rows${i}`);
  const extras: ExtraBinding[] = [];
  let decl = '';
  let b = 1 + a.count;
  for (let i = 0; i < n; i++) {
    decl += weightAccess(format, f16, sfx(i), b++, 'p.K', 'p.Kp', rowsOf(i), 4);
    decl += `@group(0) @binding(${b++}) var<storage, read> bias${sfx(i)}: array<f32>;\n`;
    extras.push('ro', 'ro');
  }
  if (shape.norm) {
    // The norm weight's 4 values at k (k % 4 == 0), and its value at k (for the normalized row's write).
    decl += vec4
      ? `@group(0) @binding(${b++}) var<storage, read> g: array<vec4<f32>>;
fn gv4(k: u32) -> vec4<f32> { return select(vec4<f32>(), g[k >> 2u], k < p.K); }
fn gs(k: u32) -> f32 { return g[k >> 2u][k & 3u]; }\n`
      : `@group(0) @binding(${b++}) var<storage, read> g: array<f32>;
fn gv(k: u32) -> f32 { return select(0.0, g[k], k < p.K); }
fn gv4(k: u32) -> vec4<f32> { return vec4<f32>(gv(k), gv(k + 1u), gv(k + 2u), gv(k + 3u)); }
fn gs(k: u32) -> f32 { return g[k]; }\n`;
    extras.push('ro');
  }
  const kvF16 = shape.rope === true && shape.kv === 'f16';
  if (shape.rope) {
    decl += `@group(0) @binding(${b}) var<storage, read> tab: array<f32>;
@group(0) @binding(${b + 1}) var<storage, read_write> kc: array<${kvElement(shape.kv ?? 'f32', false)}>;
@group(0) @binding(${b + 2}) var<storage, read_write> vc: array<${kvElement(shape.kv ?? 'f32', false)}>;
${kvF16 ? KV_PACK_WGSL : ''}`;
    extras.push('ro', 'rw', 'rw');
  }

  // Where weight i's row `lr` of token t goes: a chunk of a single weight sits at n0 in rows of N.
  const outAt = (i: number, row = 'lr'): string => (n === 1 ? `p.oOff + t * p.N + p.n0 + ${row}` : `p.oOff${i} + t * p.rows${i} + ${row}`);
  const biasOf = (i: number, row = 'lr'): string => (n === 1 ? `if (p.hasBias != 0u) { v += bias[p.n0 + ${row}]; }` : `if (p.hasBias${i} != 0u) { v += bias${sfx(i)}[${row}]; }`);

  // Which weight a workgroup row reads: stacked weights lie end to end; gated rows read both.
  let rowSetup: string;
  // Weight i's 8 values of a step in `row`: the thread's two groups of 4 columns, at `kl` and `kh`.
  const w8 = (i: number, kl: string, kh: string, row = 'lr'): string => `W8(load4${sfx(i)}(${row}, ${kl}), load4${sfx(i)}(${row}, ${kh}))`;
  // The WGSL that loads step `s`'s weights at columns `kl`, `kh` into `w<s>` (and `v<s>`: gate/up's up
  // row, or the second row of a pair).
  let loads: (kl: string, kh: string, s: number) => string;
  if (shape.rope) {
    // Workgroup rows in rotary pairs: row slot 2j computes row i of a head, slot 2j + 1 row i + half.
    rowSetup = `  let pair = wgi * (WG / L / 2u) + lid / L / 2u;
  let member = (lid / L) % 2u;
  let total = p.rows0 + p.rows1 + p.rows2;
  let live = pair < total / 2u;
  let r = (pair / p.half) * 2u * p.half + pair % p.half + member * p.half;
  var sel = 0u;
  var lr = r;
  if (r >= p.rows0) { sel = 1u; lr = r - p.rows0; }
  if (r >= p.rows0 + p.rows1) { sel = 2u; lr = r - (p.rows0 + p.rows1); }
`;
    loads = (kl, kh, s) => `var w${s}: W8;\n      if (sel == 0u) { w${s} = ${w8(0, kl, kh)}; } else if (sel == 1u) { w${s} = ${w8(1, kl, kh)}; } else { w${s} = ${w8(2, kl, kh)}; }`;
  } else if (pairs) {
    // Rows lr and lr + 1; a last odd row's partner loads row lr again and is not written.
    rowSetup = `  let r = (wgi * (WG / L) + lid / L) * 2u;\n  let total = ${rowsOf(0)};\n  let live = r < total;\n  let lr = r;\n  let lr2 = min(r + 1u, total - 1u);\n`;
    loads = (kl, kh, s) => `var w${s} = ${w8(0, kl, kh)};\n      var v${s} = ${w8(0, kl, kh, 'lr2')};`;
  } else if (n === 1 || shape.gated) {
    rowSetup = `  let r = wgi * (WG / L) + lid / L;\n  let total = ${rowsOf(0)};\n  let live = r < total;\n  let lr = r;\n`;
    loads = shape.gated ? (kl, kh, s) => `var w${s} = ${w8(0, kl, kh)};\n      var v${s} = ${w8(1, kl, kh)};` : (kl, kh, s) => `var w${s} = ${w8(0, kl, kh)};`;
  } else {
    const ends = Array.from({ length: n }, (_, i) => Array.from({ length: i + 1 }, (_, j) => rowsOf(j)).join(' + '));
    rowSetup = `  let r = wgi * (WG / L) + lid / L;\n  let total = ${ends[n - 1]};\n  let live = r < total;\n  var sel = 0u;\n  var lr = r;\n`;
    for (let i = 1; i < n; i++) rowSetup += `  if (r >= ${ends[i - 1]}) { sel = ${i}u; lr = r - (${ends[i - 1]}); }\n`;
    loads = (kl, kh, s) => `var w${s}: W8;\n      ` + Array.from({ length: n }, (_, i) => `${i === 0 ? '' : ' else '}if (sel == ${i}u) { w${s} = ${w8(i, kl, kh)}; }`).join('');
  }
  // Step s of an unrolled iteration covers 8L columns from kb + s * 8L: the thread's 4 at kl<s> and 4
  // more at kh<s> = kl<s> + 4L, so that neighbouring threads read neighbouring 16 bytes of x (a subgroup's
  // load of x touches half the cache lines it would if each thread's 8 columns were consecutive). Past
  // the row's end (>= Kp) a load reads the row's last 4 columns instead (an address in the buffer), and
  // its weights are zeroed by select, not by a branch, so that the compiler keeps every load ahead of
  // the arithmetic.
  const zeroPast = (s: number): string => (['w', ...(products === 2 ? ['v'] : [])] as const)
    .map((w) => `\n      ${w}${s} = W8(select(vec4<f32>(), ${w}${s}.lo, kl${s} < p.Kp), select(vec4<f32>(), ${w}${s}.hi, kh${s} < p.Kp));`).join('');
  const stepLoads = (s: number): string => `
      let kl${s} = kb + ${s}u * L * 8u + lane * 4u;
      let kh${s} = kl${s} + L * 4u;
      ${loads(`min(kl${s}, p.Kp - 4u)`, `min(kh${s}, p.Kp - 4u)`, s)}${zeroPast(s)}`;
  const stepMath = (s: number): string => `${shape.norm ? `
      let gl${s} = gv4(kl${s});
      let gh${s} = gv4(kh${s});` : ''}
      for (var t = 0u; t < MT; t++) {
        if (t < p.T) {
          let b = p.xOff + t * p.K;
          var xl = xv4(b, kl${s});
          var xh = xv4(b, kh${s});${shape.norm ? `
          acc[t * NC + ${SS}u] += dot(xl, xl) + dot(xh, xh);
          xl *= gl${s};
          xh *= gh${s};` : ''}
          acc[t * NC] += dot(w${s}.lo, xl) + dot(w${s}.hi, xh);${products === 2 ? `
          acc[t * NC + 1u] += dot(v${s}.lo, xl) + dot(v${s}.hi, xh);` : ''}
        }
      }`;
  const stepList = Array.from({ length: steps }, (_, s) => s);

  // The epilogue of one row: scale by 1/rms, add bias, write (and fuse what follows).
  const inv = shape.norm ? `
      let inv = 1.0 / sqrt(red[(t * NC + ${SS}u) * WG + lid] / f32(p.K) + p.eps);` : '';
  const scaled = (c: number): string => `red[(t * NC + ${c}u) * WG + lid]${shape.norm ? ' * inv' : ''}`;
  let epilogue: string;
  if (shape.rope) {
    // Lane 0 of the pair's first row holds both sums (its partner row's total sits L slots on).
    const pairBias = (i: number): string => `if (sel == ${i}u && p.hasBias${i} != 0u) { a += bias_${i}[lr]; b += bias_${i}[lr + p.half]; }`;
    // The cache's row of this pair's head (i < half here: the pair's first row writes), and the pair's
    // store: two f32 values half a row apart, or one word of an f16 cache.
    const dst = kvF16 ? '((lr / (2u * p.half)) * p.cap + p.startPos + t) * p.half + i' : '((lr / (2u * p.half)) * p.cap + p.startPos + t) * 2u * p.half + i';
    const store = (c: string, x: string, y: string): string => kvF16 ? `${c}[dst] = kvPack(${x}, ${y});` : `${c}[dst] = ${x};
        ${c}[dst + p.half] = ${y};`;
    epilogue = `
      var a = ${scaled(0)};
      var b = red[(t * NC) * WG + lid + L]${shape.norm ? ' * inv' : ''};
      ${pairBias(0)}
      ${pairBias(1)}
      ${pairBias(2)}
      let i = lr % (2u * p.half);
      let dst = ${dst};
      if (sel == 2u) {
        ${names[3]!}[p.oOff2 + t * p.rows2 + lr] = a;
        ${names[3]!}[p.oOff2 + t * p.rows2 + lr + p.half] = b;
        ${store('vc', 'a', 'b')}
      } else {
        let c = tab[p.tabOff + (t * p.half + i) * 2u];
        let s = tab[p.tabOff + (t * p.half + i) * 2u + 1u];
        let y1 = a * c - b * s;
        let y2 = b * c + a * s;
        if (sel == 0u) {
          ${names[1]!}[p.oOff0 + t * p.rows0 + lr] = y1;
          ${names[1]!}[p.oOff0 + t * p.rows0 + lr + p.half] = y2;
        } else {
          ${names[2]!}[p.oOff1 + t * p.rows1 + lr] = y1;
          ${names[2]!}[p.oOff1 + t * p.rows1 + lr + p.half] = y2;
          ${store('kc', 'y1', 'y2').replace('\n', '\n  ')}
        }
      }`;
  } else if (shape.gated) {
    epilogue = `
      var v = ${scaled(0)};
      ${biasOf(0)}
      let gate = v;
      v = ${scaled(1)};
      ${biasOf(1)}
      ${names[1]!}[${outAt(0)}] = gate;
      ${names[2]!}[${outAt(1)}] = v;
      ${S}[p.sOff + t * p.rows0 + lr] = gate / (1.0 + exp(-gate)) * v;`;
  } else if (n === 1) {
    const row = (c: number, lr: string): string => `
      var v = ${scaled(c)};
      ${biasOf(0, lr)}
      ${names[1]!}[${outAt(0, lr)}] = v;${shape.residual ? `
      ${SUM}[p.rOff + t * p.N + p.n0 + ${lr}] = ${RES}[p.aOff + t * p.N + p.n0 + ${lr}] + v;` : ''}`;
    epilogue = row(0, 'lr') + (pairs ? `
      if (lr + 1u < total) {${row(1, 'lr + 1u').replace(/\n/g, '\n  ')}
      }` : '');
  } else {
    epilogue = `
      var v = ${scaled(0)};
      ` + Array.from({ length: n }, (_, i) => `${i === 0 ? '' : ' else '}if (sel == ${i}u) {
        ${biasOf(i)}
        ${names[i + 1]!}[${outAt(i)}] = v;
      }`).join('');
  }

  // Workgroup 0 also writes the normalized input (row 0's sums of squares are the rows' own).
  const normWrite = shape.norm ? `
  if (wgi == 0u) {
    workgroupBarrier();
    for (var t = 0u; t < p.T; t++) {
      let inv = 1.0 / sqrt(red[(t * NC + ${SS}u) * WG] / f32(p.K) + p.eps);
      for (var k = lid; k < p.K; k += WG) { ${NO}[p.nOff + t * p.K + k] = xs(p.xOff + t * p.K + k) * inv * gs(k); }
    }
  }` : '';

  const reduce = sg ? `  // Subgroup sums, then one barrier: invocation 0 adds the subgroup leaders' values (others wrote 0).
  for (var c = 0u; c < MT * NC; c++) {
    let s = subgroupAdd(acc[c]);
    red[c * WG + lid] = select(0.0, s, sgi == 0u);
  }
  workgroupBarrier();
  if (lid == 0u) {
    for (var c = 0u; c < MT * NC; c++) {
      var s = 0.0;
      for (var i = 0u; i < WG; i += 4u) { s += red[c * WG + i] + red[c * WG + i + 1u] + red[c * WG + i + 2u] + red[c * WG + i + 3u]; }
      red[c * WG] = s;
    }
  }` : `  for (var c = 0u; c < MT * NC; c++) { red[c * WG + lid] = acc[c]; }
  workgroupBarrier();
  for (var s = L / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var c = 0u; c < MT * NC; c++) { red[c * WG + lid] += red[c * WG + lid + s]; }
    }
    workgroupBarrier();
  }`;

  const code = (sg ? 'enable subgroups;\n' : '') + (f16 ? 'enable f16;\n' : '') + paramsDecl(fields) + a.decl + FORMAT_HELPERS + decl + WG_INDEX + `
const WG: u32 = ${MV_WG}u;
const L: u32 = ${lanes}u;
const MT: u32 = ${MATVEC_MAX_T}u;
const NC: u32 = ${channels}u;
const MV_STEPS: u32 = ${steps}u;
var<workgroup> red: array<f32, ${MV_WG * MATVEC_MAX_T * channels}>;
${vec4 ? `fn xv4(base: u32, k: u32) -> vec4<f32> { return select(vec4<f32>(), ${X}[(base + k) >> 2u], k < p.K); }
fn xs(i: u32) -> f32 { return ${X}[i >> 2u][i & 3u]; }` : `fn xv(base: u32, k: u32) -> f32 { return select(0.0, ${X}[base + k], k < p.K); }
fn xv4(base: u32, k: u32) -> vec4<f32> { return vec4<f32>(xv(base, k), xv(base, k + 1u), xv(base, k + 2u), xv(base, k + 3u)); }
fn xs(i: u32) -> f32 { return ${X}[i]; }`}
@compute @workgroup_size(${MV_WG})
fn main(${BUILTINS}${sg ? ', @builtin(subgroup_invocation_id) sgi: u32' : ''}) {
  let lane = lid % L;
  let wgi = wgIndex(wid, nwg);
${rowSetup}  var acc = array<f32, ${MATVEC_MAX_T * channels}>();
  if (live) {
    for (var kb = 0u; kb < p.Kp; kb += MV_STEPS * L * 8u) {${stepList.map(stepLoads).join('')}
${stepList.map(stepMath).join('')}
    }
  }
${reduce}${normWrite}
  if (lane == 0u && live${shape.rope ? ' && member == 0u' : ''}) {
    for (var t = 0u; t < p.T; t++) {${inv}${epilogue}
    }
  }
}
`;
  const key = `matvec:${format}:${f16}:${slots.join('')}:${lanes}:${steps}:${vec4 ? 'v4' : 's'}:${pairs ? '2' : '1'}:${sg}:${n}:${shape.gated ? 'g' : ''}${shape.residual ? 'r' : ''}${shape.norm ? 'n' : ''}${shape.rope ? `p${shape.kv ?? 'f32'}` : ''}`;
  return { key, code, fields, acts: a.count, extras };
}
