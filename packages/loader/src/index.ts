/**
 * Safetensors (single and sharded), Hugging Face Hub download and cache, Qwen2 config parsing.
 * @packageDocumentation
 */
export { parseSafetensorsHeader, SafetensorsError, DTYPE_BYTES } from './safetensors-header.js';
export type { SafetensorsDtype, SafetensorsHeader, TensorInfo } from './safetensors-header.js';
