/** Test support (not part of the build). */

/** A minimal in-memory Cache API (Node 20 has none), enough for put/match/delete by URL. */
export function memoryCacheStorage(): CacheStorage & { entries: Map<string, { blob: Blob; status: number }> } {
  const entries = new Map<string, { blob: Blob; status: number }>();
  const key = (r: RequestInfo | URL) => (typeof r === 'string' ? r : r instanceof URL ? r.href : r.url);
  const cache = {
    async match(r: RequestInfo | URL) {
      const entry = entries.get(key(r));
      return entry && new Response(entry.status === 404 ? null : entry.blob, { status: entry.status });
    },
    async put(r: RequestInfo | URL, response: Response) {
      const blob = await response.blob(); // the whole body, or a rejection: nothing is stored half-way
      entries.set(key(r), { blob, status: response.status });
    },
    async delete(r: RequestInfo | URL) {
      return entries.delete(key(r));
    },
  };
  return { entries, open: async () => cache } as unknown as CacheStorage & { entries: Map<string, { blob: Blob; status: number }> };
}
