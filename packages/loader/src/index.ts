/**
 * Safetensors (single and sharded), Hugging Face Hub download and cache, Qwen2 config parsing.
 * @packageDocumentation
 */
export { ConfigError, GgufError, HubError, ModelNotFoundError, RemoteFileError, SafetensorsError } from './errors.js';
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
export { readGgufHeader, MAX_GGUF_HEADER_BYTES } from './gguf/gguf-header.js';
export type { GgufHeader, GgufTensorInfo, GgufValue } from './gguf/gguf-header.js';
export { GGML_TYPES, ggmlType, ggmlTypeNamed, dequantizeGgml, kScale as ggmlKScale, kMin as ggmlKMin } from './gguf/ggml-quants.js';
export type { GgmlType } from './gguf/ggml-quants.js';
export { openGgufModel, ggufPartNames } from './gguf/open-gguf.js';
export { ggufCheckpoint } from './gguf/gguf-checkpoint.js';
export type { GgufPart } from './gguf/gguf-checkpoint.js';
export { qwen2ConfigFromGguf, qwen2GgufMetadata } from './gguf/gguf-qwen2-config.js';
export { tokenizerFilesFromGguf, ggufTokenizerMetadata, ggufVocabularyMetadata } from './gguf/gguf-tokenizer.js';
export { ggufGenerationConfig, ggufSamplingMetadata, GGUF_SAMPLING_KEYS, type GgufSamplingSetting } from './gguf/gguf-sampling.js';
export type { GgufVocabulary } from './gguf/gguf-tokenizer.js';
export { TOKEN_TYPE as GGUF_TOKEN_TYPE } from './gguf/gguf-qwen2-config.js';
export { encodeGguf, encodeGgufHeader } from './gguf/gguf-writer.js';
export type { GgufMetadataEntry, GgufScalar, GgufScalarType, GgufTensorToWrite } from './gguf/gguf-writer.js';
export { ggufTensorName, hfTensorName } from './gguf/qwen2-tensor-names.js';
