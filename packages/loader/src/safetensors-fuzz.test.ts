// Seeded fuzzing of the header parser: thousands of mutated real headers must each either parse into
// a self-consistent header or throw SafetensorsError; nothing else, and quickly.
import { describe, expect, it } from 'vitest';
import { SafetensorsError } from './errors.js';
import { memoryFile } from './random-access.js';
import { DTYPE_BYTES, readSafetensorsHeader } from './safetensors-header.js';
import { encodeSafetensors, type TensorToWrite } from './safetensors-writer.js';
import { rng } from './test-support/rng.js';


// A valid seed file shaped like a real checkpoint header (Qwen2 tensor names, every dtype, metadata) but
// with tiny shapes, so each mutant is a few KB.
const DTYPES = Object.keys(DTYPE_BYTES) as (keyof typeof DTYPE_BYTES)[];
const seedTensors: Record<string, TensorToWrite> = {};
for (let l = 0; l < 4; l++) {
  for (const [i, part] of ['q_proj.weight', 'q_proj.bias', 'k_proj.weight', 'o_proj.weight', 'mlp.up_proj.weight', 'input_layernorm.weight'].entries()) {
    const dtype = DTYPES[(l * 6 + i) % DTYPES.length];
    const shape = i % 2 ? [3 + l] : [2 + i, 3 + l];
    seedTensors[`model.layers.${l}.${part}`] = { dtype, shape, data: new Uint8Array(shape.reduce((a, b) => a * b, DTYPE_BYTES[dtype] as number)) };
  }
}
seedTensors['model.empty'] = { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) };
const seedFile = encodeSafetensors(seedTensors, { format: 'pt', note: 'fuzz seed' });
const headerLength = Number(new DataView(seedFile.buffer).getBigUint64(0, true));
const SNIPPETS = ['"F32"', '"BF16"', '"Q4"', '-1', '1e309', '9007199254740993', '[]', '{}', 'null', '"', ',', ':', '[0,0]', '"__metadata__"', '[4294967296,2]', '\u0000', '\\u0000', '"\\ud800"'];

function mutate(base: Uint8Array, random: () => number): Uint8Array {
  let bytes: Uint8Array = new Uint8Array(base);
  const steps = 1 + Math.floor(random() * 4);
  for (let s = 0; s < steps; s++) {
    const at = Math.floor(random() * bytes.byteLength);
    switch (Math.floor(random() * 7)) {
      case 0: // flip a bit anywhere (prefix included)
        bytes[at] ^= 1 << Math.floor(random() * 8);
        break;
      case 1: // random byte in the JSON
        bytes[8 + Math.floor(random() * headerLength)] = Math.floor(random() * 256);
        break;
      case 2: { // splice in a JSON-ish snippet
        const snippet = new TextEncoder().encode(SNIPPETS[Math.floor(random() * SNIPPETS.length)]);
        if (bytes.byteLength === 0) break;
        const pos = Math.min(bytes.byteLength - 1, 8 + Math.floor(random() * headerLength));
        const out = new Uint8Array(bytes.byteLength + snippet.byteLength - 1);
        out.set(bytes.subarray(0, pos));
        out.set(snippet, pos);
        out.set(bytes.subarray(pos + 1), pos + snippet.byteLength);
        bytes = out;
        break;
      }
      case 3: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 4: { // rewrite a digit (offsets and shapes)
        const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
        const digits = [...text.matchAll(/\d/g)];
        if (digits.length) bytes[8 + digits[Math.floor(random() * digits.length)].index!] = 48 + Math.floor(random() * 10);
        break;
      }
      case 5: // lie about the header length (small delta or absurd)
        if (bytes.byteLength < 8) break;
        new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, random() < 0.5 ? BigInt(Math.max(0, headerLength + Math.floor(random() * 64) - 32)) : BigInt(Math.floor(random() * 2 ** 53)) * 4096n, true);
        break;
      default: // delete a byte range from the JSON
        bytes = new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(Math.min(bytes.byteLength, at + Math.floor(random() * 16)))]);
    }
  }
  return bytes;
}

describe('header parser fuzzing', () => {
  it('turns 4000 mutated headers into valid headers or SafetensorsError, nothing else', async () => {
    let parsed = 0;
    let rejected = 0;
    let unchanged = 0;
    let slowest = 0;
    const reasons = new Set<string>();
    for (let seed = 1; seed <= 4000; seed++) {
      const bytes = mutate(seedFile, rng(seed));
      const started = performance.now();
      try {
        const h = await readSafetensorsHeader(memoryFile(`fuzz-${seed}`, bytes));
        // Whatever parses must be self-consistent: ranges inside the file, sizes matching, no overlap.
        const dataBytes = bytes.byteLength - h.dataOffset;
        const ranges = [...h.tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
        for (const [i, t] of ranges.entries()) {
          expect(t.end, `seed ${seed}`).toBeLessThanOrEqual(dataBytes);
          expect(t.end - t.begin).toBe(t.shape.reduce((a, b) => a * b, DTYPE_BYTES[t.dtype] as number));
          if (i > 0) expect(t.begin).toBeGreaterThanOrEqual(ranges[i - 1].end);
        }
        parsed++;
        if (bytes.byteLength === seedFile.byteLength && bytes.every((b, i) => b === seedFile[i])) unchanged++;
      } catch (e) {
        if (!(e instanceof SafetensorsError)) throw new Error(`seed ${seed}: ${String(e)}`);
        expect(e.message.startsWith(`fuzz-${seed}: `)).toBe(true);
        reasons.add(e.problem.replace(/\(.*$/, '').replace(/'[^']*'/g, 'X').replace(/\[.*\]|"[^"]*"|\d+/g, 'N'));
        rejected++;
      } finally {
        slowest = Math.max(slowest, performance.now() - started);
      }
    }
    expect(parsed + rejected).toBe(4000);
    // No mutant makes the parser spin: the bound is "within a second" per file.
    expect(slowest).toBeLessThan(1000);
    expect(unchanged).toBeLessThan(parsed);
    // The mutations reach many different checks, and some mutants (e.g. whitespace changes) stay valid.
    expect(rejected).toBeGreaterThan(2000);
    expect(parsed).toBeGreaterThan(100);
    expect(reasons.size).toBeGreaterThan(6);
  });
});
