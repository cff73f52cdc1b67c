/**
 * Lets the host's event loop run (I/O, timers, worker messages) before the next token. CPU backends
 * resolve every op in microtasks, so without this a whole answer is generated before a Ctrl-C, a
 * client disconnect or a "stop" message from the page is even seen. Uses the cheapest macrotask each
 * platform offers: setImmediate in Node, scheduler.yield or a MessageChannel in browsers (setTimeout
 * would be clamped to 4 ms per token).
 */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown; scheduler?: { yield?: () => Promise<void> } };
  if (typeof g.setImmediate === 'function') return new Promise((resolve) => g.setImmediate!(resolve));
  if (typeof g.scheduler?.yield === 'function') return g.scheduler.yield();
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}
