/** The browser cache the loader fills with downloaded model files: its size, and clearing it. */

export interface CacheUsage {
  /** Bytes of the cached files. */
  bytes: number;
  files: number;
}

/**
 * Sums the sizes of the cached files (Blob sizes are known without reading the bodies).
 * @param cacheName - the loader's Cache API cache
 */
export async function cacheUsage(cacheName: string, storage: CacheStorage = caches): Promise<CacheUsage> {
  if (!(await storage.has(cacheName))) return { bytes: 0, files: 0 };
  const cache = await storage.open(cacheName);
  let bytes = 0;
  let files = 0;
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    if (!response) continue;
    bytes += (await response.blob()).size;
    files++;
  }
  return { bytes, files };
}

/** Deletes the loader's cache; the next load downloads again. */
export async function clearCache(cacheName: string, storage: CacheStorage = caches): Promise<void> {
  await storage.delete(cacheName);
}
