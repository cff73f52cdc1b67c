import { describe, expect, it } from 'vitest';
import { Engine } from './worker/engine.js';
import { scriptedModel } from './worker/scripted-model.js';
import type { WorkerEvent, WorkerRequest } from './worker/protocol.js';
import { InferenceClient, WorkerError, type WorkerLike } from './worker-client.js';

/** The engine behind a stand-in worker; messages are structured-cloned both ways, as postMessage does. */
function connectedClient(ids: number[]) {
  const listeners: ((e: { data: WorkerEvent }) => void)[] = [];
  const log: string[] = [];
  let clock = 0;
  const engine = new Engine(
    {
      async loadModel(source, o) {
        o.onProgress({ phase: 'read', file: 'model.safetensors', loaded: 4, total: 4, overallLoaded: 4, overallTotal: 4 });
        if (source.kind === 'hub' && source.id === 'no/such') throw Object.assign(new Error('no/such: repository not found'), { name: 'ModelNotFoundError' });
        return { model: scriptedModel(ids, log), source: 'm' };
      },
      now: () => (clock += 1),
      yieldToEventLoop: () => new Promise((r) => setTimeout(r, 0)),
    },
    (e) => setTimeout(() => listeners.forEach((l) => l({ data: structuredClone(e) }))),
  );
  const worker: WorkerLike = {
    postMessage: (m: WorkerRequest) => setTimeout(() => engine.handle(structuredClone(m))),
    addEventListener: ((type: string, l: (e: { data: WorkerEvent }) => void) => {
      if (type === 'message') listeners.push(l);
    }) as WorkerLike['addEventListener'],
  };
  return new InferenceClient(worker);
}

const options = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, maxNewTokens: 4 };

describe('InferenceClient over the worker protocol', () => {
  it('loads with progress, streams tokens and resolves the reply stats', async () => {
    const client = connectedClient([3, 1, 4, 1, 5]);
    const progress: number[] = [];
    const load = await client.load({ kind: 'url', url: 'http://x/m' }, { backend: 'wasm', dtype: 'auto', threads: 1 }, (p) => progress.push(p.overallLoaded));
    expect((await load.done).layers).toBe(2);
    expect(progress).toEqual([4]);
    const tokens: number[] = [];
    const reply = client.chat([{ role: 'user', content: 'hi' }], options, (id) => tokens.push(id));
    const stats = await reply.done;
    expect(tokens).toEqual([3, 1, 4, 1]);
    expect(stats).toMatchObject({ ids: [3, 1, 4, 1], finishReason: 'length' });
  });
  it('stops a reply and rejects with the worker error\'s name', async () => {
    const client = connectedClient(Array.from({ length: 10_000 }, (_, i) => i));
    await expect((await client.load({ kind: 'hub', id: 'no/such' }, { backend: 'wasm', dtype: 'auto', threads: 1 }, () => {})).done).rejects.toMatchObject({
      name: 'ModelNotFoundError',
      message: 'no/such: repository not found',
    });
    await (await client.load({ kind: 'hub', id: 'a/b' }, { backend: 'wasm', dtype: 'auto', threads: 1 }, () => {})).done;
    let first!: () => void;
    const started = new Promise<void>((r) => (first = r));
    const reply = client.chat([{ role: 'user', content: 'hi' }], { ...options, maxNewTokens: 10_000 }, () => first());
    await started;
    await client.stop(reply.id);
    const stats = await reply.done;
    expect(stats.finishReason).toBe('abort');
    expect(stats.ids.length).toBeLessThan(10_000);
    expect(new WorkerError({ name: 'HubError', message: 'x' })).toMatchObject({ name: 'HubError' });
  });
});
