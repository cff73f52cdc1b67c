/**
 * Messages between the page and the inference worker. Everything here is structured-cloneable. Every
 * request carries an `id`; the worker's events for it carry the same id, and each request ends with
 * exactly one `done` or `error` event.
 */
import type { ModelSource } from '../model-source.js';
import type { PromptMessage } from '../conversation.js';
import type { ProgressEvent } from '../progress.js';
import type { SamplingOptions } from '../settings.js';

export type BackendKind = 'webgpu' | 'wasm';
/** core's `DtypeOption`: 'auto' picks the checkpoint's own format where the backend stores it. */
export type WeightDtype = 'auto' | 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k';
export const WEIGHT_DTYPES: readonly WeightDtype[] = ['auto', 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'];
/** core's `KVCacheDtype`. */
export type KVCacheKind = 'f32' | 'f16';
export const KV_CACHE_KINDS: readonly KVCacheKind[] = ['f32', 'f16'];

export interface LoadRequest {
  type: 'load';
  id: number;
  source: ModelSource;
  backend: BackendKind;
  dtype: WeightDtype;
  /** WASM threads (1 without cross-origin isolation). */
  threads: number;
  /** How the KV cache stores keys and values (core's `kvCacheDtype`; default f32). */
  kvCache?: KVCacheKind;
}
export interface ChatRequest {
  type: 'chat';
  id: number;
  messages: PromptMessage[];
  options: SamplingOptions;
}
/** Aborts request `target` (a load or a chat); answered by that request's own end event. */
export interface StopRequest {
  type: 'stop';
  id: number;
  target: number;
}
export interface UnloadRequest {
  type: 'unload';
  id: number;
}
export type WorkerRequest = LoadRequest | ChatRequest | StopRequest | UnloadRequest;

/** Memory the backend holds, in bytes. */
export interface MemoryUse {
  weights: number;
  activations: number;
  kvCache: number;
}

/** What a finished load reports. */
export interface LoadedInfo {
  source: string;
  backend: { name: string; device: string; threads?: number; formats: readonly string[] };
  weightsBytes: number;
  /** The matrices' storage format on the backend. */
  weightFormat: string;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  hasChatTemplate: boolean;
  memory: MemoryUse;
  loadMs: number;
}

/** The final numbers of one reply (core's GenerationResult, minus the text the page already has). */
export interface ReplyStats {
  ids: number[];
  text: string;
  finishReason: 'stop' | 'length' | 'abort';
  promptTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  timeToFirstTokenMs: number;
  memory: MemoryUse;
}

export interface SerializedError {
  name: string;
  message: string;
}

export type WorkerEvent =
  | { type: 'progress'; id: number; progress: ProgressEvent }
  | { type: 'token'; id: number; tokenId: number; text: string; /** ms since the request arrived */ at: number }
  | { type: 'done'; id: number; loaded?: LoadedInfo; reply?: ReplyStats }
  | { type: 'error'; id: number; error: SerializedError };

/** Turns anything thrown into a message the page can show (typed errors keep their class name). */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) return { name: e.name, message: e.message };
  if (e instanceof DOMException) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}
