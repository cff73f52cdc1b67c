import type { CudaTensor } from './objects.js';

/** Token counts up to this take the decode GEMV kernels (native/kernels.h GEMV_MAX_TOKENS). */
export const GEMV_MAX_TOKENS = 8;

/** Epilogue kinds of the decode GEMV (native/kernels.h MatmulEpilogueKind). */
export const EPILOGUE_RESIDUAL = 1;
export const EPILOGUE_SWIGLU = 2;

/** An elementwise op as recorded, which the decode matmul right before it may do in its epilogue. */
export type ElementwiseOp =
  | { kind: 'add'; a: CudaTensor; b: CudaTensor; out: CudaTensor }
  | { kind: 'swiglu'; gate: CudaTensor; up: CudaTensor; out: CudaTensor };

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
 */
export function epilogueFor(x: CudaTensor, outs: readonly CudaTensor[], sameFormatAndRows: boolean, next: ElementwiseOp): Float64Array | undefined {
  if (x.rows > GEMV_MAX_TOKENS) return undefined;
  const into = (out: CudaTensor, p: CudaTensor, q: CudaTensor): boolean => apart(out, x) && (same(out, p) || same(out, q) || (apart(out, p) && apart(out, q)));
  if (next.kind === 'add') {
    if (outs.length !== 1) return undefined;
    const y = outs[0]!;
    const residual = same(next.b, y) ? next.a : same(next.a, y) ? next.b : undefined;
    if (!residual || !apart(residual, y) || !into(next.out, residual, y)) return undefined;
    return Float64Array.of(EPILOGUE_RESIDUAL, residual.ptr, next.out.ptr);
  }
  if (outs.length !== 2 || !sameFormatAndRows) return undefined;
  const [g, u] = outs as [CudaTensor, CudaTensor];
  if (!same(next.gate, g) || !same(next.up, u) || !into(next.out, g, u)) return undefined;
  return Float64Array.of(EPILOGUE_SWIGLU, 0, next.out.ptr);
}
