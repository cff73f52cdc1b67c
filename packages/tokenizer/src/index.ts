/**
 * Qwen2's byte-level BPE tokenizer, identical to Hugging Face's, with chat templates and streaming decode.
 * @packageDocumentation
 */
export { bytesToUnicode, unicodeToBytes } from './byte-level.js';
export { TokenizerError } from './errors.js';
export type { TokenizerFiles } from './load-files.js';
export type { ChatMessage } from './chat-template.js';
export type { StreamDecoder } from './stream-decoder.js';
export { Qwen2Tokenizer, type EncodeOptions, type DecodeOptions, type ChatTemplateOptions } from './tokenizer.js';
export { QWEN2_PRE_TOKENIZER_PATTERN, splitPieces } from './pre-tokenizer.js';
