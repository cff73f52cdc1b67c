/**
 * Giving the event loop a turn. A CPU backend can resolve every step of a generation with microtasks
 * only, which starves I/O: no keypress (Ctrl-C in the REPL), no socket `close` (a client that left), no
 * new request would be seen until the answer ends. Consumers of a generation stream call this per chunk.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
