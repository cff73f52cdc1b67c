/**
 * The Qwen2 model graph, the backend kernel interface, KV cache, sampling, generation and chat.
 * @packageDocumentation
 */
export { argmax } from './argmax.js';
