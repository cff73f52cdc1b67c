import type { WeightFormat } from '../backend/types.js';

/**
 * Tolerances of the conformance suite, documented in one place.
 *
 * Op tests compare a backend with the reference backend on identical inputs, so the only differences
 * come from f32 arithmetic order (and, for quantized weights, from a backend that quantizes activations
 * for integer dot products, as ggml does). Errors are measured as `max |candidate - reference|` divided
 * by `max(1, max |reference|)`.
 */
export const OP_TOLERANCE = {
  /** Element-wise ops and lookups (embed dequantizes exactly: f16/bf16 widen exactly, d * q is exact). */
  exact: 1e-6,
  /** rmsNorm, swiglu, add, attention: f32 accumulation in any order. */
  f32: 1e-4,
  /** RoPE at positions up to 4096: allows angles computed in f32 (as Hugging Face does). */
  rope: 1e-3,
  /** matmul with f32/f16/bf16 weights (they widen to f32 exactly). */
  matmulFloat: 1e-4,
  /** matmul with q8_0/q4_0/q4_k weights: room for 8-bit activation quantization. */
  matmulQuant: 2e-2,
} as const;

/** Matmul tolerance of a weight format. */
export function matmulTolerance(format: WeightFormat): number {
  return format === 'q8_0' || format === 'q4_0' || format === 'q4_k' ? OP_TOLERANCE.matmulQuant : OP_TOLERANCE.matmulFloat;
}

/**
 * Whole-model tolerances, absolute on logits (fixture logits have a std of about 2).
 * - `golden`: a weight format that stores the checkpoint exactly (f32 always; f16 for F16 and bf16 for
 *   BF16 checkpoints): within 1e-3 of the float64 goldens, and every greedy token identical.
 * - `sameFormat`: any format vs the reference backend holding the same converted weights (exact f32
 *   activations), and a backend's small chunks vs its own one-pass prefill. q4_0 allows int8 activations
 *   per 32-value block, as ggml/llama.cpp use: on the fixture models (hidden 64-128, so few blocks to
 *   average over) that moves logits by up to 0.2 (the wasm backend's relaxed-SIMD kernel), small beside
 *   what q4_0 itself does to them (2-3.8 from the goldens); a wrong block or lane order moves them by O(1).
 * - `lossyRelativeRms`: when the format rounds the checkpoint (bf16 from f32, q8_0, q4_0), the RMS of
 *   the logit error relative to the goldens' standard deviation, as measured on the reference backend
 *   with some margin: a sanity bound that catches garbage, not a precision claim; greedy agreement
 *   with the goldens is reported, not required.
 */
export const MODEL_TOLERANCE = {
  golden: 1e-3,
  sameFormat: { f32: 1e-3, f16: 1e-3, bf16: 1e-3, q8_0: 5e-2, q4_0: 3e-1, q4_k: 3e-1 } as Record<WeightFormat, number>,
  lossyRelativeRms: { f32: 1e-3, f16: 1e-2, bf16: 5e-2, q8_0: 0.1, q4_0: 0.8, q4_k: 0.8 } as Record<WeightFormat, number>,
  /**
   * f32 weights with an f16 KV cache against the goldens, absolute on logits: the reference backend
   * measured 3.7e-3 to 5.3e-3 on the fixture models (level with storing f16 weights), so 1.5e-2 leaves
   * room for a backend whose f32 keys round to the neighbouring half now and then; unrounded values (an
   * f32 cache) would pass too, so the op suite checks the rounding itself value by value.
   */
  f16KVCache: 1.5e-2,
} as const;
