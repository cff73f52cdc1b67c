/**
 * ggml's tensor types (ids as GGUF stores them, block geometry) and dequantization of the ones a Qwen2 GGUF
 * uses, bit for bit as ggml's reference scalar `dequantize_row_*` (ggml/src/ggml-quants.c) computes them.
 *
 * Why f64 arithmetic stored once into a Float32Array equals C's `float` arithmetic here, without Math.fround:
 * every product these formats form (an f16 scale, 11 significant bits, times a sub-block scale of at most 7 bits
 * times a quant or level of at most 7 bits, 23 bits in the worst case, Q6_K and IQ4_XS) is exact in f32, so ggml
 * rounds nothing until the final `+ m` / `- m1`; and rounding the f64 sum of two f32 values to f32 gives the
 * f32 sum (f64 has more than 2 * 24 + 2 bits). The tests check this against a reference that rounds every step.
 */

/** One ggml tensor type: its GGUF id, name as ggml spells it ('Q4_K', 'F16', 'BF16', 'IQ4_NL', ...), values per block and bytes per block. */
export interface GgmlType {
  /** The `ggml_type` enum value GGUF stores in a tensor's info. */
  readonly id: number;
  /** The enum's name without `GGML_TYPE_` ('Q4_K', 'IQ4_XS', 'BF16'). */
  readonly name: string;
  /** Values per block (ggml's `blck_size`): 1 for plain numbers, 32 for Q4_0, 256 (QK_K) for K-quants. */
  readonly blockSize: number;
  /** Bytes per block (ggml's `type_size`, the block struct's `sizeof`). */
  readonly typeSize: number;
  /** Nominal bits per weight, for choosing a storage format (Q4_K is 4 though it spends 4.5). */
  readonly bits: number;
  /** Whether {@link dequantizeGgml} decodes it. */
  readonly dequantizable: boolean;
}

/** Values per K-quant super-block (ggml's QK_K). */
const QK_K = 256;

/** [id, name, blockSize, typeSize, bits] as ggml.h's enum and ggml.c's type_traits define them. */
const TYPE_ROWS: readonly (readonly [number, string, number, number, number])[] = [
  [0, 'F32', 1, 4, 32],
  [1, 'F16', 1, 2, 16],
  [2, 'Q4_0', 32, 18, 4],
  [3, 'Q4_1', 32, 20, 4],
  // 4 and 5 (Q4_2, Q4_3) were removed from ggml.
  [6, 'Q5_0', 32, 22, 5],
  [7, 'Q5_1', 32, 24, 5],
  [8, 'Q8_0', 32, 34, 8],
  [9, 'Q8_1', 32, 36, 8],
  [10, 'Q2_K', QK_K, 84, 2],
  [11, 'Q3_K', QK_K, 110, 3],
  [12, 'Q4_K', QK_K, 144, 4],
  [13, 'Q5_K', QK_K, 176, 5],
  [14, 'Q6_K', QK_K, 210, 6],
  [15, 'Q8_K', QK_K, 292, 8],
  [16, 'IQ2_XXS', QK_K, 66, 2],
  [17, 'IQ2_XS', QK_K, 74, 2],
  [18, 'IQ3_XXS', QK_K, 98, 3],
  [19, 'IQ1_S', QK_K, 50, 1],
  [20, 'IQ4_NL', 32, 18, 4],
  [21, 'IQ3_S', QK_K, 110, 3],
  [22, 'IQ2_S', QK_K, 82, 2],
  [23, 'IQ4_XS', QK_K, 136, 4],
  [24, 'I8', 1, 1, 8],
  [25, 'I16', 1, 2, 16],
  [26, 'I32', 1, 4, 32],
  [27, 'I64', 1, 8, 64],
  [28, 'F64', 1, 8, 64],
  [29, 'IQ1_M', QK_K, 56, 1],
  [30, 'BF16', 1, 2, 16],
  // 31-33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36-38 (IQ4_NL_4_4, ...) were runtime repackings, removed from GGUF.
  [34, 'TQ1_0', QK_K, 54, 1],
  [35, 'TQ2_0', QK_K, 66, 2],
  [39, 'MXFP4', 32, 17, 4],
  [40, 'NVFP4', 64, 36, 4],
  [41, 'Q1_0', 128, 18, 1],
  [42, 'Q2_0', 64, 18, 2],
];

/** Decodes `blocks` whole blocks from `src` (starting at its index 0) into `out` from index `o`. */
type BlockDecoder = (src: Uint8Array, blocks: number, out: Float32Array, o: number) => void;

/** ggml's `kvalues_iq4nl`: the 16 non-linear levels IQ4_NL and IQ4_XS nibbles index. */
const KVALUES_IQ4NL: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/** Whether typed arrays on this machine store little-endian, so GGUF's f32 bytes can be copied as they are. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let f16Bits: Int32Array | undefined;
let f16Values: Float32Array | undefined;

/** f32 bit patterns of all 65536 f16 values (IEEE widening; NaNs come out quiet, payload kept, as ggml's do). */
function f16BitsTable(): Int32Array {
  if (f16Bits === undefined) {
    f16Bits = new Int32Array(65536);
    for (let h = 0; h < 65536; h++) f16Bits[h] = widenF16(h);
    f16Values = new Float32Array(f16Bits.buffer);
  }
  return f16Bits;
}

/** The f32 value of each f16 bit pattern, built once on first use (256 KiB). */
function f16Table(): Float32Array {
  f16BitsTable();
  return f16Values!;
}

/** The f32 bit pattern (as an int32) of the f16 with bits `h`. */
function widenF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return sign | 0x7f800000 | (mantissa === 0 ? 0 : 0x400000 | (mantissa << 13));
  if (exponent !== 0) return sign | ((exponent + 112) << 23) | (mantissa << 13);
  if (mantissa === 0) return sign;
  // A subnormal f16 is a normal f32: shift the mantissa up to its leading 1, lowering the exponent as it goes.
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mantissa & 0x3ff) << 13);
}

/** A 32-bit view of `out`'s storage, so bit patterns can be written into it unchanged. */
function bitsView(out: Float32Array): Int32Array {
  return new Int32Array(out.buffer, out.byteOffset, out.length);
}

/** The signed value of byte `b` read as int8. */
function int8(b: number): number {
  return (b << 24) >> 24;
}

/** Scale of K-quant sub-block `j` (0-7) from the 12 packed bytes at `at` (ggml's get_scale_min_k4). */
export function kScale(src: Uint8Array, at: number, j: number): number {
  // Sub-blocks 0-3 keep 6 bits in bytes 0-3; 4-7 put their low 4 bits in bytes 8-11 and their top 2 in bytes 0-3's top bits.
  return j < 4 ? src[at + j] & 63 : (src[at + j + 4] & 15) | ((src[at + j - 4] >> 6) << 4);
}

/** Min of K-quant sub-block `j` (0-7) from the 12 packed bytes at `at` (ggml's get_scale_min_k4). */
export function kMin(src: Uint8Array, at: number, j: number): number {
  return j < 4 ? src[at + j + 4] & 63 : (src[at + j + 4] >> 4) | ((src[at + j] >> 6) << 4);
}

/** Q3_K's scale `s` (0-15), 6 bits spread over the 12 bytes at `at`, less ggml's offset 32. */
function q3kScale(src: Uint8Array, at: number, s: number): number {
  const low = s < 8 ? src[at + s] & 15 : src[at + s - 8] >> 4;
  const high = (src[at + 8 + (s & 3)] >> (2 * (s >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

function decodeF32(src: Uint8Array, count: number, out: Float32Array, o: number): void {
  if (LITTLE_ENDIAN_HOST) {
    // A byte copy keeps every bit (NaN payloads included) and needs no alignment of `src`.
    new Uint8Array(out.buffer, out.byteOffset + o * 4, count * 4).set(src.subarray(0, count * 4));
    return;
  }
  const view = new DataView(src.buffer, src.byteOffset, count * 4);
  for (let i = 0; i < count; i++) out[o + i] = view.getFloat32(i * 4, true);
}

function decodeF16(src: Uint8Array, count: number, out: Float32Array, o: number): void {
  const table = f16BitsTable();
  const out32 = bitsView(out);
  for (let i = 0, p = 0; i < count; i++, p += 2) out32[o + i] = table[src[p] | (src[p + 1] << 8)];
}

function decodeBF16(src: Uint8Array, count: number, out: Float32Array, o: number): void {
  // bf16 is the top half of an f32; ggml widens it by shifting, so NaNs keep their bits.
  const out32 = bitsView(out);
  for (let i = 0, p = 0; i < count; i++, p += 2) out32[o + i] = (src[p + 1] << 24) | (src[p] << 16);
}

/** Q4_0 (18 bytes: f16 d, 16 bytes of nibbles): value = d * (nibble - 8); low nibbles are values 0-15, high ones 16-31. */
function decodeQ4_0(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 18, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j];
      out[o + j] = d * ((q & 15) - 8);
      out[o + 16 + j] = d * ((q >> 4) - 8);
    }
  }
}

/** Q4_1 (20 bytes: f16 d, f16 m, 16 bytes of nibbles): value = d * nibble + m. */
function decodeQ4_1(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 20, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const m = f16[src[p + 2] | (src[p + 3] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = src[p + 4 + j];
      out[o + j] = d * (q & 15) + m;
      out[o + 16 + j] = d * (q >> 4) + m;
    }
  }
}

/** Q5_0 (22 bytes: f16 d, u32 qh, 16 bytes of nibbles): bit i of qh is value i's fifth bit; value = d * (q - 16). */
function decodeQ5_0(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 22, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const qh = src[p + 2] | (src[p + 3] << 8) | (src[p + 4] << 16) | (src[p + 5] << 24);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 6 + j];
      out[o + j] = d * (((q & 15) | (((qh >>> j) & 1) << 4)) - 16);
      out[o + 16 + j] = d * (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16);
    }
  }
}

/** Q5_1 (24 bytes: f16 d, f16 m, u32 qh, 16 bytes of nibbles): value = d * q + m. */
function decodeQ5_1(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 24, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const m = f16[src[p + 2] | (src[p + 3] << 8)];
    const qh = src[p + 4] | (src[p + 5] << 8) | (src[p + 6] << 16) | (src[p + 7] << 24);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 8 + j];
      out[o + j] = d * ((q & 15) | (((qh >>> j) & 1) << 4)) + m;
      out[o + 16 + j] = d * ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) + m;
    }
  }
}

/** Q8_0 (34 bytes: f16 d, 32 int8): value = d * q. */
function decodeQ8_0(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  const signed = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let b = 0, p = 0; b < blocks; b++, p += 34, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    for (let j = 0; j < 32; j++) out[o + j] = d * signed[p + 2 + j];
  }
}

/**
 * Q2_K (84 bytes: 16 scale bytes, 64 bytes of 2-bit quants, f16 d, f16 dmin). Each 128 values share 32 quant
 * bytes, one 2-bit plane per 32 values; scale byte s (low nibble scale, high nibble min) covers values 16s-16s+15:
 * value = (d * scale) * q - (dmin * min).
 */
function decodeQ2_K(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 84) {
    const d = f16[src[p + 80] | (src[p + 81] << 8)];
    const dmin = f16[src[p + 82] | (src[p + 83] << 8)];
    for (let half = 0; half < 2; half++) {
      const quants = p + 16 + 32 * half;
      for (let plane = 0; plane < 4; plane++) {
        const shift = 2 * plane;
        for (let part = 0; part < 2; part++, o += 16) {
          const sc = src[p + 8 * half + 2 * plane + part];
          const dl = d * (sc & 15);
          const ml = dmin * (sc >> 4);
          const q = quants + 16 * part;
          for (let l = 0; l < 16; l++) out[o + l] = dl * ((src[q + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

/**
 * Q3_K (110 bytes: 32 hmask bytes, 64 bytes of 2-bit quants, 12 scale bytes, f16 d). Laid out like Q2_K, plus a
 * high bit per value in hmask (bit 4 * half + plane of byte l): set means q, clear means q - 4. value = d * (scale - 32) * q.
 */
function decodeQ3_K(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 110) {
    const d = f16[src[p + 108] | (src[p + 109] << 8)];
    for (let half = 0; half < 2; half++) {
      const quants = p + 32 + 32 * half;
      for (let plane = 0; plane < 4; plane++) {
        const shift = 2 * plane;
        const highBit = 4 * half + plane;
        for (let part = 0; part < 2; part++, o += 16) {
          const dl = d * q3kScale(src, p + 96, 8 * half + 2 * plane + part);
          const q = quants + 16 * part;
          const hm = p + 16 * part;
          // Arithmetic rather than a branch on the bit: high bits are as unpredictable as the data.
          for (let l = 0; l < 16; l++) {
            out[o + l] = dl * (((src[q + l] >> shift) & 3) - 4 + (((src[hm + l] >> highBit) & 1) << 2));
          }
        }
      }
    }
  }
}

/**
 * Q4_K (144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles). Each 64 values share
 * 32 bytes: low nibbles are sub-block 2c, high nibbles sub-block 2c + 1. value = (d * scale) * q - (dmin * min).
 */
function decodeQ4_K(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 144) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const dmin = f16[src[p + 2] | (src[p + 3] << 8)];
    for (let chunk = 0; chunk < 4; chunk++, o += 64) {
      const d1 = d * kScale(src, p + 4, 2 * chunk);
      const m1 = dmin * kMin(src, p + 4, 2 * chunk);
      const d2 = d * kScale(src, p + 4, 2 * chunk + 1);
      const m2 = dmin * kMin(src, p + 4, 2 * chunk + 1);
      const q = p + 16 + 32 * chunk;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l];
        out[o + l] = d1 * (byte & 15) - m1;
        out[o + 32 + l] = d2 * (byte >> 4) - m2;
      }
    }
  }
}

/**
 * Q5_K (176 bytes: f16 d, f16 dmin, 12 scale bytes, 32 qh bytes, 128 bytes of nibbles): Q4_K plus a fifth bit per
 * value, bit 2c (low nibbles) or 2c + 1 (high nibbles) of qh[l] for chunk c of 64 values.
 */
function decodeQ5_K(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 176) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const dmin = f16[src[p + 2] | (src[p + 3] << 8)];
    for (let chunk = 0; chunk < 4; chunk++, o += 64) {
      const d1 = d * kScale(src, p + 4, 2 * chunk);
      const m1 = dmin * kMin(src, p + 4, 2 * chunk);
      const d2 = d * kScale(src, p + 4, 2 * chunk + 1);
      const m2 = dmin * kMin(src, p + 4, 2 * chunk + 1);
      const lowShift = 2 * chunk;
      const q = p + 48 + 32 * chunk;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l];
        const high = src[p + 16 + l] >> lowShift;
        out[o + l] = d1 * ((byte & 15) | ((high & 1) << 4)) - m1;
        out[o + 32 + l] = d2 * ((byte >> 4) | ((high & 2) << 3)) - m2;
      }
    }
  }
}

/**
 * Q6_K (210 bytes: 128 ql bytes, 64 qh bytes, 16 int8 scales, f16 d). Each 128 values share 64 ql and 32 qh bytes:
 * value 32k + l takes nibble (k >> 1) of ql[l + 32 (k & 1)] and bits 2k-2k+1 of qh[l], less 32; scale s covers
 * values 16s-16s+15. value = (d * scale) * q.
 */
function decodeQ6_K(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  for (let b = 0, p = 0; b < blocks; b++, p += 210) {
    const d = f16[src[p + 208] | (src[p + 209] << 8)];
    for (let half = 0; half < 2; half++, o += 128) {
      const ql = p + 64 * half;
      const qh = p + 128 + 32 * half;
      const sc = p + 192 + 8 * half;
      for (let group = 0; group < 2; group++) {
        const s1 = d * int8(src[sc + group]);
        const s2 = d * int8(src[sc + group + 2]);
        const s3 = d * int8(src[sc + group + 4]);
        const s4 = d * int8(src[sc + group + 6]);
        for (let l = 16 * group; l < 16 * group + 16; l++) {
          const a = src[ql + l];
          const c = src[ql + 32 + l];
          const h = src[qh + l];
          out[o + l] = s1 * (((a & 15) | ((h & 3) << 4)) - 32);
          out[o + 32 + l] = s2 * (((c & 15) | ((h & 12) << 2)) - 32);
          out[o + 64 + l] = s3 * (((a >> 4) | (h & 48)) - 32);
          out[o + 96 + l] = s4 * (((c >> 4) | ((h & 192) >> 2)) - 32);
        }
      }
    }
  }
}

/** IQ4_NL (18 bytes: f16 d, 16 bytes of nibbles): value = d * kvalues_iq4nl[nibble], low nibbles first. */
function decodeIQ4_NL(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  const levels = KVALUES_IQ4NL;
  for (let b = 0, p = 0; b < blocks; b++, p += 18, o += 32) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j];
      out[o + j] = d * levels[q & 15];
      out[o + 16 + j] = d * levels[q >> 4];
    }
  }
}

/**
 * IQ4_XS (136 bytes: f16 d, u16 scales_h, 4 scales_l bytes, 128 bytes of nibbles): eight IQ4_NL-like sub-blocks of 32
 * whose 6-bit scale is nibble (ib & 1) of scales_l[ib >> 1] with bits 2ib-2ib+1 of scales_h on top, less 32.
 */
function decodeIQ4_XS(src: Uint8Array, blocks: number, out: Float32Array, o: number): void {
  const f16 = f16Table();
  const levels = KVALUES_IQ4NL;
  for (let b = 0, p = 0; b < blocks; b++, p += 136) {
    const d = f16[src[p] | (src[p + 1] << 8)];
    const scalesHigh = src[p + 2] | (src[p + 3] << 8);
    for (let ib = 0; ib < 8; ib++, o += 32) {
      const ls = ((src[p + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 15) | (((scalesHigh >> (2 * ib)) & 3) << 4);
      const dl = d * (ls - 32);
      const q = p + 8 + 16 * ib;
      for (let j = 0; j < 16; j++) {
        const byte = src[q + j];
        out[o + j] = dl * levels[byte & 15];
        out[o + 16 + j] = dl * levels[byte >> 4];
      }
    }
  }
}

/** Decoders by type id; a block of F32/F16/BF16 is one value, so `blocks` is the value count for them. */
const DECODERS: ReadonlyMap<number, BlockDecoder> = new Map<number, BlockDecoder>([
  [0, decodeF32],
  [1, decodeF16],
  [30, decodeBF16],
  [2, decodeQ4_0],
  [3, decodeQ4_1],
  [6, decodeQ5_0],
  [7, decodeQ5_1],
  [8, decodeQ8_0],
  [10, decodeQ2_K],
  [11, decodeQ3_K],
  [12, decodeQ4_K],
  [13, decodeQ5_K],
  [14, decodeQ6_K],
  [20, decodeIQ4_NL],
  [23, decodeIQ4_XS],
]);

/** Every type ggml defines (by GGUF id), including ones we cannot dequantize (so messages can name them and byte sizes can be checked). */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  TYPE_ROWS.map(([id, name, blockSize, typeSize, bits]) => [
    id,
    Object.freeze({ id, name, blockSize, typeSize, bits, dequantizable: DECODERS.has(id) }),
  ]),
);

/** Looks up a type by id; undefined for ids ggml does not define. */
export function ggmlType(id: number): GgmlType | undefined {
  return GGML_TYPES.get(id);
}

const BY_NAME = new Map([...GGML_TYPES.values()].map((t) => [t.name, t]));

/** Looks up a type by ggml's name ('Q4_K', 'F16', ...); undefined for names ggml does not define. */
export function ggmlTypeNamed(name: string): GgmlType | undefined {
  return BY_NAME.get(name);
}

/**
 * Decodes `count` values (a multiple of the type's blockSize) of type `type` from `bytes` (little-endian, blocks
 * back to back, starting at bytes.byteOffset which may be any offset) into `out` starting at out index `outOffset`
 * (default 0). Values come out in ggml's order, equal bit for bit to its reference `dequantize_row_*`.
 * @throws RangeError when `bytes` is too short, `count` is not whole blocks, or `out` has no room from `outOffset`
 * @throws Error naming the type when it is not dequantizable
 */
export function dequantizeGgml(type: GgmlType, bytes: Uint8Array, count: number, out: Float32Array, outOffset = 0): void {
  // Sizes come from our table, not the caller's object, so a hand-made GgmlType cannot misdirect the reads.
  const known = GGML_TYPES.get(type.id);
  const decode = DECODERS.get(type.id);
  if (known === undefined || decode === undefined) {
    throw new Error(`cannot dequantize ggml type ${known?.name ?? type.name} (id ${type.id}): only ${dequantizableNames()} are supported`);
  }
  if (!Number.isSafeInteger(count) || count < 0 || count % known.blockSize !== 0) {
    throw new RangeError(`${known.name}: ${count} values are not a whole number of ${known.blockSize}-value blocks`);
  }
  const blocks = count / known.blockSize;
  const needed = blocks * known.typeSize;
  if (bytes.length < needed) {
    throw new RangeError(`${known.name}: ${count} values need ${needed} bytes, got ${bytes.length}`);
  }
  if (!Number.isSafeInteger(outOffset) || outOffset < 0 || outOffset + count > out.length) {
    throw new RangeError(`${known.name}: ${count} values do not fit in ${out.length} floats from index ${outOffset}`);
  }
  decode(bytes, blocks, out, outOffset);
}

function dequantizableNames(): string {
  return [...DECODERS.keys()].map((id) => GGML_TYPES.get(id)!.name).join(', ');
}
