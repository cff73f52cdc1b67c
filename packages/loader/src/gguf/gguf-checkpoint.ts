/**
 * A GGUF file's tensors as a {@link Checkpoint} with Hugging Face's names and shapes: f32 / f16 / bf16
 * tensors read as they are, block-quantized ones (Q4_0, Q4_K, Q6_K, ...) as their F32 values.
 */
import { checkTensorRange, makeCheckpoint, type Checkpoint, type CheckpointTensor, type Located, type ReadProgress } from '../checkpoint.js';
import { GgufError } from '../errors.js';
import type { UnpackedLinear } from '../quantized-checkpoint.js';
import type { RandomAccessFile } from '../random-access.js';
import type { SafetensorsDtype } from '../safetensors-header.js';
import { dequantizeGgml, ggmlTypeNamed, type GgmlType } from './ggml-quants.js';
import type { GgufHeader } from './gguf-header.js';
import { hfTensorName } from './qwen2-tensor-names.js';

/** ggml float types that are safetensors dtypes too, read without conversion. */
const FLOAT_DTYPES: Readonly<Record<string, SafetensorsDtype>> = { F32: 'F32', F16: 'F16', BF16: 'BF16' };
/** Block types whose values are `d * (q - zero)` with one f16 `d` per block of 32, handed out as integers. */
const INTEGER_TYPES = new Set(['Q4_0', 'Q8_0']);

/** One opened GGUF file (a split model has several). */
export interface GgufPart { file: string; handle: RandomAccessFile; header: GgufHeader }

/**
 * Presents the tensors of a GGUF model (one file or the parts of a split one) under Hugging Face's
 * names (`blk.0.attn_q.weight` -> `model.layers.0.self_attn.q_proj.weight`) with PyTorch's dimension
 * order. Tensors Qwen2 does not have keep their GGUF name.
 *
 * A block-quantized tensor is an F32 tensor marked {@link CheckpointTensor.quantized} (`method: 'gguf'`,
 * `format` its ggml type). `read` and `readRange` dequantize exactly as ggml's reference code does,
 * reading only the blocks a range covers; `readQuantized` hands Q4_0 and Q8_0 tensors out as integers,
 * scales and zero points, and `readGgmlBlocks` gives any block tensor's bytes as stored (core copies
 * Q4_0 / Q8_0 blocks into its q4_0 / q8_0 weights).
 * Read progress counts the file's bytes.
 * @throws {@link GgufError} for a tensor name found in two parts or a type ggml's reference cannot decode
 */
export function ggufCheckpoint(source: string, parts: readonly GgufPart[], onRead?: (p: ReadProgress) => void): Checkpoint {
  const located = new Map<string, Located>();
  const blockTypes = new Map<string, GgmlType>();
  const tensors = new Map<string, CheckpointTensor>();
  for (const part of parts) {
    for (const t of part.header.tensors) {
      const name = hfTensorName(t.name) ?? t.name;
      if (located.has(name)) throw new GgufError(part.file, `tensor '${t.name}' is also in another part of the model`);
      const shape = [...t.dims].reverse();
      const dtype = FLOAT_DTYPES[t.type.name];
      if (dtype) {
        const info: CheckpointTensor = { name, dtype, shape, file: part.file, byteLength: t.byteLength };
        located.set(name, { info, handle: part.handle, absoluteOffset: t.offset });
        tensors.set(name, info);
        continue;
      }
      if (!t.type.dequantizable) throw new GgufError(part.file, `tensor '${t.name}' has type ${t.type.name}, which this library cannot read (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)`);
      // The raw blocks, read through the plain checkpoint (so read progress counts file bytes).
      located.set(name, { info: { name, dtype: 'U8', shape: [t.byteLength], file: part.file, byteLength: t.byteLength }, handle: part.handle, absoluteOffset: t.offset });
      blockTypes.set(name, t.type);
      const values = shape.reduce((a, b) => a * b, 1);
      tensors.set(name, {
        name, dtype: 'F32', shape, file: part.file, byteLength: values * 4,
        quantized: { method: 'gguf', bits: t.type.bits, groupSize: t.type.blockSize, format: t.type.name, integers: INTEGER_TYPES.has(t.type.name) && shape.length === 2 },
      });
    }
  }
  const raw = makeCheckpoint(source, located, parts.map((p) => p.handle), onRead);

  const valuesOf = (name: string, type: GgmlType, blocks: Uint8Array): Float32Array => {
    const count = (blocks.byteLength / type.typeSize) * type.blockSize;
    const out = new Float32Array(count);
    dequantizeGgml(type, blocks, count, out);
    return out;
  };

  return {
    tensors,
    async read(name, options) {
      const type = blockTypes.get(name);
      if (!type) return raw.read(name, options);
      return new Uint8Array(valuesOf(name, type, await raw.read(name, options)).buffer);
    },
    async readRange(name, byteOffset, byteLength, options) {
      const type = blockTypes.get(name);
      if (!type) return raw.readRange(name, byteOffset, byteLength, options);
      const info = tensors.get(name)!;
      checkTensorRange(name, byteOffset, byteLength, info.byteLength);
      // The blocks holding values floor(offset / 4) .. ceil(end / 4).
      const valueBytes = 4 * type.blockSize;
      const first = Math.floor(byteOffset / valueBytes);
      const end = Math.ceil((byteOffset + byteLength) / valueBytes);
      const blocks = await raw.readRange(name, first * type.typeSize, (end - first) * type.typeSize, options);
      const values = new Uint8Array(valuesOf(name, type, blocks).buffer);
      const skip = byteOffset - first * valueBytes;
      return skip === 0 && byteLength === values.byteLength ? values : values.slice(skip, skip + byteLength);
    },
    async readQuantized(name, options) {
      const type = blockTypes.get(name);
      const info = tensors.get(name);
      if (!type || !info?.quantized?.integers) {
        throw new GgufError(info?.file ?? source, `tensor '${name}' is ${type ? `${type.name}, which has no integer form (read its values)` : 'not block-quantized'}`);
      }
      return unpackBlocks(type, info.shape[0]!, info.shape[1]!, await raw.read(name, options));
    },
    async readGgmlBlocks(name, options) {
      if (!blockTypes.has(name)) throw new GgufError(tensors.get(name)?.file ?? source, `tensor '${name}' is not block-quantized`);
      return raw.read(name, options);
    },
    close: () => raw.close(),
  };
}

/**
 * Q4_0 / Q8_0 blocks as integers: block b of row o holds `d * (q - zero)` with d its f16 scale; Q4_0's
 * byte j has value j in its low nibble and value j + 16 in its high one, zero 8; Q8_0's int8 values are
 * stored offset by 128 (zero 128), as {@link UnpackedLinear} holds unsigned integers.
 */
function unpackBlocks(type: GgmlType, rows: number, cols: number, bytes: Uint8Array): UnpackedLinear {
  const perRow = cols / 32;
  const blocks = rows * perRow;
  const q = new Uint8Array(rows * cols);
  const scaleBits = new Uint8Array(blocks * 2);
  const four = type.name === 'Q4_0';
  for (let b = 0; b < blocks; b++) {
    const at = b * type.typeSize;
    scaleBits[2 * b] = bytes[at]!;
    scaleBits[2 * b + 1] = bytes[at + 1]!;
    const base = b * 32;
    if (four) {
      for (let j = 0; j < 16; j++) {
        const v = bytes[at + 2 + j]!;
        q[base + j] = v & 15;
        q[base + j + 16] = v >> 4;
      }
    } else {
      for (let j = 0; j < 32; j++) q[base + j] = (bytes[at + 2 + j]! + 128) & 255;
    }
  }
  // Block-major scales to UnpackedLinear's group-major `[g * rows + o]`.
  const byBlock = new Float32Array(blocks);
  dequantizeGgml(ggmlTypeNamed('F16')!, scaleBits, blocks, byBlock);
  const scales = new Float32Array(blocks);
  for (let o = 0; o < rows; o++) for (let g = 0; g < perRow; g++) scales[g * rows + o] = byBlock[o * perRow + g]!;
  const group = new Int32Array(cols);
  for (let i = 0; i < cols; i++) group[i] = (i / 32) | 0;
  return { rows, cols, bits: four ? 4 : 8, q, group, groups: perRow, zeros: new Int16Array(blocks).fill(four ? 8 : 128), scales };
}
