// The Hub client against a loopback server that speaks the Hub's resolve protocol (see test-support/mock-hub.ts).
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubError, ModelNotFoundError } from '../errors.js';
import { openModel } from '../model.js';
import type { LoadProgress } from '../open-folder.js';
import { sha256, startMockHub, type MockHub } from '../test-support/mock-hub.js';
import { fetchHubSnapshot } from './hub.js';

const MODELS = fileURLToPath(new URL('../../../../fixtures/models/', import.meta.url));
const CONFIGS = fileURLToPath(new URL('../../../../fixtures/configs/', import.meta.url));
const read = (path: string) => new Uint8Array(readFileSync(path));
const COMMIT = 'a'.repeat(40);
const GATED_COMMIT = 'b'.repeat(40);

const sharded = {
  'config.json': read(`${MODELS}tiny-f16-sharded/config.json`),
  'model.safetensors.index.json': read(`${MODELS}tiny-f16-sharded/model.safetensors.index.json`),
  'model-00001-of-00002.safetensors': read(`${MODELS}tiny-f16-sharded/model-00001-of-00002.safetensors`),
  'model-00002-of-00002.safetensors': read(`${MODELS}tiny-f16-sharded/model-00002-of-00002.safetensors`),
  'generation_config.json': read(`${CONFIGS}Qwen2-0.5B-Instruct/generation_config.json`),
  'tokenizer_config.json': read(`${CONFIGS}Qwen2-0.5B-Instruct/tokenizer_config.json`),
  'vocab.json': new TextEncoder().encode('{"a": 0}'),
  'merges.txt': new TextEncoder().encode('#version: 0.2\n'),
};
const single = {
  'config.json': read(`${MODELS}tiny-bf16-untied/config.json`),
  'model.safetensors': read(`${MODELS}tiny-bf16-untied/model.safetensors`),
};

let hub: MockHub;
let cacheDir: string;
const scratch = mkdtempSync(join(tmpdir(), 'qwen2-loader-hub-'));
const savedEnv = { ...process.env };

beforeAll(async () => {
  hub = await startMockHub({
    'acme/tiny': { files: sharded, commit: COMMIT },
    'acme/gated': { files: single, commit: GATED_COMMIT, gatedToken: 'hf_secret' },
    'acme/no-weights': { files: { 'config.json': single['config.json'] }, commit: 'c'.repeat(40) },
    'acme/bin-only': { files: { 'pytorch_model.bin': new Uint8Array(8) }, commit: 'd'.repeat(40) },
  });
});
afterAll(async () => {
  await hub.close();
  rmSync(scratch, { recursive: true, force: true });
});
let run = 0;
// No real HF_* settings leak in, and none leak out of a test.
afterEach(() => {
  process.env = { ...savedEnv };
});
const freshCache = () => {
  cacheDir = join(scratch, `cache-${run++}`);
  for (const k of ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_HOME', 'HF_HUB_CACHE', 'HF_ENDPOINT', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH']) delete process.env[k];
  process.env.HF_HOME = join(scratch, 'no-home'); // no token file
  hub.log.length = 0;
  return cacheDir;
};
// Byte-for-byte comparison (vitest's deep equality walks typed arrays element by element: too slow here).
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const gets = () => hub.log.filter((r) => r.method === 'GET');

/** An endpoint nobody listens on (connection refused). */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

async function expectSameTensors(opened: Awaited<ReturnType<typeof openModel>>, dir: string) {
  const local = await openModel(dir);
  try {
    expect([...opened.checkpoint.tensors.keys()].sort()).toEqual([...local.checkpoint.tensors.keys()].sort());
    for (const name of local.checkpoint.tensors.keys()) expect(sameBytes(await opened.checkpoint.read(name), await local.checkpoint.read(name)), name).toBe(true);
  } finally {
    await local.close();
  }
}

describe('Hub download into the huggingface_hub cache layout', () => {
  it('downloads a sharded model, follows the CDN redirect, and lays the cache out like huggingface_hub', async () => {
    freshCache();
    const progress: LoadProgress[] = [];
    const model = await openModel('acme/tiny', { endpoint: hub.endpoint, cacheDir, onProgress: (p) => progress.push(p) });
    try {
      expect(model.source).toBe('acme/tiny@main');
      expect(model.config.hiddenSize).toBe(96);
      expect(model.generationConfig?.eosTokenIds).toEqual([151645, 151643]);
      expect(model.tokenizerFiles).toEqual({ tokenizerConfigJson: new TextDecoder().decode(sharded['tokenizer_config.json']), vocabJson: '{"a": 0}', mergesTxt: '#version: 0.2\n' });
      await expectSameTensors(model, `${MODELS}tiny-f16-sharded`);
    } finally {
      await model.close();
    }
    const root = join(cacheDir, 'models--acme--tiny');
    expect(readFileSync(join(root, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    const shard = 'model-00001-of-00002.safetensors';
    const link = join(root, 'snapshots', COMMIT, shard);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(join('..', '..', 'blobs', sha256(sharded[shard])));
    expect(readdirSync(join(root, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
    expect(readdirSync(join(root, 'blobs'))).toHaveLength(Object.keys(sharded).length);
    expect(existsSync(join(root, '.no_exist', COMMIT, 'tokenizer.json'))).toBe(true);
    // The LFS GETs went through the redirect to the CDN path; files after the first were fetched at the pinned commit.
    expect(gets().filter((r) => r.path.startsWith('/cdn/'))).toHaveLength(2);
    expect(hub.log.some((r) => r.path === `/acme/tiny/resolve/${COMMIT}/model-00002-of-00002.safetensors`)).toBe(true);
    // Progress: per file it grows to the file size; overall it ends at the total of the downloads.
    const downloads = progress.filter((p) => p.phase === 'download');
    const last = downloads[downloads.length - 1];
    expect(last.overallLoaded).toBe(last.overallTotal);
    const shardEvents = downloads.filter((p) => p.file === shard);
    expect(shardEvents[shardEvents.length - 1].loaded).toBe(sharded[shard].byteLength);
    expect(progress.some((p) => p.phase === 'read')).toBe(true);
  });

  it('reuses the cache: a second open makes HEAD requests only, no body downloads', async () => {
    freshCache();
    await (await openModel('acme/tiny', { endpoint: hub.endpoint, cacheDir })).close();
    expect(gets().length).toBeGreaterThan(0);
    hub.log.length = 0;
    const again = await openModel('acme/tiny', { endpoint: hub.endpoint, cacheDir });
    await again.close();
    expect(hub.log.length).toBeGreaterThan(0);
    expect(gets()).toEqual([]);
  });

  it('serves HF_HUB_OFFLINE=1 from the cache without any request, and says clearly when the model is not cached', async () => {
    freshCache();
    process.env.HF_HUB_CACHE = cacheDir;
    process.env.HF_ENDPOINT = hub.endpoint;
    await (await openModel('acme/tiny')).close();
    hub.log.length = 0;
    process.env.HF_HUB_OFFLINE = '1';
    const model = await openModel('acme/tiny');
    try {
      expect(hub.log).toEqual([]);
      await expectSameTensors(model, `${MODELS}tiny-f16-sharded`);
    } finally {
      await model.close();
    }
    const error = await openModel('acme/other').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as Error).message).toMatch(/acme\/other@main is not in the Hugging Face cache at .*models--acme--other and HF_HUB_OFFLINE is set/);
    expect(hub.log).toEqual([]);
  });

  it('resumes a download whose connection dropped mid-body, with a Range request, and verifies sha256', async () => {
    freshCache();
    const shard = 'model-00002-of-00002.safetensors';
    hub.dropNext.set(shard, 2);
    try {
      const model = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, retry: { attempts: 4, delayMs: 1 } });
      const cdn = gets().filter((r) => r.path === `/cdn/${sha256(sharded[shard])}`);
      // First attempt from 0; each retry asks only for the bytes after what is already on disk.
      expect(cdn).toHaveLength(3);
      expect(cdn[0].range).toBeUndefined();
      const starts = cdn.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1]));
      expect(starts[0]).toBeGreaterThan(0);
      expect(starts[1]).toBeGreaterThan(starts[0]);
      expect(starts[1]).toBeLessThan(sharded[shard].byteLength);
      expect(sameBytes(readFileSync(join(model.dir, shard)), sharded[shard])).toBe(true);
    } finally {
      hub.dropNext.clear();
    }
  });

  it('downloads a large file as chunks over several connections, written in order, asking the Hub once', async () => {
    freshCache();
    hub.slowMs = 1;
    hub.mostInFlight = 0;
    try {
      const progress: number[] = [];
      const snapshot = await fetchHubSnapshot('acme/tiny', {
        endpoint: hub.endpoint, cacheDir, downloadConnections: 4, downloadChunkBytes: 40_000,
        onProgress: (p) => { if (p.file === 'model-00001-of-00002.safetensors') progress.push(p.loaded); },
      });
      for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'] as const) {
        const size = sharded[shard].byteLength;
        expect(sameBytes(readFileSync(join(snapshot.dir, shard)), sharded[shard])).toBe(true);
        // One request through the Hub (redirected to the CDN), then the other chunks straight from the CDN.
        expect(gets().filter((r) => r.path === `/acme/tiny/resolve/${COMMIT}/${shard}`)).toHaveLength(1);
        const ranges = gets().filter((r) => r.path === `/cdn/${sha256(sharded[shard])}`).map((r) => r.range);
        const chunks = Math.ceil(size / 40_000);
        expect(ranges).toHaveLength(chunks);
        expect(new Set(ranges)).toEqual(new Set(Array.from({ length: chunks }, (_, i) => `bytes=${i * 40_000}-${Math.min(size, (i + 1) * 40_000) - 1}`)));
      }
      expect(hub.mostInFlight).toBeGreaterThan(1);
      expect(hub.mostInFlight).toBeLessThanOrEqual(5); // the first chunk, then 4 at a time
      expect(progress.at(-1)).toBe(sharded['model-00001-of-00002.safetensors'].byteLength);
      expect(progress.every((v, i) => i === 0 || v >= progress[i - 1]!)).toBe(true);
    } finally {
      hub.slowMs = 0;
    }
  });

  it('resumes a parallel download from the chunks written before one that broke off', async () => {
    freshCache();
    const shard = 'model-00002-of-00002.safetensors';
    hub.dropRangeAt.set(shard, 120_000);
    const snapshot = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, downloadConnections: 3, downloadChunkBytes: 40_000, retry: { attempts: 3, delayMs: 1 } });
    expect(hub.dropRangeAt.size).toBe(0); // the drop happened
    expect(sameBytes(readFileSync(join(snapshot.dir, shard)), sharded[shard])).toBe(true);
    // The second attempt starts where the written prefix ends: at the chunk that broke off.
    const starts = gets().filter((r) => r.path === `/cdn/${sha256(sharded[shard])}`).map((r) => Number(/^bytes=(\d+)-/.exec(r.range!)![1]));
    expect(starts.filter((s) => s === 120_000)).toHaveLength(2);
    expect(starts.filter((s) => s === 0)).toHaveLength(1);
  });

  it('aborting a parallel download keeps a prefix of the file, which the next download resumes', async () => {
    freshCache();
    hub.slowMs = 5;
    const controller = new AbortController();
    try {
      const pending = fetchHubSnapshot('acme/tiny', {
        endpoint: hub.endpoint, cacheDir, signal: controller.signal, downloadConnections: 4, downloadChunkBytes: 40_000,
        onProgress: (p) => { if (p.file.endsWith('.safetensors') && p.loaded >= 80_000) controller.abort(); },
      });
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      hub.slowMs = 0;
    }
    const blobs = join(cacheDir, 'models--acme--tiny', 'blobs');
    const partial = readdirSync(blobs).filter((f) => f.endsWith('.incomplete'));
    expect(partial).toHaveLength(1);
    const bytes = new Uint8Array(readFileSync(join(blobs, partial[0]!)));
    const whole = Object.values(sharded).find((b) => sha256(b) === partial[0]!.replace('.incomplete', ''))!;
    expect(bytes.byteLength).toBeGreaterThanOrEqual(80_000);
    expect(sameBytes(bytes, whole.subarray(0, bytes.byteLength))).toBe(true);
    hub.log.length = 0;
    const snapshot = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, downloadConnections: 4, downloadChunkBytes: 40_000 });
    expect(gets().some((r) => r.range?.startsWith(`bytes=${bytes.byteLength}-`))).toBe(true);
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'] as const) {
      expect(sameBytes(readFileSync(join(snapshot.dir, shard)), sharded[shard])).toBe(true);
    }
  });

  it('downloads over one connection from a server that ignores Range, or when asked to', async () => {
    for (const [ignoreRange, connections] of [[true, 8], [false, 1]] as const) {
      freshCache();
      hub.ignoreRange = ignoreRange;
      try {
        const snapshot = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, downloadConnections: connections, downloadChunkBytes: 40_000 });
        const shard = 'model-00001-of-00002.safetensors';
        expect(sameBytes(readFileSync(join(snapshot.dir, shard)), sharded[shard])).toBe(true);
        expect(gets().filter((r) => r.path === `/cdn/${sha256(sharded[shard])}`)).toHaveLength(1);
      } finally {
        hub.ignoreRange = false;
      }
    }
  });

  it('asks again when the Hub answers 503, and reports a Hub that keeps failing', async () => {
    freshCache();
    hub.unavailable = 2;
    const snapshot = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, retry: { attempts: 3, delayMs: 1 } });
    expect(snapshot.commit).toBe(COMMIT);
    expect(hub.log.slice(0, 3).map((r) => r.path)).toEqual(Array(3).fill('/acme/tiny/resolve/main/config.json'));
    freshCache();
    hub.unavailable = 3;
    const error = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, retry: { attempts: 3, delayMs: 1 } }).catch((e: unknown) => e);
    hub.unavailable = 0;
    expect(error).toBeInstanceOf(HubError);
    expect(error).toMatchObject({ status: 503, message: `${hub.endpoint} answered HTTP 503 for acme/tiny@main/config.json` });
  });

  it('lets two concurrent opens of one model share each download (one GET per blob)', async () => {
    freshCache();
    hub.slowMs = 2;
    try {
      const [a, b] = await Promise.all([1, 2].map(() => fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir })));
      expect(a.dir).toBe(b.dir);
    } finally {
      hub.slowMs = 0;
    }
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'] as const) {
      expect(gets().filter((r) => r.path === `/cdn/${sha256(sharded[shard])}`)).toHaveLength(1);
      expect(sameBytes(readFileSync(join(cacheDir, 'models--acme--tiny', 'snapshots', COMMIT, shard)), sharded[shard])).toBe(true);
    }
    expect(readdirSync(join(cacheDir, '.locks', 'models--acme--tiny'))).toEqual([]);
  });

  it('never leaves a corrupted download under its final name', async () => {
    freshCache();
    hub.corrupt.add('model-00001-of-00002.safetensors');
    try {
      const error = await fetchHubSnapshot('acme/tiny', { endpoint: hub.endpoint, cacheDir, retry: { attempts: 2, delayMs: 1 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HubError);
      expect((error as Error).message).toMatch(/model-00001-of-00002.safetensors after 2 attempts: .*downloaded bytes have sha256 [0-9a-f]{64}, the Hub announced/);
      expect(existsSync(join(cacheDir, 'models--acme--tiny', 'blobs', sha256(sharded['model-00001-of-00002.safetensors'])))).toBe(false);
      expect(existsSync(join(cacheDir, 'models--acme--tiny', 'snapshots', COMMIT, 'model-00001-of-00002.safetensors'))).toBe(false);
    } finally {
      hub.corrupt.clear();
    }
  });

  it('aborts a download with the signal and keeps the partial file for a later resume', async () => {
    freshCache();
    hub.slowMs = 20;
    const controller = new AbortController();
    try {
      const pending = openModel('acme/tiny', {
        endpoint: hub.endpoint, cacheDir, signal: controller.signal,
        onProgress: (p) => { if (p.phase === 'download' && p.file.endsWith('.safetensors') && p.loaded > 0) controller.abort(); },
      });
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      hub.slowMs = 0;
    }
    const blobs = readdirSync(join(cacheDir, 'models--acme--tiny', 'blobs'));
    expect(blobs.some((f) => f.endsWith('.incomplete'))).toBe(true);
    hub.log.length = 0;
    await (await openModel('acme/tiny', { endpoint: hub.endpoint, cacheDir })).close();
    expect(gets().some((r) => r.range?.startsWith('bytes=') && r.range !== 'bytes=0-')).toBe(true);
  });
});

describe('Hub errors', () => {
  it('names a missing repository, revision and file', async () => {
    freshCache();
    const repo = await openModel('acme/nope', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect(repo).toBeInstanceOf(ModelNotFoundError);
    expect((repo as Error).message).toBe(`repository 'acme/nope' not found on ${hub.endpoint} (if it is private or gated, set HF_TOKEN to a token with access); there is no local folder 'acme/nope' either`);
    const revision = await openModel('acme/tiny@v9', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect(revision).toBeInstanceOf(ModelNotFoundError);
    expect((revision as Error).message).toBe(`revision 'v9' not found in 'acme/tiny' on ${hub.endpoint}; there is no local folder 'acme/tiny@v9' either`);
    const file = await openModel('acme/gated', { endpoint: hub.endpoint, cacheDir, token: 'hf_secret', revision: GATED_COMMIT }).then((m) => m.close());
    expect(file).toBeUndefined();
    const noWeights = await openModel('acme/no-weights', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect(noWeights).toMatchObject({ name: 'ModelNotFoundError', file: 'model.safetensors' });
    expect((noWeights as Error).message).toBe(`acme/no-weights@main has no model.safetensors or model.safetensors.index.json on ${hub.endpoint} (only safetensors checkpoints are supported)`);
    const noConfig = await openModel('acme/bin-only', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect(noConfig).toMatchObject({ name: 'ModelNotFoundError', file: 'config.json' });
    hub.log.length = 0;
    const invalid = await openModel('acme/a--b', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect((invalid as Error).message).toMatch(/'acme\/a--b' is not a valid Hub model id/);
    expect(hub.log).toEqual([]);
  });

  it('asks for HF_TOKEN on a gated repo, and sends the token (to the Hub only) when set', async () => {
    freshCache();
    const denied = await openModel('acme/gated', { endpoint: hub.endpoint, cacheDir }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(HubError);
    expect((denied as HubError).status).toBe(401);
    expect((denied as Error).message).toMatch(/refused access to acme\/gated@main\/config.json \(HTTP 401\); this repository is gated or private: .*set HF_TOKEN/);
    process.env.HF_TOKEN = 'hf_wrong';
    expect(((await openModel('acme/gated', { endpoint: hub.endpoint, cacheDir }).catch((e: Error) => e)) as Error).message).toMatch(/token in HF_TOKEN .* was refused/);
    process.env.HF_TOKEN = 'hf_secret';
    hub.log.length = 0;
    const model = await openModel('acme/gated', { endpoint: hub.endpoint, cacheDir });
    await expectSameTensors(model, `${MODELS}tiny-bf16-untied`);
    await model.close();
    expect(hub.log.filter((r) => r.path.includes('/resolve/')).every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
  });

  it('explains an unreachable Hub, and falls back to the cache when it has the model', async () => {
    freshCache();
    const dead = await closedPort();
    const error = await openModel('acme/tiny', { endpoint: dead, cacheDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as Error).message).toMatch(/^cannot reach the Hugging Face Hub at http:\/\/127.0.0.1:\d+ \(ECONNREFUSED\); check your network, set HF_ENDPOINT, or pass a local folder with --model <dir>$/);
    await (await openModel('acme/tiny', { endpoint: hub.endpoint, cacheDir })).close();
    const cached = await openModel('acme/tiny', { endpoint: dead, cacheDir });
    expect(cached.config.hiddenSize).toBe(96);
    await cached.close();
  });
});

describe('a cache written by Python huggingface_hub', () => {
  it('is opened offline from HF_HOME, symlinks and refs as huggingface_hub writes them', async () => {
    freshCache();
    // Built by hand exactly as huggingface_hub lays it out: blobs named by sha256 (LFS) or git sha1,
    // relative symlinks from snapshots/<commit>/, refs/main holding the commit.
    const home = join(scratch, 'python-home');
    const root = join(home, 'hub', 'models--Qwen--Tiny-Sharded');
    const commit = '0123456789abcdef0123456789abcdef01234567';
    mkdirSync(join(root, 'blobs'), { recursive: true });
    mkdirSync(join(root, 'snapshots', commit), { recursive: true });
    mkdirSync(join(root, 'refs'), { recursive: true });
    writeFileSync(join(root, 'refs', 'main'), commit);
    for (const file of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const bytes = sharded[file as keyof typeof sharded];
      const blob = file.endsWith('.safetensors') ? sha256(bytes) : `git-${file}`;
      writeFileSync(join(root, 'blobs', blob), bytes);
      symlinkSync(`../../blobs/${blob}`, join(root, 'snapshots', commit, file));
    }
    process.env.HF_HOME = home;
    process.env.HF_HUB_OFFLINE = '1';
    const model = await openModel('Qwen/Tiny-Sharded');
    try {
      expect(model.source).toBe('Qwen/Tiny-Sharded@main');
      await expectSameTensors(model, `${MODELS}tiny-f16-sharded`);
    } finally {
      await model.close();
    }
    const byCommit = await openModel(`Qwen/Tiny-Sharded@${commit}`);
    await byCommit.close();
    expect(hub.log).toEqual([]);
  });
});
