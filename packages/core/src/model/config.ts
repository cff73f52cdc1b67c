/**
 * The part of a Qwen2 config the graph reads. `@qwen2-ts/loader`'s `Qwen2Config` satisfies it; keeping
 * the graph on this subset lets tests and tools build a model from any source of these numbers.
 */
export interface Qwen2ModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** Effective sliding window, or undefined when the config does not enable it. */
  slidingWindow?: number;
  /** Layers with index >= maxWindowLayers use the sliding window when it is enabled (Hugging Face). */
  maxWindowLayers: number;
}

/** Hugging Face's tensor names of a Qwen2ForCausalLM checkpoint. */
export const tensorNames = {
  embed: 'model.embed_tokens.weight',
  norm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  /** The names of layer `i`'s tensors. */
  layer(i: number) {
    const p = `model.layers.${i}`;
    return {
      inputNorm: `${p}.input_layernorm.weight`,
      q: `${p}.self_attn.q_proj.weight`,
      k: `${p}.self_attn.k_proj.weight`,
      v: `${p}.self_attn.v_proj.weight`,
      qBias: `${p}.self_attn.q_proj.bias`,
      kBias: `${p}.self_attn.k_proj.bias`,
      vBias: `${p}.self_attn.v_proj.bias`,
      o: `${p}.self_attn.o_proj.weight`,
      postNorm: `${p}.post_attention_layernorm.weight`,
      gate: `${p}.mlp.gate_proj.weight`,
      up: `${p}.mlp.up_proj.weight`,
      down: `${p}.mlp.down_proj.weight`,
    };
  },
} as const;

/** The sliding window layer `layer` uses, or undefined for full causal attention (HF semantics). */
export function layerWindow(config: Qwen2ModelConfig, layer: number): number | undefined {
  return config.slidingWindow !== undefined && layer >= config.maxWindowLayers ? config.slidingWindow : undefined;
}
