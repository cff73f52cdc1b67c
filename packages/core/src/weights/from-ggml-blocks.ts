import { ModelWeightsError } from '../errors.js';
import type { Q4_KWeight } from '../quant/q4_k.js';
import type { BlockWeight } from './from-quantized.js';

/**
 * Stores ggml's Q4_0 / Q8_0 blocks (a GGUF file's bytes: each block an f16 scale, then 16 bytes of
 * nibbles or 32 int8 values) as a q4_0 / q8_0 host weight, which holds the same blocks with the scales
 * apart: the very values llama.cpp runs, copied rather than unpacked and packed again (a GGUF Q4_0 load
 * took 1.5x the time of quantizing the bf16 checkpoint that way; see bench/quantized-load.mjs).
 * Q4_K blocks are a q4_k weight's bytes as they are.
 * @throws {@link ModelWeightsError} when the bytes are not whole blocks of the weight's size
 */
export function storeGgmlBlocks(blocks: Uint8Array, out: BlockWeight | Q4_KWeight, name: string): void {
  if (out.format === 'q4_k') {
    if (blocks.byteLength !== out.blocks.byteLength) {
      throw new ModelWeightsError(name, `${blocks.byteLength} bytes of ggml blocks, expected ${out.blocks.byteLength / 144} blocks of 144 for q4_k [${out.rows}, ${out.cols}]`);
    }
    out.blocks.set(blocks);
    return;
  }
  const count = out.scales.length;
  const quantBytes = out.format === 'q4_0' ? 16 : 32;
  const blockBytes = 2 + quantBytes;
  if (blocks.byteLength !== count * blockBytes) {
    throw new ModelWeightsError(name, `${blocks.byteLength} bytes of ggml blocks, expected ${count} blocks of ${blockBytes} for ${out.format} [${out.rows}, ${out.cols}]`);
  }
  const quants = new Uint8Array(out.quants.buffer, out.quants.byteOffset, out.quants.byteLength);
  if (blocks.byteOffset % 2 === 0 && quants.byteOffset % 2 === 0) {
    // Blocks are 18 / 34 bytes: every field starts on a 2-byte boundary, so copy 16-bit words.
    const src = new Uint16Array(blocks.buffer, blocks.byteOffset, blocks.byteLength / 2);
    const dst = new Uint16Array(quants.buffer, quants.byteOffset, quants.byteLength / 2);
    const srcWords = blockBytes / 2, words = quantBytes / 2;
    for (let b = 0, s = 0, d = 0; b < count; b++, s += srcWords, d += words) {
      out.scales[b] = src[s]!;
      for (let j = 1; j <= words; j++) dst[d + j - 1] = src[s + j]!;
    }
    return;
  }
  for (let b = 0; b < count; b++) {
    const at = b * blockBytes;
    out.scales[b] = blocks[at]! | (blocks[at + 1]! << 8);
    quants.set(blocks.subarray(at + 2, at + blockBytes), b * quantBytes);
  }
}
