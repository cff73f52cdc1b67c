/// <reference lib="webworker" />
/**
 * The inference worker (a module worker): runs the loader, the backend and core off the page's thread,
 * so the page stays responsive while a model loads or generates.
 */
import { Engine } from './engine.js';
import { loadModel } from './load-model.js';
import type { WorkerEvent, WorkerRequest } from './protocol.js';

const scope = self as unknown as DedicatedWorkerGlobalScope;

// A macrotask without setTimeout's 4 ms clamp for nested timers: a message to ourselves.
const channel = new MessageChannel();
let resume: (() => void) | undefined;
channel.port1.onmessage = () => {
  const r = resume;
  resume = undefined;
  r?.();
};
function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => {
    resume = r;
    channel.port2.postMessage(null);
  });
}

const engine = new Engine({ loadModel, now: () => performance.now(), yieldToEventLoop }, (e: WorkerEvent) => scope.postMessage(e));
scope.addEventListener('message', (e: MessageEvent<WorkerRequest>) => engine.handle(e.data));
