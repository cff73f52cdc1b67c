/**
 * Safetensors (single and sharded), Hugging Face Hub download and cache, Qwen2 config parsing.
 * @packageDocumentation
 */
export { ConfigError, HubError, ModelNotFoundError, RemoteFileError, SafetensorsError } from './errors.js';
export { parseSafetensorsHeader, parseHeaderLength, readSafetensorsHeader, DTYPE_BYTES, MAX_HEADER_BYTES } from './safetensors-header.js';
export type { SafetensorsDtype, SafetensorsHeader, TensorInfo } from './safetensors-header.js';
export { parseQwen2Config, parseGenerationConfig } from './config.js';
export { parseQuantizationConfig } from './quantization-config.js';
export type { QuantizationConfig } from './quantization-config.js';
export { dequantizingCheckpoint, AWQ_PACK_ORDER } from './quantized-checkpoint.js';
export type { QuantizedOrigin, UnpackedLinear } from './quantized-checkpoint.js';
export type { Qwen2Config, GenerationConfig } from './config.js';
export { openCheckpoint, parseIndex, INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
export type { Checkpoint, CheckpointTensor, ReadProgress } from './checkpoint.js';
export { memoryFile, blobFile } from './random-access.js';
export type { ModelFolder, RandomAccessFile } from './random-access.js';
export { openModelFolder, TOKENIZER_FILES } from './open-folder.js';
export type { LoadProgress, OpenedModel, TokenizerFileTexts } from './open-folder.js';
export { openModel } from './model.js';
export type { OpenModelOptions } from './model.js';
export type { BrowserCacheOptions } from './browser/cached-url-folder.js';
export { encodeSafetensors, safetensorsHeaderFor } from './safetensors-writer.js';
export { packGptqLinear, packAwqLinear } from './quantized-writer.js';
export type { QuantizedLinear } from './quantized-writer.js';
export type { TensorToWrite } from './safetensors-writer.js';
export { qwen2CheckpointLayout } from './qwen2-layout.js';
