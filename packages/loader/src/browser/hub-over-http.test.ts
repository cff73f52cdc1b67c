// The browser Hub path (resolve URLs + Cache API), driven in Node against the loopback Hub with an
// in-memory Cache API: the same code a page runs when given 'owner/name'.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RemoteFileError } from '../errors.js';
import { openHubOverHttp, openModel } from '../model.js';
import { memoryCacheStorage } from '../test-support/memory-cache.js';
import { startMockHub, type MockHub } from '../test-support/mock-hub.js';

const MODELS = fileURLToPath(new URL('../../../../fixtures/models/', import.meta.url));
const read = (path: string) => new Uint8Array(readFileSync(path));
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const files = { 'config.json': read(`${MODELS}tiny-bf16-untied/config.json`), 'model.safetensors': read(`${MODELS}tiny-bf16-untied/model.safetensors`) };
let hub: MockHub;

/** Every tensor of `model` has the bytes of the local fixture's; closes `model`. */
async function expectLocalTensors(model: Awaited<ReturnType<typeof openModel>>): Promise<void> {
  const local = await openModel(`${MODELS}tiny-bf16-untied`);
  try {
    for (const n of local.checkpoint.tensors.keys()) expect(sameBytes(await model.checkpoint.read(n), await local.checkpoint.read(n)), n).toBe(true);
  } finally {
    await model.close();
    await local.close();
  }
}

beforeAll(async () => {
  hub = await startMockHub({ 'acme/open': { files, commit: 'e'.repeat(40) }, 'acme/gated': { files, commit: 'f'.repeat(40), gatedToken: 'hf_secret' } });
});
afterAll(() => hub.close());

describe('the Hub over HTTP with the Cache API (browser path)', () => {
  it('downloads through the resolve URLs and the CDN redirect once, then serves from the cache', async () => {
    const storage = memoryCacheStorage();
    hub.log.length = 0;
    const model = await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage } });
    expect(model.source).toBe('acme/open@main');
    await expectLocalTensors(model);
    expect(hub.log.some((r) => r.method === 'GET' && r.path.startsWith('/cdn/'))).toBe(true);
    hub.log.length = 0;
    await (await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage } })).close();
    expect(hub.log).toEqual([]);
  });

  it('sends the token for a gated model, and says what to do without one', async () => {
    const storage = memoryCacheStorage();
    const error = await openHubOverHttp('acme/gated', { endpoint: hub.endpoint, browserCache: { storage } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFileError);
    expect((error as Error).message).toBe(`${hub.endpoint}/acme/gated/resolve/main/config.json: HTTP 401 (access refused: for a gated or private Hugging Face model pass a token with access)`);
    hub.log.length = 0;
    const model = await openHubOverHttp('acme/gated@' + 'f'.repeat(40), { endpoint: hub.endpoint, token: 'hf_secret', browserCache: { storage } });
    expect(model.checkpoint.tensors.size).toBe(3 * 12 + 3);
    await model.close();
    expect(hub.log.filter((r) => r.path.includes('/resolve/')).every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
  });

  // A private window's quota, a full disk or disabled storage must not stop the page from loading the
  // model: it is read with Range requests instead, and a warning says why it will download again.
  it.each([
    ['put', 'QuotaExceededError'], ['put', 'UnknownError'], ['open', 'SecurityError'],
  ] as const)('reads the model without the cache when the cache\'s %s fails with %s', async (where, name) => {
    const storage = memoryCacheStorage();
    const cache = await storage.open('x');
    const refuse = async () => { throw new DOMException(`refused by the test (${name})`, name); };
    if (where === 'put') cache.put = refuse;
    else storage.open = refuse;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    hub.log.length = 0;
    try {
      const model = await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage } });
      await expectLocalTensors(model);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(new RegExp(`^qwen2-ts: acme/open@main: the browser cache .*\\(${name}: refused by the test .*reading the model over the network without caching it`));
      expect(hub.log.some((r) => r.path.startsWith('/cdn/') && r.range?.startsWith('bytes='))).toBe(true);
    } finally {
      warn.mockRestore();
    }
  });

  it('asks the storage estimate first: weights that cannot fit are never downloaded into the cache', async () => {
    const storage = memoryCacheStorage();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const fullDownloads = () => hub.log.filter((r) => r.method === 'GET' && r.path.startsWith('/cdn/') && !r.range);
    hub.log.length = 0;
    try {
      const estimate = async () => ({ quota: 10_000, usage: 9_000 });
      const model = await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage, estimate } });
      await expectLocalTensors(model);
      expect(fullDownloads()).toEqual([]);
      expect(warn).toHaveBeenCalledTimes(1);
      const size = files['model.safetensors'].byteLength;
      expect(String(warn.mock.calls[0]![0])).toContain(`acme/open@main: the browser cache has room for 1000 bytes and model.safetensors needs ${(size / 2 ** 20).toFixed(1)} MiB (QuotaExceededError: storage quota 10000 bytes, 9000 bytes used)`);

      // Room enough, or no estimate to be had: the weights are downloaded once and cached.
      for (const roomy of [async () => ({ quota: 1e12, usage: 0 }), async () => { throw new Error('no estimate'); }, async () => ({})]) {
        const fresh = memoryCacheStorage();
        hub.log.length = 0;
        await (await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage: fresh, estimate: roomy } })).close();
        expect(fullDownloads()).toHaveLength(1);
        hub.log.length = 0;
        await (await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage: fresh, estimate: roomy } })).close();
        expect(hub.log).toEqual([]);
      }
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it('does not mistake a download that breaks off for a full cache', async () => {
    const storage = memoryCacheStorage();
    const cache = await storage.open('x');
    cache.put = async () => { throw new TypeError('network error'); };
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      await expect(openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: { storage } })).rejects.toThrow(/network error/);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it('without a Cache API reads tensors with Range requests on the CDN', async () => {
    hub.log.length = 0;
    const model = await openHubOverHttp('acme/open', { endpoint: hub.endpoint, browserCache: false });
    const bytes = await model.checkpoint.read('model.norm.weight');
    await model.close();
    expect(bytes.byteLength).toBe(128 * 2);
    expect(hub.log.filter((r) => r.path.startsWith('/cdn/')).every((r) => r.range?.startsWith('bytes='))).toBe(true);
  });
});
