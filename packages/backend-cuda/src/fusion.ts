import type { CudaTensor } from './objects.js';

/** Token counts up to this take the decode GEMV kernels (native/kernels.h GEMV_MAX_TOKENS). */
export const GEMV_MAX_TOKENS = 8;

/** Epilogue kinds of the decode GEMV (native/kernels.h MatmulEpilogueKind). */
export const EPILOGUE_RESIDUAL = 1;
export const EPILOGUE_SWIGLU = 2;
export const EPILOGUE_ROPE = 3;

/** A weight as native calls take it: pointer, scales pointer, format code, rows, cols. */
export type WeightArgs = readonly [number, number, number, number, number];

/** A position as ops pass it: relative to the pass start (1) or absolute (0), and the value. */
export type OpPosition = readonly [usePassPos: 0 | 1, value: number];

/** A decode matmul as recorded, which the RMSNorm right before it may join (see {@link prologueFits}). */
export interface MatmulOp {
  kind: 'matmul';
  x: CudaTensor;
  outs: readonly CudaTensor[];
  /** Every weight of one format and row count. */
  uniform: boolean;
  /** Every weight of one format. */
  sameFormat: boolean;
  /** Whether the weights fit one native launch. */
  single: boolean;
  /** The native launch reading `xPtr`, with an epilogue and an RMSNorm prologue (native argument arrays). */
  launch: (xPtr: number, epilogue?: Float64Array, prologue?: Float64Array) => () => void;
}

/**
 * What a recorded op does, for the op recorded right before it to absorb it (see {@link prologueFits},
 * {@link epilogueFor}, {@link ropeEpilogueFor}, {@link ropePairFor}, {@link kvWriteFor}, {@link normOfCopy}).
 */
export type FusableOp =
  | MatmulOp
  | { kind: 'add'; a: CudaTensor; b: CudaTensor; out: CudaTensor }
  | { kind: 'rmsNorm'; x: CudaTensor; out: CudaTensor; weight: WeightArgs; eps: number }
  | { kind: 'swiglu'; gate: CudaTensor; up: CudaTensor; out: CudaTensor }
  | { kind: 'rope'; x: CudaTensor; heads: number; headDim: number; at: OpPosition; theta: number }
  | { kind: 'writeKV'; k: CudaTensor; v: CudaTensor; kvHeads: number; headDim: number; at: OpPosition; keys: number; values: number; maxTokens: number; dtypeCode: number };

/** A rope op as recorded (of q, or of k right after it). */
export type RopeOp = Extract<FusableOp, { kind: 'rope' }>;
/** A KV-cache write as recorded. */
export type WriteKVOp = Extract<FusableOp, { kind: 'writeKV' }>;

/** The same rows of the same storage. */
function same(p: CudaTensor, q: CudaTensor): boolean {
  return p.storage === q.storage && p.rowStart === q.rowStart && p.rows === q.rows && p.cols === q.cols;
}

/** No byte in common (different allocations; views of one allocation never count as apart). */
function apart(p: CudaTensor, q: CudaTensor): boolean {
  return p.storage !== q.storage;
}

/**
 * The epilogue (native `MatmulEpilogue`: kind, residual pointer, output pointer) with which a decode
 * matmul of `x` into `outs` also does `next`, or undefined when it must stay a separate op.
 *
 * - `add` after a single weight: one operand is the matmul's output, the other the residual; the sum
 *   goes to the residual itself (core's `x += o`), to the matmul's output, or to a tensor apart from both.
 * - `swiglu` after two weights (gate, then up) of one format and row count, reading exactly their
 *   outputs; the result goes to either output or to a tensor apart from both.
 *
 * Every warp of the GEMV reads all of `x` while others write their rows, so nothing the epilogue
 * writes may share storage with `x`; and each row's results are read back only by the lane that wrote
 * them, so an epilogue tensor partly overlapping the outputs is refused.
 *
 * @param x - the matmul's input
 * @param outs - the matmul's outputs, one per weight
 * @param sameFormatAndRows - whether every weight has the same format and row count
 * @param next - the op recorded right after the matmul
 * @param reads - what other blocks of the launch read from global memory throughout (default `[x]`;
 *   with an RMSNorm prologue also the norm's input)
 */
export function epilogueFor(x: CudaTensor, outs: readonly CudaTensor[], sameFormatAndRows: boolean, next: FusableOp, reads: readonly CudaTensor[] = [x]): Float64Array | undefined {
  if (x.rows > GEMV_MAX_TOKENS) return undefined;
  const into = (out: CudaTensor, p: CudaTensor, q: CudaTensor): boolean =>
    reads.every((r) => apart(out, r)) && (same(out, p) || same(out, q) || (apart(out, p) && apart(out, q)));
  if (next.kind === 'add') {
    if (outs.length !== 1) return undefined;
    const y = outs[0]!;
    const residual = same(next.b, y) ? next.a : same(next.a, y) ? next.b : undefined;
    if (!residual || !apart(residual, y) || !into(next.out, residual, y)) return undefined;
    return Float64Array.of(EPILOGUE_RESIDUAL, residual.ptr, next.out.ptr);
  }
  if (next.kind !== 'swiglu' || outs.length !== 2 || !sameFormatAndRows) return undefined;
  const [g, u] = outs as [CudaTensor, CudaTensor];
  if (!same(next.gate, g) || !same(next.up, u) || !into(next.out, g, u)) return undefined;
  return Float64Array.of(EPILOGUE_SWIGLU, 0, next.out.ptr);
}

/**
 * Whether `next` is the rope of k that may share one launch with `q`'s (core's rope(q), rope(k)): the
 * same tokens, head size, position and theta, and storage apart (blocks rotate both at once).
 */
export function ropePairFor(q: RopeOp, next: FusableOp): next is RopeOp {
  return next.kind === 'rope' && next.x.storage !== q.x.storage && next.x.rows === q.x.rows && next.headDim === q.headDim &&
    next.theta === q.theta && next.at[0] === q.at[0] && next.at[1] === q.at[1];
}

/**
 * Whether `next` is the KV write of exactly the k just rotated (and its v) at the same positions, which
 * the rope launch can also do: v is read while q and k are written, so it must be apart from both.
 */
export function kvWriteFor(q: RopeOp, k: RopeOp, next: FusableOp): next is Extract<FusableOp, { kind: 'writeKV' }> {
  return next.kind === 'writeKV' && same(next.k, k.x) && next.kvHeads === k.heads && next.headDim === k.headDim &&
    next.at[0] === k.at[0] && next.at[1] === k.at[1] && apart(next.v, q.x) && apart(next.v, k.x);
}

/**
 * Whether `q` may be the start of a rope chain in the epilogue of the decode matmul `m` (see
 * {@link ropeEpilogueFor}): three weights of one format in one launch, the first output rotated.
 */
export function ropeStartsAt(m: MatmulOp, q: FusableOp): q is RopeOp {
  return q.kind === 'rope' && m.outs.length === 3 && m.single && m.sameFormat && m.x.rows <= GEMV_MAX_TOKENS && same(q.x, m.outs[0]!);
}

/**
 * The epilogue (native `MatmulEpilogue` with its `RopeEpilogue`: kind, 0, 0, head size, position (pass
 * relative flag, value), theta, key and value cache pointers, cache capacity, the caches' dtype code
 * (native KVDtypeCode)) with which the decode
 * matmul `m` of q/k/v also does core's rope(q), rope(k) and writeKV(k, v) recorded right after it, or
 * undefined when they must stay apart. q and k must be exactly the first two outputs and v the third, at
 * the same positions (see {@link ropePairFor}, {@link kvWriteFor}). Each warp of the GEMV rotates the
 * pair of rows it computed and writes them to the output and the cache, reading nothing another block
 * writes (the outputs and the cache are apart from x, which the matmul and its prologue check).
 */
export function ropeEpilogueFor(m: MatmulOp, q: RopeOp, k: RopeOp, w: WriteKVOp): Float64Array | undefined {
  if (!ropeStartsAt(m, q) || !same(k.x, m.outs[1]!) || !same(w.v, m.outs[2]!) || !ropePairFor(q, k) || !kvWriteFor(q, k, w)) return undefined;
  return Float64Array.of(EPILOGUE_ROPE, 0, 0, q.headDim, q.at[0], q.at[1], q.theta, w.keys, w.values, w.maxTokens, w.dtypeCode);
}

/**
 * Whether `next` is an in-place RMSNorm of exactly what `copy(src) -> dst` wrote (core's last row before
 * lm_head): then one RMSNorm from `src` into `dst` does both, `src` being left as it was.
 */
export function normOfCopy(src: CudaTensor, dst: CudaTensor, next: FusableOp): next is Extract<FusableOp, { kind: 'rmsNorm' }> {
  return next.kind === 'rmsNorm' && same(next.x, dst) && same(next.out, dst) && apart(src, dst);
}

/**
 * Whether `rmsNorm(input) -> out` may run as the prologue of the decode matmul `m` reading `out`: every
 * block of the GEMV normalizes `input` itself (into shared memory) and block 0 writes `out`, so `out`
 * and every matmul output must be apart from `input`.
 */
export function prologueFits(input: CudaTensor, out: CudaTensor, m: MatmulOp): boolean {
  return m.single && m.x.rows <= GEMV_MAX_TOKENS && same(m.x, out) && apart(out, input) && m.outs.every((o) => apart(o, input));
}
