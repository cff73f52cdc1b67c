import { dequantizeGgml, ggmlKMin, ggmlKScale, ggmlTypeNamed } from '@qwen2-ts/loader';
import { Q4_K_BLOCK_BYTES, QK_K, type HostWeight } from '../backend/types.js';
import { f16Lookup, f32ToF16 } from '../numeric/half.js';

const fround = Math.fround;
const SUB = 32;
const SUBS = QK_K / SUB;

/** A `q4_k` host weight (see {@link HostWeight}). */
export type Q4_KWeight = Extract<HostWeight, { format: 'q4_k' }>;

/** ggml's Q4_K, whose blocks q4_k holds as they are. */
const Q4_K = ggmlTypeNamed('Q4_K')!;

/**
 * The 6-bit scale and min of sub-block `j` (0-7) of the super-block whose 12 scale bytes start at `q[at]`
 * (ggml's get_scale_min_k4, as the GGUF loader unpacks it).
 */
export function q4kScaleMin(q: Uint8Array, at: number, j: number): [scale: number, min: number] {
  return [ggmlKScale(q, at, j), ggmlKMin(q, at, j)];
}

/**
 * Quantizes a `[rows, cols]` f32 matrix to q4_k with the steps of ggml's `quantize_row_q4_K_ref` (what
 * llama.cpp's quantizer does without an importance matrix), in f32: per sub-block of 32 a weighted
 * least-squares search for scale and min (`make_qkx2_quants`, 21 candidate scales), the eight scales
 * and mins rounded to 6 bits against the super-block's largest (f16 `d`, `dmin`), then every value to
 * the nibble nearest `(x + dmin*m) / (d*sc)`. Slow (about 40 passes over each value): for tests and
 * small matrices; GGUF files bring their Q4_K tensors ready-made.
 * @throws RangeError when `cols` is not a multiple of 256 or `data` has the wrong length
 */
export function quantizeQ4_K(data: Float32Array, rows: number, cols: number): Q4_KWeight {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || cols % QK_K !== 0) {
    throw new RangeError(`q4_k needs cols to be a positive multiple of ${QK_K}, got [${rows}, ${cols}]`);
  }
  if (data.length !== rows * cols) throw new RangeError(`q4_k: expected ${rows * cols} values, got ${data.length}`);
  const superBlocks = (rows * cols) / QK_K;
  const blocks = new Uint8Array(superBlocks * Q4_K_BLOCK_BYTES);
  for (let s = 0; s < superBlocks; s++) quantizeSuperBlock(data, s * QK_K, blocks, s * Q4_K_BLOCK_BYTES);
  return { format: 'q4_k', rows, cols, blocks };
}

/** ggml's nearest_int: round half to even through the f32 magic number (|x| < 2^22). */
function nearestInt(x: number): number {
  return fround(x + 12582912) - 12582912;
}

function quantizeSuperBlock(x: Float32Array, base: number, out: Uint8Array, at: number): void {
  const L = new Uint8Array(QK_K);
  const aux = new Uint8Array(SUB);
  const weights = new Float32Array(SUB);
  const scales = new Float32Array(SUBS);
  const mins = new Float32Array(SUBS);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < SUBS; j++) {
    const xb = base + SUB * j;
    let sumX2 = 0;
    for (let l = 0; l < SUB; l++) sumX2 = fround(sumX2 + fround(x[xb + l]! * x[xb + l]!));
    const avX = fround(Math.sqrt(fround(sumX2 / SUB)));
    for (let l = 0; l < SUB; l++) weights[l] = fround(avX + Math.abs(x[xb + l]!));
    const [scale, min] = bestScaleMin(x, xb, weights, L, SUB * j, aux);
    scales[j] = scale;
    mins[j] = min;
    if (scale > maxScale) maxScale = scale;
    if (min > maxMin) maxMin = min;
  }
  const invScale = maxScale > 0 ? fround(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fround(63 / maxMin) : 0;
  const sc = at + 4;
  for (let j = 0; j < SUBS; j++) {
    const ls = Math.min(63, nearestInt(fround(invScale * scales[j]!)));
    const lm = Math.min(63, nearestInt(fround(invMin * mins[j]!)));
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[sc + j - 4]! |= (ls >> 4) << 6;
      out[sc + j]! |= (lm >> 4) << 6;
    }
  }
  const dBits = f32ToF16(fround(maxScale / 63));
  const dminBits = f32ToF16(fround(maxMin / 63));
  out[at] = dBits & 0xff;
  out[at + 1] = dBits >> 8;
  out[at + 2] = dminBits & 0xff;
  out[at + 3] = dminBits >> 8;
  const table = f16Lookup();
  const d = table[dBits]!;
  const dmin = table[dminBits]!;
  for (let j = 0; j < SUBS; j++) {
    const [s, m] = q4kScaleMin(out, sc, j);
    const dj = fround(d * s);
    if (!dj) continue;
    const dm = fround(dmin * m);
    for (let i = 0; i < SUB; i++) {
      const l = nearestInt(fround(fround(x[base + SUB * j + i]! + dm) / dj));
      L[SUB * j + i] = Math.max(0, Math.min(15, l || 0));
    }
  }
  // Nibbles: 64 values per 32 bytes, sub-block 2k in the low and 2k+1 in the high nibbles.
  for (let j = 0; j < QK_K; j += 64) {
    const q = at + 16 + j / 2;
    for (let l = 0; l < 32; l++) out[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
  }
}

/**
 * ggml's make_qkx2_quants(32, 15, x, weights, L, &min, Laux, -1, 0.1, 20, false): returns [scale,
 * -min] of the weighted least-squares fit `x ≈ scale * l + min` (min <= 0) over 21 candidate scales,
 * writing the chosen levels into L from `lAt`.
 */
function bestScaleMin(x: Float32Array, xb: number, weights: Float32Array, L: Uint8Array, lAt: number, aux: Uint8Array): [number, number] {
  const n = SUB;
  const nmax = 15;
  let min = x[xb]!;
  let max = x[xb]!;
  let sumW = weights[0]!;
  let sumX = fround(sumW * x[xb]!);
  for (let i = 1; i < n; i++) {
    const v = x[xb + i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i]!;
    sumW = fround(sumW + w);
    sumX = fround(sumX + fround(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lAt, lAt + n);
    return [0, -min];
  }
  const range = fround(max - min);
  let iscale = fround(nmax / range);
  let scale = fround(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fround(iscale * fround(x[xb + i]! - min)))));
    L[lAt + i] = l;
    const diff = fround(fround(fround(scale * l) + min) - x[xb + i]!);
    bestError = fround(bestError + fround(weights[i]! * fround(diff * diff)));
  }
  for (let is = 0; is <= 20; is++) {
    iscale = fround(fround(fround(-1 + fround(0.1 * is)) + nmax) / range);
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fround(iscale * fround(x[xb + i]! - min)))));
      aux[i] = l;
      const w = weights[i]!;
      sumL = fround(sumL + fround(w * l));
      sumL2 = fround(sumL2 + fround(fround(w * l) * l));
      sumXL = fround(sumXL + fround(fround(w * l) * x[xb + i]!));
    }
    const D = fround(fround(sumW * sumL2) - fround(sumL * sumL));
    if (D > 0) {
      let thisScale = fround(fround(fround(sumW * sumXL) - fround(sumX * sumL)) / D);
      let thisMin = fround(fround(fround(sumL2 * sumX) - fround(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fround(sumXL / sumL2);
      }
      let error = 0;
      for (let i = 0; i < n; i++) {
        const diff = fround(fround(fround(thisScale * aux[i]!) + thisMin) - x[xb + i]!);
        error = fround(error + fround(weights[i]! * fround(diff * diff)));
      }
      if (error < bestError) {
        L.set(aux.subarray(0, n), lAt);
        bestError = error;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/**
 * Expands q4_k row `row` (of `cols` values) into `out` (length `cols`) as ggml's `dequantize_row_q4_K`
 * does, through the GGUF loader's decoder: `(d * sc) * q - (dmin * m)`, each product and the difference
 * rounded to f32.
 */
export function dequantizeQ4_KRow(blocks: Uint8Array, cols: number, row: number, out: Float32Array): void {
  const rowBytes = (cols / QK_K) * Q4_K_BLOCK_BYTES;
  dequantizeGgml(Q4_K, blocks.subarray(row * rowBytes, (row + 1) * rowBytes), cols, out);
}
