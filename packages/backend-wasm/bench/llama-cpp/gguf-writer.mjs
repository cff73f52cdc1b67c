// Writes a Hugging Face Qwen2 checkpoint as a GGUF file (the format llama.cpp reads), so that the
// llama.cpp comparison runs on exactly the weights we run. A thin wrapper over core's test writer
// (`writeGgufFixture` in @qwen2-ts/core/testing): every matrix goes through core's own conversion
// (`toHostWeight`, the code `Qwen2.load` uses), q8_0 / q4_0 blocks are ggml's block types bit for bit,
// tensor names, dimension order and `qwen2.*` / `tokenizer.ggml.*` metadata are llama.cpp's (see there).
// This wrapper keeps the benchmarks' API and checks what llama.cpp needs before anything is written:
// a known format, and a vocabulary (llama.cpp refuses a file without one).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeGgufFixture } from '@qwen2-ts/core/testing';

export { ggufTensorName } from '@qwen2-ts/loader';

/** The matrix formats core converts to and ggml has as block types. */
const FORMATS = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

/**
 * Writes `modelDir` (a Hugging Face Qwen2 folder) as GGUF at `outPath` with every matrix in `format`
 * (a matrix whose rows are not whole 32-value blocks keeps its checkpoint format under q8_0 / q4_0;
 * norms and biases are f32).
 * @param {string} modelDir
 * @param {string} outPath
 * @param {{ format: 'f32'|'f16'|'bf16'|'q8_0'|'q4_0', tokenizerJson?: string, name?: string }} options
 *   tokenizerJson defaults to the folder's own tokenizer.json
 * @returns {Promise<{ bytes: number, tensors: number }>}
 */
export async function writeGguf(modelDir, outPath, { format, tokenizerJson, name = 'qwen2-ts random weights' }) {
  if (!FORMATS.includes(format)) throw new Error(`gguf: unknown format '${format}' (${FORMATS.slice(0, -1).join(', ')} or ${FORMATS.at(-1)})`);
  if (tokenizerJson === undefined && !existsSync(join(modelDir, 'tokenizer.json'))) {
    throw new Error(`gguf: ${modelDir} has no tokenizer.json; pass tokenizerJson`);
  }
  return writeGgufFixture(modelDir, outPath, { format, tokenizerJson, name });
}
