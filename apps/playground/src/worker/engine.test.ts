import { describe, expect, it } from 'vitest';
import { Engine, type EngineDeps } from './engine.js';
import { scriptedModel } from './scripted-model.js';
import type { WorkerEvent } from './protocol.js';

function setup(ids = [5, 6, 7, 8], microtasksOnly = false) {
  const events: WorkerEvent[] = [];
  const log: string[] = [];
  let clock = 0;
  const deps: EngineDeps = {
    async loadModel(source, o) {
      log.push(`load ${source.kind} ${o.backend} ${o.dtype}${o.kvCache ? ` kv=${o.kvCache}` : ''} threads=${o.threads}`);
      o.onProgress({ phase: 'download', file: 'model.safetensors', loaded: 10, total: 10, overallLoaded: 10, overallTotal: 10 });
      if (source.kind === 'url' && source.url.endsWith('/missing')) throw Object.assign(new Error('no config.json'), { name: 'ModelNotFoundError' });
      return { model: scriptedModel(ids, log, { microtasksOnly }), source: source.kind === 'url' ? source.url : 'x' };
    },
    now: () => (clock += 5),
    yieldToEventLoop: () => new Promise((r) => setTimeout(r, 0)),
  };
  const engine = new Engine(deps, (e) => events.push(e));
  const ended = (id: number) =>
    new Promise<WorkerEvent>((resolve) => {
      const poll = () => {
        const e = events.find((x) => x.id === id && (x.type === 'done' || x.type === 'error'));
        if (e) resolve(e);
        else setTimeout(poll, 1);
      };
      poll();
    });
  return { engine, events, log, ended };
}

const options = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, maxNewTokens: 3 };

describe('inference worker engine', () => {
  it('loads, reports progress and info, then streams a reply and its stats', async () => {
    const { engine, events, log, ended } = setup();
    engine.handle({ type: 'load', id: 1, source: { kind: 'url', url: 'http://127.0.0.1:1/m' }, backend: 'wasm', dtype: 'auto', threads: 2 });
    const loaded = await ended(1);
    expect(events[0]).toMatchObject({ type: 'progress', id: 1, progress: { overallLoaded: 10 } });
    expect(loaded).toMatchObject({ type: 'done', loaded: { source: 'http://127.0.0.1:1/m', layers: 2, hasChatTemplate: true, backend: { name: 'wasm', threads: 2 }, memory: { weights: 100 } } });
    engine.handle({ type: 'chat', id: 2, messages: [{ role: 'user', content: 'hi' }], options });
    const done = await ended(2);
    expect(events.filter((e) => e.type === 'token' && e.id === 2).map((e) => (e as { tokenId: number }).tokenId)).toEqual([5, 6, 7]);
    expect(done).toMatchObject({ type: 'done', reply: { ids: [5, 6, 7], finishReason: 'length', promptTokens: 7, timeToFirstTokenMs: 12, memory: { kvCache: 5 } } });
    expect(log).toEqual(['load url wasm auto threads=2', 'chat user t=0']);
  });

  it.each([false, true])('stops a streaming reply: the chat ends with finishReason abort and keeps the tokens so far (model yields only microtasks: %s)', async (microtasksOnly) => {
    const { engine, events, ended } = setup(Array.from({ length: 1000 }, (_, i) => i), microtasksOnly);
    engine.handle({ type: 'load', id: 1, source: { kind: 'hub', id: 'Qwen/Qwen2-0.5B-Instruct' }, backend: 'webgpu', dtype: 'f16', threads: 1 });
    await ended(1);
    engine.handle({ type: 'chat', id: 2, messages: [{ role: 'user', content: 'hi' }], options: { ...options, maxNewTokens: 1000 } });
    while (!events.some((e) => e.type === 'token')) await new Promise((r) => setTimeout(r, 1));
    engine.handle({ type: 'stop', id: 3, target: 2 });
    const done = await ended(2);
    expect(done.type).toBe('done');
    const reply = (done as Extract<WorkerEvent, { type: 'done' }>).reply!;
    expect(reply.finishReason).toBe('abort');
    expect(reply.ids.length).toBeGreaterThan(0);
    expect(reply.ids.length).toBeLessThan(1000);
    expect(await ended(3)).toMatchObject({ type: 'done' });
  });

  it('thins out progress events but always sends each file\'s last one', async () => {
    const events: WorkerEvent[] = [];
    let clock = 0;
    const engine = new Engine(
      {
        async loadModel(_source, o) {
          for (let loaded = 1; loaded <= 100; loaded++) {
            clock += 1; // 1 ms per chunk: only every 50th is sent, and the last
            o.onProgress({ phase: 'download', file: 'model.safetensors', loaded, total: 100, overallLoaded: loaded, overallTotal: 100 });
          }
          return { model: scriptedModel([], []), source: 'm' };
        },
        now: () => clock,
        yieldToEventLoop: () => new Promise((r) => setTimeout(r, 0)),
      },
      (e) => events.push(e),
    );
    engine.handle({ type: 'load', id: 1, source: { kind: 'hub', id: 'a/b' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    while (!events.some((e) => e.type === 'done')) await new Promise((r) => setTimeout(r, 1));
    expect(events.filter((e) => e.type === 'progress').map((e) => (e as { progress: { loaded: number } }).progress.loaded)).toEqual([1, 51, 100]);
  });

  it('cancels a load: the loader sees the abort, or a model finished meanwhile is freed', async () => {
    const events: WorkerEvent[] = [];
    const log: string[] = [];
    const engine = new Engine(
      {
        async loadModel(source, o) {
          if (source.kind === 'hub' && source.id === 'slow/loader') {
            await new Promise((_, reject) => o.signal.addEventListener('abort', () => reject(o.signal.reason)));
          }
          // 'late/finish': the load completes although the stop arrived while it ran.
          await new Promise((r) => setTimeout(r, 20));
          return { model: scriptedModel([], log), source: 'm' };
        },
        now: () => 0,
        yieldToEventLoop: () => new Promise((r) => setTimeout(r, 0)),
      },
      (e) => events.push(e),
    );
    const end = async (id: number) => {
      while (!events.some((e) => e.id === id && (e.type === 'done' || e.type === 'error'))) await new Promise((r) => setTimeout(r, 1));
      return events.find((e) => e.id === id && (e.type === 'done' || e.type === 'error'))!;
    };
    engine.handle({ type: 'load', id: 1, source: { kind: 'hub', id: 'slow/loader' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    await new Promise((r) => setTimeout(r, 5));
    engine.handle({ type: 'stop', id: 2, target: 1 });
    expect(await end(1)).toMatchObject({ type: 'error', error: { name: 'AbortError', message: 'stopped by the user' } });
    engine.handle({ type: 'load', id: 3, source: { kind: 'hub', id: 'late/finish' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    await new Promise((r) => setTimeout(r, 5));
    engine.handle({ type: 'stop', id: 4, target: 3 });
    expect(await end(3)).toMatchObject({ type: 'error', error: { name: 'AbortError' } });
    expect(log).toEqual(['dispose']);
    // A load still waiting in the queue when stopped never starts.
    engine.handle({ type: 'load', id: 7, source: { kind: 'hub', id: 'late/finish' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    engine.handle({ type: 'stop', id: 8, target: 7 });
    expect(await end(7)).toMatchObject({ type: 'error', error: { name: 'AbortError' } });
    expect(log).toEqual(['dispose']);
    engine.handle({ type: 'chat', id: 5, messages: [{ role: 'user', content: 'hi' }], options });
    expect(await end(5)).toMatchObject({ type: 'error', error: { name: 'NoModelError' } });
  });

  it('answers errors as events: no model yet, and a failed load', async () => {
    const { engine, ended, log } = setup();
    engine.handle({ type: 'chat', id: 1, messages: [{ role: 'user', content: 'hi' }], options });
    expect(await ended(1)).toEqual({ type: 'error', id: 1, error: { name: 'NoModelError', message: 'load a model first' } });
    engine.handle({ type: 'load', id: 2, source: { kind: 'url', url: 'http://127.0.0.1:1/missing' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    expect(await ended(2)).toEqual({ type: 'error', id: 2, error: { name: 'ModelNotFoundError', message: 'no config.json' } });
    expect(log).toEqual(['load url wasm auto threads=1']);
  });

  it('disposes the previous model before loading another, and on unload', async () => {
    const { engine, ended, log } = setup();
    engine.handle({ type: 'load', id: 1, source: { kind: 'hub', id: 'a/b' }, backend: 'wasm', dtype: 'auto', threads: 1 });
    engine.handle({ type: 'load', id: 2, source: { kind: 'hub', id: 'a/c' }, backend: 'wasm', dtype: 'q8_0', kvCache: 'f16', threads: 1 });
    engine.handle({ type: 'unload', id: 3 });
    await ended(3);
    expect(log).toEqual(['load hub wasm auto threads=1', 'dispose', 'load hub wasm q8_0 kv=f16 threads=1', 'dispose']);
  });
});
