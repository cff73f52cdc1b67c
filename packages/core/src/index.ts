/**
 * The Qwen2 model graph, the backend kernel interface, KV cache, sampling, generation and chat.
 * @packageDocumentation
 */
export { argmax } from './argmax.js';
export { QUANT_BLOCK } from './backend/types.js';
export type {
  AttentionSpec, Backend, BackendInfo, HostWeight, KVCache, KVCacheSpec, SamplingParams, Tensor, Weight, WeightFormat,
} from './backend/types.js';
