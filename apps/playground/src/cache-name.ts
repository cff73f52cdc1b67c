/** The Cache API cache the loader stores downloaded model files in (loader's DEFAULT_CACHE_NAME). */
export const MODEL_CACHE_NAME = 'qwen2-ts-models';
