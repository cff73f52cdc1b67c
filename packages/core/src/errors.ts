/** Thrown when tokens would not fit in a sequence's preallocated KV cache. */
export class ContextOverflowError extends Error {
  override name = 'ContextOverflowError';
  /**
   * @param used - tokens already in the cache
   * @param requested - tokens that were to be added
   * @param capacity - the cache's capacity in tokens
   */
  constructor(readonly used: number, readonly requested: number, readonly capacity: number) {
    super(`context is full: ${used} tokens in the cache + ${requested} new > capacity ${capacity} tokens (raise maxContext, or shorten the prompt)`);
  }
}

/** A checkpoint tensor is missing, has the wrong shape or an unsupported dtype. */
export class ModelWeightsError extends Error {
  override name = 'ModelWeightsError';
  constructor(readonly tensor: string, problem: string) {
    super(`tensor '${tensor}': ${problem}`);
  }
}

/** A weight format was asked for that the backend cannot store or the tensor cannot take. */
export class WeightFormatError extends Error {
  override name = 'WeightFormatError';
}

/** A backend object was used after it was freed, or an op got tensors of the wrong shape. */
export class BackendUsageError extends Error {
  override name = 'BackendUsageError';
}
