import { BackendUsageError, checkKVCacheSpec, kvValueBytes, type KVCacheDtype, type KVCacheSpec } from '@qwen2-ts/core';
import { WebGPUDeviceError } from './errors.js';
import { MAX_HEAD_DIM } from './wgsl/attention.js';

/**
 * Checks a cache spec against what the kernels and the device take, and returns its storage and the
 * bytes of one layer's keys (its values take as many). Each layer's keys are one binding of the attention
 * kernels, so they must fit `maxBinding` (the device's maxStorageBufferBindingSize): an f16 cache fits
 * twice the tokens of an f32 one.
 * @throws BackendUsageError where core's checkKVCacheSpec does, for a head size over MAX_HEAD_DIM, and for
 * an odd head size in an f16 cache (its words pair dimension i with i + headDim/2)
 * @throws WebGPUDeviceError when one layer's keys exceed `maxBinding`
 */
export function planKVCache(spec: KVCacheSpec, maxBinding: number): { dtype: KVCacheDtype; layerBytes: number } {
  const { dtype } = checkKVCacheSpec(spec);
  if (spec.headDim > MAX_HEAD_DIM) throw new BackendUsageError(`createKVCache: headDim ${spec.headDim} exceeds the ${MAX_HEAD_DIM} the attention kernel supports`);
  if (dtype === 'f16' && spec.headDim % 2 !== 0) {
    throw new BackendUsageError(`createKVCache: an f16 cache needs an even headDim (it stores dimensions i and i + headDim/2 in one 32-bit word), got ${spec.headDim}`);
  }
  const layerBytes = spec.kvHeads * spec.headDim * spec.maxTokens * kvValueBytes(dtype);
  if (layerBytes > maxBinding) {
    throw new WebGPUDeviceError(`createKVCache: ${spec.maxTokens} tokens need ${layerBytes} bytes per layer for ${dtype} keys, over the device's maxStorageBufferBindingSize of ${maxBinding} bytes (lower maxContext)`, 'maxStorageBufferBindingSize');
  }
  return { dtype, layerBytes };
}
