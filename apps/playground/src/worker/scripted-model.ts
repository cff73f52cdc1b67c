/** Test helper (not shipped: only tests import it). */
import type { ChatModel, ChatStream } from './engine.js';

/**
 * A model that "generates" the ids it is given, honoring the abort signal the way core's stream does
 * (the result resolves with finishReason 'abort' and what was generated so far). With `microtasksOnly`
 * it never lets the event loop run between tokens, as core does with a CPU backend.
 */
export function scriptedModel(ids: number[], log: string[], { microtasksOnly = false } = {}): ChatModel {
  return {
    config: { numHiddenLayers: 2, hiddenSize: 64, vocabSize: 151936 },
    tokenizer: { hasChatTemplate: true },
    backend: { info: { name: 'wasm', device: '2 threads', threads: 2, formats: ['f32', 'bf16'] }, memory: () => ({ weights: 100, activations: 10, kvCache: 5 }) },
    weightsBytes: 100,
    weightFormat: 'bf16',
    chat(messages, options): ChatStream {
      log.push(`chat ${messages.map((m) => m.role).join(',')} t=${options.temperature}`);
      const out: number[] = [];
      let finish: 'stop' | 'length' | 'abort' = 'length';
      let resolve!: (r: Awaited<ChatStream['result']>) => void;
      const result = new Promise<Awaited<ChatStream['result']>>((r) => (resolve = r));
      return {
        result,
        async *[Symbol.asyncIterator]() {
          for (const id of ids.slice(0, options.maxNewTokens)) {
            await (microtasksOnly ? Promise.resolve() : new Promise((r) => setTimeout(r, 1)));
            if (options.signal?.aborted) {
              finish = 'abort';
              break;
            }
            out.push(id);
            yield { tokenId: id, text: `<${id}>` };
          }
          resolve({ ids: out, text: out.map((i) => `<${i}>`).join(''), finishReason: finish, promptTokens: 7, prefillTokensPerSecond: 70, decodeTokensPerSecond: 20, timeToFirstTokenMs: 12 });
        },
      };
    },
    async dispose() {
      log.push('dispose');
    },
  };
}

