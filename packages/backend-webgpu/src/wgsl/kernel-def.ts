import type { Fields } from './common.js';

/** Kinds of storage binding after the activations: read-only or read-write. */
export type ExtraBinding = 'ro' | 'rw';

/** Everything needed to build (and cache) one compute pipeline and its bind group layout. */
export interface KernelDef {
  /** Unique per WGSL source; the pipeline cache key. */
  readonly key: string;
  readonly code: string;
  readonly fields: Fields;
  /** Number of distinct activation buffers (bindings 1..acts, all read-write). */
  readonly acts: number;
  /** Storage bindings after the activations, in order. */
  readonly extras: readonly ExtraBinding[];
}
