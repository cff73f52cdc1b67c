/**
 * llama.cpp's tensor names for the qwen2 architecture (its `LLM_ARCH_QWEN2` table) and Hugging Face's.
 * Qwen2 uses NEOX-style rope in llama.cpp, so converted Q/K weights are not permuted (unlike llama's):
 * a renamed tensor holds the same matrix.
 */

const WHOLE_MODEL: Readonly<Record<string, string>> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};

const PER_LAYER: Readonly<Record<string, string>> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
};

const WHOLE_MODEL_BACK = new Map(Object.entries(WHOLE_MODEL).map(([hf, gguf]) => [gguf, hf]));
const PER_LAYER_BACK = new Map(Object.entries(PER_LAYER).map(([hf, gguf]) => [gguf, hf]));

/**
 * llama.cpp's name of a Hugging Face Qwen2 tensor (`model.layers.3.mlp.up_proj.weight` -> `blk.3.ffn_up.weight`).
 * @throws Error for a tensor Qwen2 does not have
 */
export function ggufTensorName(hfName: string): string {
  const whole = WHOLE_MODEL[hfName];
  if (whole) return whole;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const part = m && PER_LAYER[m[2]!];
  if (!part) throw new Error(`gguf: no llama.cpp name for tensor '${hfName}'`);
  return `blk.${m![1]}.${part}`;
}

/** Hugging Face's name of a llama.cpp qwen2 tensor, or undefined for one Qwen2ForCausalLM does not have. */
export function hfTensorName(ggufName: string): string | undefined {
  const whole = WHOLE_MODEL_BACK.get(ggufName);
  if (whole) return whole;
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufName);
  const part = m && PER_LAYER_BACK.get(m[2]!);
  return part ? `model.layers.${m![1]}.${part}` : undefined;
}
