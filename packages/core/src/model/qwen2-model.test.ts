import { fileURLToPath } from 'node:url';
import { openModel } from '@qwen2-ts/loader';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { ContextOverflowError, ModelWeightsError, WeightFormatError } from '../errors.js';
import type { Backend, HostWeight, WeightFormat } from '../backend/types.js';
import { maxAbsDiff } from '../testing/random.js';
import { Qwen2Model } from './qwen2-model.js';
import { freeModelWeights, loadModelWeights, type TensorSource } from './weights.js';
import type { Qwen2ModelConfig } from './config.js';

const dir = fileURLToPath(new URL('../../../../fixtures/models/tiny-f32', import.meta.url));

async function build(config?: Partial<Qwen2ModelConfig>, backend: Backend = new ReferenceBackend()) {
  const opened = await openModel(dir);
  const cfg = { ...opened.config, ...config };
  const weights = await loadModelWeights(opened.checkpoint, cfg, backend, {});
  await opened.close();
  return new Qwen2Model(backend, cfg, weights);
}

const prompt = Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 512);

async function lastLogits(model: Qwen2Model, ids: number[], chunks: number[] = [ids.length]): Promise<Float32Array> {
  const seq = model.createSequence(64);
  let at = 0;
  let out: Float32Array | undefined;
  for (const n of chunks) {
    out = await model.backend.read(model.forward(seq, ids.slice(at, at + n)));
    at += n;
  }
  seq.free();
  return out!;
}

describe('Qwen2Model sliding window (HF: layers >= max_window_layers use it)', () => {
  it('a window wider than the sequence changes nothing; a narrow one does, and chunking still agrees', async () => {
    const full = await build();
    const wide = await build({ slidingWindow: 64, maxWindowLayers: 0 });
    const narrow = await build({ slidingWindow: 8, maxWindowLayers: 1 });
    const allLayersNarrow = await build({ slidingWindow: 8, maxWindowLayers: 0 });
    const notReached = await build({ slidingWindow: 8, maxWindowLayers: 2 });
    const ref = await lastLogits(full, prompt);
    expect(maxAbsDiff(await lastLogits(wide, prompt), ref)).toBe(0);
    expect(maxAbsDiff(await lastLogits(notReached, prompt), ref)).toBe(0);
    const n = await lastLogits(narrow, prompt);
    expect(maxAbsDiff(n, ref)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(await lastLogits(allLayersNarrow, prompt), n)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(await lastLogits(narrow, prompt, [10, 5, 1, 1, 13]), n)).toBeLessThan(1e-5);
    // Within the window, the windowed model is the plain one.
    expect(maxAbsDiff(await lastLogits(narrow, prompt.slice(0, 8)), await lastLogits(full, prompt.slice(0, 8)))).toBe(0);
  });
});

describe('Qwen2Model errors', () => {
  it('throws ContextOverflowError naming the sizes, and RangeError on bad ids', async () => {
    const model = await build();
    const seq = model.createSequence(8);
    model.forward(seq, [1, 2, 3, 4, 5]);
    expect(() => model.forward(seq, [1, 2, 3, 4])).toThrow(ContextOverflowError);
    expect(() => model.forward(seq, [1, 2, 3, 4])).toThrow('5 tokens in the cache + 4 new > capacity 8 tokens');
    expect(() => model.forward(seq, [512])).toThrow(/token id 512 at index 0 is outside the vocabulary of 512/);
    expect(() => model.forward(seq, [])).toThrow(RangeError);
    expect(() => model.createSequence(40000)).toThrow(/max_position_embeddings 32768/);
  });
  it('weight loading fills backend buffers in place where offered, and gives back the one in flight on failure', async () => {
    const opened = await openModel(dir);
    const b = new ReferenceBackend();
    const given: string[] = [], discarded: string[] = [];
    const buffers = new Map<HostWeight, string>();
    const withBuffers = Object.assign(Object.create(b) as ReferenceBackend, {
      async weightBuffer(format: WeightFormat, rows: number, cols: number, name: string): Promise<HostWeight> {
        given.push(name);
        const w: HostWeight = format === 'q8_0' ? { format, rows, cols, scales: new Uint16Array(rows * cols / 32), quants: new Int8Array(rows * cols) } : { format: 'f32', rows, cols, data: new Float32Array(rows * cols) };
        buffers.set(w, name);
        return w;
      },
      discardWeightBuffer(w: HostWeight) { discarded.push(buffers.get(w)!); },
    });
    const plain = await loadModelWeights(opened.checkpoint, opened.config, b, { format: 'q8_0' });
    const filled = await loadModelWeights(opened.checkpoint, opened.config, withBuffers, { format: 'q8_0', sliceBytes: 4096 });
    expect(given.length).toBeGreaterThan(0);
    expect(given).toContain('model.layers.0.self_attn.q_proj.weight');
    const seq = new Float32Array(4 * opened.config.hiddenSize).map((_, i) => Math.sin(i));
    for (const [name, w] of [['q', (m: typeof plain) => m.layers[1]!.q], ['embed', (m: typeof plain) => m.embed]] as const) {
      const x = b.alloc(4, opened.config.hiddenSize), o1 = b.alloc(4, w(plain).rows), o2 = b.alloc(4, w(plain).rows);
      b.write(x, seq);
      b.matmul(x, [w(plain)], [undefined], [o1]);
      b.matmul(x, [w(filled)], [undefined], [o2]);
      expect(await b.read(o2), name).toEqual(await b.read(o1));
    }
    // A read that fails inside a sliced tensor: its buffer is discarded, everything uploaded freed.
    freeModelWeights(b, plain); freeModelWeights(b, filled);
    let reads = 0;
    const failing: TensorSource = {
      tensors: opened.checkpoint.tensors, read: (n) => opened.checkpoint.read(n),
      readRange: async (n, o, l) => { if (++reads === 5) throw new Error('disk gone'); return opened.checkpoint.readRange!(n, o, l); },
    };
    given.length = 0;
    await expect(loadModelWeights(failing, opened.config, withBuffers, { format: 'q8_0', sliceBytes: 4096 })).rejects.toThrow('disk gone');
    expect(discarded).toEqual([given.at(-1)]);
    expect(b.memory().weights).toBe(0);
  });
  it('weight loading reads ahead (several reads in flight, each range once) and loads the same weights as reading one at a time', async () => {
    const opened = await openModel(dir);
    const b = new ReferenceBackend();
    const counted = () => {
      let inFlight = 0;
      const stats = { most: 0, reads: new Map<string, number>(), bytes: 0 };
      const track = async (key: string, read: () => Promise<Uint8Array>) => {
        stats.reads.set(key, (stats.reads.get(key) ?? 0) + 1);
        stats.most = Math.max(stats.most, ++inFlight);
        try {
          const bytes = await read();
          stats.bytes += bytes.byteLength;
          return bytes;
        } finally {
          inFlight--;
        }
      };
      const src: TensorSource = {
        tensors: opened.checkpoint.tensors,
        read: (n) => track(n, () => opened.checkpoint.read(n)),
        readRange: (n, o, l) => track(`${n}@${o}`, () => opened.checkpoint.readRange!(n, o, l)),
      };
      return { src, stats };
    };
    const ahead = counted(), serial = counted();
    const fast = await loadModelWeights(ahead.src, opened.config, b, { format: 'q8_0', sliceBytes: 4096 });
    const slow = await loadModelWeights(serial.src, opened.config, b, { format: 'q8_0', sliceBytes: 4096, readAheadBytes: 0 });
    expect(ahead.stats.most).toBeGreaterThan(1);
    expect(serial.stats.most).toBe(1);
    expect([...ahead.stats.reads.values()].every((n) => n === 1)).toBe(true);
    expect([...ahead.stats.reads.keys()]).toEqual([...serial.stats.reads.keys()]);
    expect([...ahead.stats.reads.keys()].some((k) => k.includes('@'))).toBe(true); // sliced tensors were read ahead too
    let checkpointBytes = 0;
    for (const t of opened.checkpoint.tensors.values()) checkpointBytes += t.byteLength;
    expect(ahead.stats.bytes).toBe(checkpointBytes);
    const ids = prompt.slice(0, 9);
    const logits = [];
    for (const w of [fast, slow]) logits.push(await lastLogits(new Qwen2Model(b, opened.config, w), ids));
    expect(logits[0]).toEqual(logits[1]);
    await opened.close();
  });
  it('weight loading names a missing or misshapen tensor and an unsupported format', async () => {
    const opened = await openModel(dir);
    const b = new ReferenceBackend();
    const without: TensorSource = { tensors: new Map([...opened.checkpoint.tensors].filter(([n]) => n !== 'model.layers.1.mlp.up_proj.weight')), read: (n) => opened.checkpoint.read(n) };
    await expect(loadModelWeights(without, opened.config, b)).rejects.toThrow(ModelWeightsError);
    await expect(loadModelWeights(without, opened.config, b)).rejects.toThrow("tensor 'model.layers.1.mlp.up_proj.weight': missing from the checkpoint");
    await expect(loadModelWeights(opened.checkpoint, { ...opened.config, intermediateSize: 170 }, b)).rejects.toThrow(/shape \[176, 64\] does not match the config's \[170, 64\]/);
    const limited = Object.assign(Object.create(b) as ReferenceBackend, { info: { ...b.info, formats: ['f32'] as const } });
    await expect(loadModelWeights(opened.checkpoint, opened.config, limited, { format: 'q4_0' })).rejects.toThrow(WeightFormatError);
    expect(b.memory().weights).toBe(0); // nothing left behind by the failures
    const q = await loadModelWeights(opened.checkpoint, opened.config, b, { format: 'q8_0' });
    // tiny-f32's intermediate size (176) is not whole 32-blocks: down_proj falls back to the checkpoint's f32.
    expect(q.fallbacks.map((f) => f.tensor)).toEqual(['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']);
    expect(q.layers[0]!.q.format).toBe('q8_0');
    expect(q.layers[0]!.down.format).toBe('f32');
    expect(q.layers[0]!.qBias.format).toBe('f32');
    expect(q.lmHead).toBe(q.embed); // tied
    await opened.close();
  });
});
