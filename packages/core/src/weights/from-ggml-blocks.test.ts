import { describe, expect, it } from 'vitest';
import { ModelWeightsError } from '../errors.js';
import { quantizeQ4_0 } from '../quant/q4_0.js';
import { quantizeQ8_0 } from '../quant/q8_0.js';
import { TestRandom } from '../testing/random.js';
import { ggmlBytes } from '../testing/gguf-fixtures.js';
import { allocateHostWeight } from './read-host-weight.js';
import { storeGgmlBlocks } from './from-ggml-blocks.js';
import type { BlockWeight } from './from-quantized.js';

describe('storeGgmlBlocks', () => {
  const values = new TestRandom(4).normals(6 * 96, 0.1);
  for (const format of ['q4_0', 'q8_0'] as const) {
    const want = (format === 'q4_0' ? quantizeQ4_0 : quantizeQ8_0)(values, 6, 96) as BlockWeight;
    const blocks = ggmlBytes(want);

    it(`gives back the very ${format} blocks from ggml's interleaved layout, aligned or not`, () => {
      const aligned = allocateHostWeight(format, 6, 96) as BlockWeight;
      storeGgmlBlocks(blocks, aligned, 'w');
      expect(aligned.scales).toEqual(want.scales);
      expect(aligned.quants).toEqual(want.quants);
      // The same bytes at an odd offset take the byte-by-byte path.
      const odd = new Uint8Array(blocks.byteLength + 1);
      odd.set(blocks, 1);
      const unaligned = allocateHostWeight(format, 6, 96) as BlockWeight;
      storeGgmlBlocks(odd.subarray(1), unaligned, 'w');
      expect(unaligned.scales).toEqual(want.scales);
      expect(unaligned.quants).toEqual(want.quants);
    });

    it(`refuses ${format} bytes that are not the weight's blocks, naming the tensor`, () => {
      const out = allocateHostWeight(format, 6, 96) as BlockWeight;
      expect(() => storeGgmlBlocks(blocks.subarray(0, blocks.byteLength - 2), out, 'blk.0.attn_q.weight')).toThrow(ModelWeightsError);
      expect(() => storeGgmlBlocks(blocks.subarray(2), out, 'blk.0.attn_q.weight')).toThrow(/blk\.0\.attn_q\.weight.*expected 18 blocks/);
    });
  }
});
