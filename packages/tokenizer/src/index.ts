/**
 * Qwen2's byte-level BPE tokenizer, identical to Hugging Face's.
 * @packageDocumentation
 */
export { bytesToUnicode, unicodeToBytes } from './byte-level.js';
