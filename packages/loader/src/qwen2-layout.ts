import type { Qwen2Config } from './config.js';

/**
 * Names and shapes of the tensors of a Hugging Face Qwen2ForCausalLM checkpoint for a config
 * (lm_head only when the embeddings are untied), in the order transformers saves them. Used to write
 * random checkpoints at real shapes for benchmarks and memory tests.
 */
export function qwen2CheckpointLayout(config: Pick<Qwen2Config, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads' | 'headDim' | 'tieWordEmbeddings'>): { name: string; shape: number[] }[] {
  const h = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const inter = config.intermediateSize;
  const out: { name: string; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, h] }];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [h] },
      { name: `${p}self_attn.q_proj.weight`, shape: [q, h] }, { name: `${p}self_attn.q_proj.bias`, shape: [q] },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, h] }, { name: `${p}self_attn.k_proj.bias`, shape: [kv] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, h] }, { name: `${p}self_attn.v_proj.bias`, shape: [kv] },
      { name: `${p}self_attn.o_proj.weight`, shape: [h, q] },
      { name: `${p}post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}mlp.gate_proj.weight`, shape: [inter, h] }, { name: `${p}mlp.up_proj.weight`, shape: [inter, h] },
      { name: `${p}mlp.down_proj.weight`, shape: [h, inter] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [h] });
  if (!config.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [config.vocabSize, h] });
  return out;
}
