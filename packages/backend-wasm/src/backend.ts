import { argmax as argmaxRow, checkBeginPass, checkEndPass, checkKVCacheSpec, checkLayer, checkTokenIds, dequantizeQ4_KRow, expectShape, QK_K } from '@qwen2-ts/core';
import type {
  AttentionSpec, Backend, BackendInfo, HostWeight, KVCache, KVCacheSpec, SamplingParams, Tensor, Weight, WeightFormat,
} from '@qwen2-ts/core';
import { Arena } from './arena.js';
import { sampleInKernels } from './sampler.js';
import { hasSimd, kernelBytes, MAX_PAGES, relaxedSimdAvailable, type ParallelKernel } from './kernels.js';
import { BackendUsageError, q4kHostOffset, storedBytes, storedParts, validateHostWeight, WasmKVCache, WasmTensor, WasmWeight } from './objects.js';
import { MAX_THREADS, ThreadPool } from './pool.js';

const FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'];
const GiB = 1024 ** 3;
/** Rows of a weight widened or unpacked at once by the GEMMs (matches PANEL in assembly/matmul_float.ts). */
const PANEL = 16;
/** Rows of a quantized weight stored interleaved as one set (matches setRows in assembly/quant_layout.ts). */
const SET_ROWS = 4;
/** Largest input+output staging block when a weight lives in another memory than the activations. */
const IO_BYTES = 32 * 1024 * 1024;
/** Rows per block of assembly/attention.ts (KEY_BLOCK): an f16 cache is widened a block at a time. */
const ATTENTION_KEY_BLOCK = 64;
/**
 * Fewest tokens of a pass for which attention over an f16 cache first widens the visible history of
 * the layer to f32 (one parallel pass; scratch of 2x one layer's f16 keys and values) rather than
 * widening blocks inside the kernel, once per query row.
 */
const WIDEN_HISTORY_MIN_TOKENS = 2;
/**
 * Fewest tokens of a pass for which a q8_0/q4_0 matmul runs the integer GEMMs (16-row weight panels
 * unpacked once, 2-row x 4-token tiles) rather than the decode kernels, which read each weight row once
 * for all tokens. The crossover depends on the decode kernel. Whole Qwen2-0.5B passes of T tokens after
 * a cached prompt (`bench/small-passes.mjs`, 2 threads) put q4_0's int8 decode kernel (relaxed SIMD,
 * which unpacks each weight vector once for two tokens) ahead up to 15 tokens and even at 20 (1.4-1.6x
 * the GEMM at 4-6 tokens), q8_0's int16 one up to 9 (1.5-1.6x at 4-6, 1.2x at 8, even at 10), and
 * q4_0's int16 one only below 4 (it reads nibbles at half the int8 kernel's speed).
 * @internal
 */
export function quantGemmMinTokens(format: 'q8_0' | 'q4_0' | 'q4_k', int8: boolean): number {
  if (format === 'q8_0') return 10;
  // q4_k runs q4_0's kernels with another scaling per group: q4_0's crossover.
  return int8 ? 16 : 4;
}

/**
 * Most tokens for which a bf16 matmul runs the decode kernels (two tokens per pass over the weights,
 * each weight widened once for both) rather than the panel GEMM. Whole 0.5B passes
 * (`bench/small-passes.mjs --formats=bf16`, A/B of the builds, two alternating runs): 2 tokens 1.28-1.31x
 * the GEMM, 3 tokens (a pair and one) 1.08x, 4 tokens (two passes over the weights) 0.84x.
 */
const BF16_MATVEC_MAX_T = 3;

/** Options of {@link wasmBackend}. */
export interface WasmBackendOptions {
  /**
   * Threads running kernels, the calling thread included (default: the number of logical CPUs, at most
   * 16). Needs `SharedArrayBuffer` (Node, or a cross-origin isolated page); without it the backend
   * runs on one thread and says so in `info.device`.
   */
  threads?: number;
  /** How long an idle worker spins before sleeping, in microseconds (default 200). */
  spinMicros?: number;
  /**
   * Weight bytes placed in the first memory, which also holds activations and KV caches (default
   * 3 GiB, or 3/4 of a memory where the engine caps memories below 4 GiB). Further weights go to extra
   * memories of up to {@link WasmBackendOptions.memoryWeightBytes}.
   */
  firstMemoryWeightBytes?: number;
  /** Weight bytes per extra memory (default 3.75 GiB, 15/16 of a memory; a wasm32 memory ends at 4 GiB). */
  memoryWeightBytes?: number;
  /**
   * Use relaxed SIMD when the engine has it and it passes a self-test at start (default true): fused
   * multiply-adds in the float kernels (prefill about 1.2x faster) and int8 dot products for q4_0 and
   * q4_k (decode about 1.3x, prefill 1.4x faster, with ggml's int8 activation rounding). `false` keeps plain SIMD128 (int16
   * activations for q4_0 and q4_k too: 256x less activation rounding). On Node 20 this switches on V8's
   * `--experimental-wasm-relaxed-simd` for the process (Node 21+ and Chromium-based browsers ship it).
   */
  relaxedSimd?: boolean;
  /**
   * Benchmarks and tests only: run the q8_0/q4_0 GEMMs from this many tokens on instead of the measured
   * {@link quantGemmMinTokens} (for example 4, the one threshold of earlier versions).
   * @internal
   */
  quantGemmMinTokens?: number;
}

/**
 * Creates the WebAssembly SIMD backend (see {@link WasmBackend}).
 * @param options - threads and memory layout
 * @returns a ready backend; call `dispose()` to stop its workers
 * @throws Error when the engine lacks WebAssembly SIMD128, or a worker cannot start
 */
export async function wasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(options);
}

/** Blocks per slice of quantizeBlocks (16384 blocks: 2 MB of f32 in, 0.56 MB of q8_0 out, in memory 0's scratch). */
const QUANTIZE_SLICE_BLOCKS = 16384;

/**
 * The default CPU backend: WebAssembly SIMD128 kernels, matmul rows split across the calling thread and
 * `threads - 1` workers that share the kernels' memories.
 *
 * Numerics: f32/f16/bf16 weights are multiplied in f32 (f16/bf16 widened exactly; with relaxed SIMD
 * as fused multiply-adds). q8_0 weights meet activations quantized to int16 per 32-value block (scale
 * amax/32767): the block dot products are exact integers, the only extra error is the activation
 * rounding (relative 1.5e-5). q4_0 weights do too with plain SIMD128; with relaxed SIMD they meet int8
 * activations (amax/127, exactly ggml's q8_0 rounding, as llama.cpp does), 1.3x faster in decode and
 * 1.6x in prefill. q4_k weights (ggml's Q4_K blocks, uploaded as they are and repacked in place:
 * assembly/q4_k_layout.ts) run q4_0's kernels with the same activations; their scales and mins are
 * applied per 32-value block in f32 (d * sc and dmin * m exact), so an embedding row equals ggml's
 * dequantization bit for bit. The same holds for decode kernels (passes of few tokens, see
 * `quantGemmMinTokens`) and GEMMs. The KV cache is f32; RMSNorm sums squares in f64; RoPE angles are
 * computed in f64.
 *
 * Memory: activations, KV caches and the first {@link WasmBackendOptions.firstMemoryWeightBytes} of
 * weights share memory 0; further weights fill extra memories (each with its own kernel instance in
 * every thread), so a model larger than the 4 GiB of one wasm32 memory still loads. A matmul whose
 * weight lives elsewhere stages its input and output through that memory (a copy of T*(K+N) floats).
 */
export class WasmBackend implements Backend {
  readonly info: BackendInfo;
  private readonly arenas: Arena[];
  private readonly weights = new Set<WasmWeight>();
  /** Buffers handed out by weightBuffer and not yet uploaded or discarded. */
  private readonly buffers = new Map<HostWeight, { arena: Arena; ptrs: number[]; bytes: number }>();
  private readonly tensors = new Set<WasmTensor>();
  private readonly caches = new Set<WasmKVCache>();
  private inPass = false;
  private disposed = false;
  private ropeKey = '';

  private constructor(
    private readonly module: WebAssembly.Module,
    private readonly shared: boolean,
    private readonly pool: ThreadPool | undefined,
    first: Arena,
    private readonly options: Required<Pick<WasmBackendOptions, 'firstMemoryWeightBytes' | 'memoryWeightBytes'>> & Pick<WasmBackendOptions, 'quantGemmMinTokens'>,
    note: string,
    /** Whether the kernels are the relaxed-SIMD build (fused multiply-add, int8 dot products). */
    readonly relaxed: boolean,
  ) {
    this.arenas = [first];
    const threads = pool?.threads ?? 1;
    const simd = relaxed ? 'WebAssembly SIMD128 + relaxed SIMD' : 'WebAssembly SIMD128';
    this.info = { name: 'wasm', device: `${simd}, ${threads} thread${threads === 1 ? '' : 's'}${note}`, formats: FORMATS, threads };
  }

  /** @see wasmBackend */
  static async create(options: WasmBackendOptions): Promise<WasmBackend> {
    if (!hasSimd()) throw new Error('backend-wasm: this JavaScript engine lacks WebAssembly SIMD128 (needs Node >= 16.4, Chrome 91, Firefox 89, Safari 16.4)');
    if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1 || options.threads > MAX_THREADS)) {
      throw new RangeError(`backend-wasm: threads must be an integer in 1..${MAX_THREADS}, got ${options.threads}`);
    }
    const gemmFrom = options.quantGemmMinTokens;
    if (gemmFrom !== undefined && (!Number.isInteger(gemmFrom) || gemmFrom < 1)) throw new RangeError(`backend-wasm: quantGemmMinTokens must be a positive integer, got ${gemmFrom}`);
    const canShare = typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
    const wanted = options.threads ?? (await defaultThreads());
    const threads = canShare ? wanted : 1;
    let note = !canShare && wanted > 1 ? ' (SharedArrayBuffer unavailable: the page is not cross-origin isolated, so 1 thread)' : '';
    const shared = threads > 1;
    let relaxed = options.relaxedSimd !== false && (await relaxedSimdAvailable());
    let bytes = kernelBytes(shared, relaxed);
    let module = await WebAssembly.compile(bytes);
    let first = new Arena(0, module, shared);
    if (relaxed && first.kernels.relaxed_selftest() !== 1) {
      // Relaxed instructions may differ between engines only outside the ranges we use; an engine that
      // gets even those wrong falls back to plain SIMD128.
      relaxed = false;
      note += ' (relaxed SIMD failed its self-test: plain SIMD128)';
      bytes = kernelBytes(shared, false);
      module = await WebAssembly.compile(bytes);
      first = new Arena(0, module, shared);
    }
    const layout = {
      // 3/4 and 15/16 of a memory's capacity (3 and 3.75 GiB of 4 GiB; less where memories are capped).
      firstMemoryWeightBytes: options.firstMemoryWeightBytes ?? first.capacity * 0.75,
      memoryWeightBytes: options.memoryWeightBytes ?? first.capacity * 0.9375,
      quantGemmMinTokens: options.quantGemmMinTokens,
    };
    if (first.maxPages < MAX_PAGES) note += ` (memories capped at ${first.capacity / 2 ** 20} MiB each: the engine would not reserve 4 GiB)`;
    let backend: WasmBackend | undefined;
    const pool = shared
      ? await ThreadPool.start(threads, bytes, [first.memory], options.spinMicros ?? 200, (op, mem, s, e, scratch, args) => backend!.runKernel(op, mem, s, e, scratch, args))
      : undefined;
    backend = new WasmBackend(module, shared, pool, first, layout, note, relaxed);
    return backend;
  }

  // ---- memory -------------------------------------------------------------------------------------

  async uploadWeight(weight: HostWeight, name: string): Promise<Weight> {
    this.alive();
    const buffer = this.buffers.get(weight);
    if (buffer) {
      // Filled in place (weightBuffer): adopt the storage, copy nothing.
      this.buffers.delete(weight);
      try {
        validateHostWeight(weight, name);
      } catch (e) {
        this.releaseBuffer(buffer);
        throw e;
      }
      return this.finishUpload(weight, name, buffer.arena, buffer.ptrs, buffer.bytes);
    }
    validateHostWeight(weight, name);
    // Vectors (norm weights, biases) are stored as f32 in memory 0, next to the activations they touch.
    if (weight.rows === 1 && weight.format !== 'f32') weight = { format: 'f32', rows: 1, cols: weight.cols, data: dequantizeVector(weight) };
    const bytes = storedBytes(weight);
    const arena = weight.rows === 1 ? this.arenas[0]! : await this.arenaFor(bytes);
    if (weight.format === 'q4_k') {
      // ggml's blocks go to the end of the storage, where finishUpload repacks them in place.
      const ptrs = this.allocParts(arena, storedParts('q4_k', weight.rows, weight.cols), name, bytes);
      arena.u8.set(weight.blocks, ptrs[0]! + q4kHostOffset(weight.rows, weight.cols));
      arena.weightBytes += bytes;
      return this.finishUpload(weight, name, arena, ptrs, bytes);
    }
    const parts = weight.format === 'q8_0' || weight.format === 'q4_0' ? [asBytes(weight.quants), asBytes(weight.scales)] : [asBytes(weight.data)];
    const ptrs = this.allocParts(arena, parts.map((p) => p.byteLength), name, bytes);
    parts.forEach((p, i) => arena.u8.set(p, ptrs[i]!));
    arena.weightBytes += bytes;
    return this.finishUpload(weight, name, arena, ptrs, bytes);
  }

  /**
   * Quantizes f32 blocks to q8_0 / q4_0 with core's bits (see core's `Backend.quantizeBlocks`), on every
   * thread with SIMD kernels, a slice of blocks at a time through scratch in memory 0: loading a model
   * into q8_0 or q4_0 runs every matrix through this.
   */
  quantizeBlocks(format: 'q8_0' | 'q4_0', values: Float32Array | Uint16Array, scales: Uint16Array, quants: Int8Array | Uint8Array, firstBlock: number): void {
    this.alive();
    if (format !== 'q8_0' && format !== 'q4_0') throw new BackendUsageError(`quantizeBlocks: unknown format '${String(format)}'`);
    const perBlock = format === 'q8_0' ? 32 : 16;
    const blocks = values.length / 32;
    if (!Number.isInteger(blocks)) throw new BackendUsageError(`quantizeBlocks: ${values.length} values are not whole 32-value blocks`);
    if (!Number.isInteger(firstBlock) || firstBlock < 0 || firstBlock + blocks > scales.length || (firstBlock + blocks) * perBlock > quants.length) {
      throw new BackendUsageError(`quantizeBlocks: blocks ${firstBlock}..${firstBlock + blocks - 1} do not fit ${scales.length} scales and ${quants.length} quant bytes`);
    }
    const bf16 = values instanceof Uint16Array;
    const a0 = this.arenas[0]!;
    for (let b = 0; b < blocks; b += QUANTIZE_SLICE_BLOCKS) {
      const n = Math.min(QUANTIZE_SLICE_BLOCKS, blocks - b);
      const { src, out, widen } = this.quantizeScratch(n, perBlock);
      if (bf16) a0.u8.set(new Uint8Array(values.buffer, values.byteOffset + b * 64, n * 64), src);
      else a0.f32.set(values.subarray(b * 32, (b + n) * 32), src >>> 2);
      this.run(format === 'q8_0' ? 'quantize_q8_0_f32' : 'quantize_q4_0_f32', 0, n, 1, [src, out, out + 2 * n, bf16 ? 1 : 0], { base: widen, stride: 128 });
      const buf = a0.memory.buffer;
      scales.set(new Uint16Array(buf, out, n), firstBlock + b);
      if (quants instanceof Int8Array) quants.set(new Int8Array(buf, out + 2 * n, n * perBlock), (firstBlock + b) * perBlock);
      else quants.set(new Uint8Array(buf, out + 2 * n, n * perBlock), (firstBlock + b) * perBlock);
    }
  }

  /**
   * quantizeBlocks' scratch in memory 0 for `blocks` blocks: values in (f32, or bf16 in half of it),
   * scales then quants out, and 128 bytes per thread where a bf16 block is widened.
   */
  private quantizeScratch(blocks: number, perBlock: number): { src: number; out: number; widen: number } {
    const a0 = this.arenas[0]!;
    return {
      src: a0.scratchBlock('quantize-in', blocks * 128),
      out: a0.scratchBlock('quantize-out', blocks * (2 + perBlock)),
      widen: a0.scratchBlock('quantize-widen', 128 * (this.pool?.threads ?? 1)),
    };
  }

  /**
   * Storage for a matrix in its final place (see core's `Backend.weightBuffer`): the loader fills these
   * arrays, which are views of a wasm memory, and `uploadWeight` adopts them. Its bytes count against
   * the memory's weight budget from now on.
   */
  async weightBuffer(format: WeightFormat, rows: number, cols: number, name: string): Promise<HostWeight> {
    this.alive();
    if (!FORMATS.includes(format) || !Number.isInteger(rows) || !Number.isInteger(cols) || rows < 2 || cols < 1 || ((format === 'q8_0' || format === 'q4_0') && cols % 32 !== 0)) {
      throw new BackendUsageError(`weightBuffer: cannot hold '${name}' as ${format} [${rows}, ${cols}]`);
    }
    if (format === 'q4_k' && cols % QK_K !== 0) {
      throw new BackendUsageError(`weightBuffer: cannot hold '${name}' as q4_k [${rows}, ${cols}]: q4_k needs cols % ${QK_K} === 0 (whole super-blocks of ${QK_K} values)`);
    }
    const n = rows * cols;
    // Bytes of each part, in uploadWeight's order: quants then scales, or the data.
    const sizes = storedParts(format, rows, cols);
    const bytes = sizes.reduce((a, b) => a + b, 0);
    // quantizeBlocks' scratch at its largest first: it lives in memory 0, and growing a non-shared memory
    // while the loader fills these views would detach them.
    if (format === 'q8_0' || format === 'q4_0') this.quantizeScratch(QUANTIZE_SLICE_BLOCKS, 32);
    const arena = await this.arenaFor(bytes);
    const ptrs = this.allocParts(arena, sizes, name, bytes);
    arena.weightBytes += bytes;
    // Views made after every allocation: growing a non-shared memory detaches older ones.
    const buf = arena.memory.buffer;
    let host: HostWeight;
    if (format === 'q8_0') host = { format, rows, cols, quants: new Int8Array(buf, ptrs[0]!, n), scales: new Uint16Array(buf, ptrs[1]!, n / 32) };
    else if (format === 'q4_0') host = { format, rows, cols, quants: new Uint8Array(buf, ptrs[0]!, n / 2), scales: new Uint16Array(buf, ptrs[1]!, n / 32) };
    // ggml's blocks fill the end of the storage; uploadWeight repacks them in place (assembly/q4_k_layout.ts).
    else if (format === 'q4_k') host = { format, rows, cols, blocks: new Uint8Array(buf, ptrs[0]! + q4kHostOffset(rows, cols), bytes - q4kHostOffset(rows, cols)) };
    else if (format === 'f32') host = { format, rows, cols, data: new Float32Array(buf, ptrs[0]!, n) };
    else host = { format, rows, cols, data: new Uint16Array(buf, ptrs[0]!, n) };
    this.buffers.set(host, { arena, ptrs, bytes });
    return host;
  }

  /** Gives back a buffer from `weightBuffer` that will not be uploaded (its bytes return to the memory). */
  discardWeightBuffer(weight: HostWeight): void {
    const buffer = this.buffers.get(weight);
    if (!buffer) return;
    this.buffers.delete(weight);
    this.releaseBuffer(buffer);
  }

  private releaseBuffer(b: { arena: Arena; ptrs: number[]; bytes: number }): void {
    for (const p of b.ptrs) b.arena.release(p);
    b.arena.weightBytes -= b.bytes;
  }

  /** One allocation per part of a weight in `arena`, all or none. */
  private allocParts(arena: Arena, sizes: readonly number[], name: string, bytes: number): number[] {
    const ptrs: number[] = [];
    for (const size of sizes) {
      const ptr = arena.alloc(size);
      if (ptr < 0) {
        for (const q of ptrs) arena.release(q);
        throw new RangeError(`backend-wasm: no room for weight '${name}' (${bytes} bytes) in memory ${arena.index}`);
      }
      ptrs.push(ptr);
    }
    return ptrs;
  }

  /**
   * The stored layout (q8_0, and q4_0 in the relaxed build, interleave groups of four blocks as their
   * kernels read them; and store rows in interleaved sets: assembly/quant_layout.ts; q4_k's blocks are
   * repacked into q4_0's storage plus scales and mins: assembly/q4_k_layout.ts) and the Weight.
   */
  private finishUpload(weight: HostWeight, name: string, arena: Arena, ptrs: readonly number[], bytes: number): Weight {
    // The relayout passes one set of rows through scratch: SET_ROWS rows of quants.
    const setScratch = (): number => arena.scratchBlock('relayout', SET_ROWS * storedParts(weight.format, 1, weight.cols)[0]!);
    if (weight.format === 'q4_0' && this.relaxed) arena.kernels.relayout_q4_0(ptrs[0]!, weight.rows, weight.cols, setScratch());
    if (weight.format === 'q8_0') arena.kernels.relayout_q8_0(ptrs[0]!, weight.rows, weight.cols, setScratch());
    if (weight.format === 'q4_k') arena.kernels.repack_q4_k(ptrs[0]!, weight.rows, weight.cols, setScratch());
    const w = new WasmWeight(this, name, weight.format, weight.rows, weight.cols, bytes, arena, ptrs[0]!, ptrs[1] ?? 0);
    this.weights.add(w);
    return w;
  }

  alloc(rows: number, cols: number): Tensor {
    this.alive();
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new BackendUsageError(`alloc: invalid shape [${rows}, ${cols}]`);
    const ptr = this.arenas[0]!.alloc(rows * cols * 4);
    if (ptr < 0) throw new RangeError(`backend-wasm: out of memory allocating a [${rows}, ${cols}] tensor (memory 0 is at its ${this.arenas[0]!.capacity / GiB} GiB limit)`);
    const t = new WasmTensor(this, rows, cols, ptr, undefined);
    this.tensors.add(t);
    return t;
  }

  view(t: Tensor, rowStart: number, rows: number): Tensor {
    const p = this.tensor(t, 'view');
    if (!Number.isInteger(rowStart) || !Number.isInteger(rows) || rowStart < 0 || rows < 1 || rowStart + rows > p.rows) {
      throw new BackendUsageError(`view: rows ${rowStart}..${rowStart + rows - 1} outside a tensor of ${p.rows} rows`);
    }
    return new WasmTensor(this, rows, p.cols, p.ptr + rowStart * p.cols * 4, p.root ?? p);
  }

  write(t: Tensor, data: Float32Array): void {
    const x = this.tensor(t, 'write');
    if (data.length !== x.rows * x.cols) throw new BackendUsageError(`write: ${data.length} values for a [${x.rows}, ${x.cols}] tensor`);
    this.arenas[0]!.f32.set(data, x.ptr >>> 2);
  }

  createKVCache(spec: KVCacheSpec): KVCache {
    this.alive();
    const checked = checkKVCacheSpec(spec);
    const bytes = WasmKVCache.bytesOf(checked);
    const ptr = this.arenas[0]!.alloc(bytes);
    if (ptr < 0) throw new RangeError(`backend-wasm: no room for a KV cache of ${bytes} bytes (${checked.maxTokens} tokens, ${checked.dtype}) in memory 0`);
    const c = new WasmKVCache(this, checked, ptr);
    this.caches.add(c);
    return c;
  }

  free(x: Tensor | Weight | KVCache): void {
    if (x instanceof WasmTensor && x.owner === this) {
      if (x.root || x.freed) return; // views go with their parent
      x.freed = true;
      this.tensors.delete(x);
      this.arenas[0]!.release(x.ptr);
    } else if (x instanceof WasmWeight && x.owner === this) {
      if (x.freed) return;
      x.freed = true;
      this.weights.delete(x);
      x.arena.release(x.ptr);
      if (x.scales) x.arena.release(x.scales);
      x.arena.weightBytes -= x.bytes;
    } else if (x instanceof WasmKVCache && x.owner === this) {
      if (x.freed) return;
      x.freed = true;
      this.caches.delete(x);
      this.arenas[0]!.release(x.ptr);
    } else {
      throw new BackendUsageError('free: not an object of this wasm backend');
    }
  }

  // ---- ops ----------------------------------------------------------------------------------------

  embed(table: Weight, ids: Int32Array, out: Tensor): void {
    const w = this.weight(table, 'embed');
    const o = this.tensor(out, 'embed out');
    expectShape(o, ids.length, w.cols, 'embed out');
    const a0 = this.arenas[0]!;
    const rowFloats = w.cols;
    checkTokenIds(ids, w.rows);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      const dst = o.ptr + t * rowFloats * 4;
      if (w.format === 'f32') {
        a0.f32.set(w.arena.f32.subarray((w.ptr >>> 2) + id * rowFloats, (w.ptr >>> 2) + (id + 1) * rowFloats), dst >>> 2);
        continue;
      }
      const target = w.arena === a0 ? dst : w.arena.scratchBlock('embed', rowFloats * 4);
      const k = w.arena.kernels;
      const sOff = w.scales + id * (w.cols / 32) * 2;
      if (w.format === 'f16' || w.format === 'bf16') k.dequant_half(w.ptr + id * w.cols * 2, target, w.cols, w.format === 'bf16' ? 1 : 0);
      else if (w.format === 'q8_0') k.dequant_q8_0(w.ptr, id, w.rows, sOff, target, w.cols);
      else if (w.format === 'q4_k') k.dequant_q4_k(w.ptr, id, w.rows, target, w.cols);
      else k.dequant_q4_0(w.ptr, id, w.rows, sOff, target, w.cols);
      if (target !== dst) a0.f32.set(w.arena.f32.subarray(target >>> 2, (target >>> 2) + rowFloats), dst >>> 2);
    }
  }

  rmsNorm(x: Tensor, weight: Weight, eps: number, out: Tensor): void {
    const a = this.tensor(x, 'rmsNorm x');
    const g = this.vector(weight, 'rmsNorm weight', a.cols);
    const o = this.tensor(out, 'rmsNorm out');
    expectShape(o, a.rows, a.cols, 'rmsNorm out');
    this.arenas[0]!.kernels.rms_norm(a.ptr, g.ptr, o.ptr, a.rows, a.cols, eps);
  }

  matmul(x: Tensor, weights: readonly Weight[], biases: readonly (Weight | undefined)[], outs: readonly Tensor[]): void {
    const a = this.tensor(x, 'matmul x');
    if (weights.length === 0 || weights.length !== outs.length || biases.length !== weights.length) {
      throw new BackendUsageError(`matmul: ${weights.length} weights, ${biases.length} biases, ${outs.length} outputs`);
    }
    const ws = weights.map((w) => this.weight(w, 'matmul weight'));
    const os = outs.map((o) => this.tensor(o, 'matmul out'));
    const bs = biases.map((b, i) => (b ? this.vector(b, 'matmul bias', ws[i]!.rows) : undefined));
    ws.forEach((w, i) => {
      if (w.cols !== a.cols) throw new BackendUsageError(`matmul: weight '${w.name}' [${w.rows}, ${w.cols}] against x [${a.rows}, ${a.cols}]`);
      expectShape(os[i]!, a.rows, w.rows, `matmul out of '${w.name}'`);
      if (os[i]!.ptr === a.ptr) throw new BackendUsageError(`matmul: out of '${w.name}' must not alias x`);
    });
    // Activations quantized once per memory for all q8_0/q4_0/q4_k weights of this call (q/k/v, gate/up).
    const quantized = new Set<string>();
    ws.forEach((w, i) => this.matmulOne(a, w, bs[i], os[i]!, quantized));
  }

  rope(x: Tensor, heads: number, headDim: number, startPos: number, theta: number): void {
    const a = this.tensor(x, 'rope');
    if (!Number.isInteger(heads) || !Number.isInteger(headDim) || a.cols !== heads * headDim || headDim % 2 !== 0) {
      throw new BackendUsageError(`rope: [${a.rows}, ${a.cols}] is not ${heads} heads of an even ${headDim}`);
    }
    if (!Number.isInteger(startPos) || startPos < 0) throw new BackendUsageError(`rope: invalid start position ${startPos}`);
    const a0 = this.arenas[0]!;
    const table = a0.scratchBlock('rope', a.rows * headDim * 4);
    const key = `${table}:${a.rows}:${headDim}:${startPos}:${theta}`;
    if (key !== this.ropeKey) {
      // cos/sin in float64 from the same formula as the reference; q and k of every layer reuse the table.
      const f = a0.f32;
      const half = headDim / 2;
      for (let t = 0; t < a.rows; t++) {
        const base = (table >>> 2) + t * headDim;
        for (let i = 0; i < half; i++) {
          const angle = (startPos + t) * theta ** (-(2 * i) / headDim);
          f[base + i] = Math.cos(angle);
          f[base + half + i] = Math.sin(angle);
        }
      }
      this.ropeKey = key;
    }
    a0.kernels.rope_f32(a.ptr, table, a.rows, heads, headDim);
  }

  writeKV(cache: KVCache, layer: number, k: Tensor, v: Tensor, startPos: number): void {
    const c = this.cache(cache, 'writeKV');
    const kt = this.tensor(k, 'writeKV k');
    const vt = this.tensor(v, 'writeKV v');
    const { kvHeads, headDim, maxTokens } = c.spec;
    expectShape(kt, kt.rows, kvHeads * headDim, 'writeKV k');
    expectShape(vt, kt.rows, kvHeads * headDim, 'writeKV v');
    checkLayer(c.spec, layer, 'writeKV');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + kt.rows > maxTokens) {
      throw new BackendUsageError(`writeKV: positions ${startPos}..${startPos + kt.rows - 1} outside a cache of ${maxTokens} tokens`);
    }
    if (c.spec.dtype === 'f16') {
      // Rounded to halves by the kernel module, a row (one token's head) per call.
      const kernels = this.arenas[0]!.kernels;
      const kBase = c.keys(layer), vBase = kBase + c.halfBytes;
      let nonFinite = 0;
      for (let t = 0; t < kt.rows; t++) {
        for (let h = 0; h < kvHeads; h++) {
          const dst = (h * maxTokens + startPos + t) * headDim * 2;
          const src = (t * kt.cols + h * headDim) * 4;
          nonFinite += kernels.store_halves(kt.ptr + src, kBase + dst, headDim) + kernels.store_halves(vt.ptr + src, vBase + dst, headDim);
        }
      }
      if (nonFinite > 0) c.heldNonFinite = true;
      return;
    }
    const f = this.arenas[0]!.f32;
    const kBase = c.keys(layer) >>> 2;
    const vBase = kBase + (c.halfBytes >>> 2);
    for (let t = 0; t < kt.rows; t++) {
      for (let h = 0; h < kvHeads; h++) {
        const dst = (h * maxTokens + startPos + t) * headDim;
        const kSrc = (kt.ptr >>> 2) + t * kt.cols + h * headDim;
        const vSrc = (vt.ptr >>> 2) + t * vt.cols + h * headDim;
        f.copyWithin(kBase + dst, kSrc, kSrc + headDim);
        f.copyWithin(vBase + dst, vSrc, vSrc + headDim);
      }
    }
  }

  attention(q: Tensor, cache: KVCache, layer: number, startPos: number, spec: AttentionSpec, out: Tensor): void {
    const c = this.cache(cache, 'attention');
    const qt = this.tensor(q, 'attention q');
    const o = this.tensor(out, 'attention out');
    const { heads, kvHeads, headDim, scale } = spec;
    if (!Number.isInteger(heads) || !Number.isInteger(kvHeads) || kvHeads < 1 || heads % kvHeads !== 0) {
      throw new BackendUsageError(`attention: ${heads} heads is not a multiple of ${kvHeads} kv heads`);
    }
    if (kvHeads !== c.spec.kvHeads || headDim !== c.spec.headDim) throw new BackendUsageError(`attention: spec ${kvHeads}x${headDim} does not match the cache ${c.spec.kvHeads}x${c.spec.headDim}`);
    expectShape(qt, qt.rows, heads * headDim, 'attention q');
    expectShape(o, qt.rows, heads * headDim, 'attention out');
    if (o.ptr < qt.ptr + qt.bytes && qt.ptr < o.ptr + o.bytes) throw new BackendUsageError('attention: out must not overlap q');
    checkLayer(c.spec, layer, 'attention');
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + qt.rows > c.spec.maxTokens) {
      throw new BackendUsageError(`attention: positions up to ${startPos + qt.rows - 1} outside a cache of ${c.spec.maxTokens} tokens`);
    }
    const window = spec.slidingWindow ?? 0;
    if (!Number.isInteger(window) || window < 0) throw new BackendUsageError(`attention: invalid sliding window ${spec.slidingWindow}`);
    const threads = this.pool?.threads ?? 1;
    const T = qt.rows, group = heads / kvHeads;
    let kBase = c.keys(layer), vBase = kBase + c.halfBytes, stored = c.spec.maxTokens;
    let kernel: ParallelKernel = 'attention_f32';
    if (c.spec.dtype === 'f16') {
      kernel = c.heldNonFinite ? 'attention_f16_nonfinite' : 'attention_f16';
      if (T >= WIDEN_HISTORY_MIN_TOKENS) {
        // Widen the rows this pass can see once, then attend over them in f32 (see widen_halves).
        const lo = window > 0 ? Math.max(0, startPos - window + 1) : 0;
        const rows = startPos + T - lo;
        const bytes = kvHeads * rows * headDim * 4;
        const wide = this.arenas[0]!.scratchBlock('attention history', 2 * bytes);
        const units = kvHeads * Math.ceil(rows / ATTENTION_KEY_BLOCK);
        const nonFinite = c.heldNonFinite ? 1 : 0;
        this.run('widen_halves', 0, units, 1, [kBase, wide, lo, rows, c.spec.maxTokens, headDim, nonFinite]);
        this.run('widen_halves', 0, units, 1, [vBase, wide + bytes, lo, rows, c.spec.maxTokens, headDim, nonFinite]);
        // Row j of head g is at wide + (g * rows + j - lo) * headDim floats: as in a cache of `rows`
        // tokens whose start is lo rows before wide.
        // (As u32: the kernel adds row offsets in wasm32 arithmetic, modulo 2^32.)
        kBase = (wide - lo * headDim * 4) >>> 0;
        vBase = (wide + bytes - lo * headDim * 4) >>> 0;
        stored = rows;
        kernel = 'attention_f32';
      }
    }
    // A unit is one query row and a set of heads sharing a kv head, which reads that head's history once.
    // Decode has only kvHeads such units with whole groups: split the groups until every thread has one.
    const splits = Math.min(group, Math.ceil(threads / (kvHeads * T)));
    const most = Math.ceil(group / splits);
    // Per thread: the set's scores (rows of n floats, n rounded up to 4), accumulators, softmax scales,
    // and for an f16 cache one block of rows widened to f32 (from a 16-byte boundary).
    const widened = kernel === 'attention_f32' ? 0 : 16 + ATTENTION_KEY_BLOCK * headDim * 4;
    const bytes = most * (Math.ceil((startPos + T) / 4) * 16 + headDim * 4 + 4) + widened;
    const stride = Math.ceil(bytes / 64) * 64;
    const scratch = this.arenas[0]!.scratchBlock('attention', stride * threads);
    this.run(kernel, 0, kvHeads * splits * T, 1,
      [qt.ptr, kBase, vBase, o.ptr, T, startPos, heads, kvHeads, headDim, stored, scale, window, splits],
      { base: scratch, stride });
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    const g = this.tensor(gate, 'swiglu gate');
    const u = this.tensor(up, 'swiglu up');
    const o = this.tensor(out, 'swiglu out');
    expectShape(u, g.rows, g.cols, 'swiglu up');
    expectShape(o, g.rows, g.cols, 'swiglu out');
    this.run('swiglu_f32', 0, g.rows * g.cols, 64, [g.ptr, u.ptr, o.ptr]);
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    const x = this.tensor(a, 'add a');
    const y = this.tensor(b, 'add b');
    const o = this.tensor(out, 'add out');
    expectShape(y, x.rows, x.cols, 'add b');
    expectShape(o, x.rows, x.cols, 'add out');
    this.arenas[0]!.kernels.add_f32(x.ptr, y.ptr, o.ptr, x.rows * x.cols);
  }

  copy(src: Tensor, dst: Tensor): void {
    const s = this.tensor(src, 'copy src');
    const d = this.tensor(dst, 'copy dst');
    expectShape(d, s.rows, s.cols, 'copy dst');
    this.arenas[0]!.u8.copyWithin(d.ptr, s.ptr, s.ptr + s.bytes);
  }

  // ---- passes and results -------------------------------------------------------------------------

  beginPass(tokens: number, startPos: number): void {
    this.alive();
    checkBeginPass(this.inPass, tokens, startPos);
    this.inPass = true;
  }

  endPass(): void {
    checkEndPass(this.inPass);
    this.inPass = false;
  }

  async read(t: Tensor): Promise<Float32Array> {
    const x = this.tensor(t, 'read');
    const start = x.ptr >>> 2;
    return this.arenas[0]!.f32.slice(start, start + x.rows * x.cols);
  }

  async argmax(logits: Tensor): Promise<Int32Array> {
    const l = this.tensor(logits, 'argmax');
    const f = this.arenas[0]!.f32;
    const out = new Int32Array(l.rows);
    for (let r = 0; r < l.rows; r++) {
      const start = (l.ptr >>> 2) + r * l.cols;
      out[r] = argmaxRow(f.subarray(start, start + l.cols));
    }
    return out;
  }

  async sample(logits: Tensor, params: SamplingParams): Promise<number> {
    const l = this.tensor(logits, 'sample');
    if (l.rows !== 1) throw new BackendUsageError(`sample: expected one row of logits, got ${l.rows}`);
    return sampleInKernels(this.arenas[0]!, l.ptr, l.cols, params);
  }

  memory(): { weights: number; activations: number; kvCache: number } {
    let weights = 0;
    for (const w of this.weights) weights += w.bytes;
    for (const b of this.buffers.values()) weights += b.bytes; // being filled by a loader
    let activations = 0;
    for (const t of this.tensors) activations += t.bytes;
    for (const a of this.arenas) activations += a.scratchBytes();
    let kvCache = 0;
    for (const c of this.caches) kvCache += c.bytes;
    return { weights, activations, kvCache };
  }

  /** Number of wasm memories in use (more than one once weights exceed the first memory's share). */
  get memories(): number {
    return this.arenas.length;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of this.weights) w.freed = true;
    for (const t of this.tensors) t.freed = true;
    for (const c of this.caches) c.freed = true;
    this.weights.clear();
    this.tensors.clear();
    this.caches.clear();
    this.buffers.clear();
    await this.pool?.dispose();
    this.arenas.length = 0;
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** @internal The main thread's share of a parallel kernel (also the whole job on one thread). */
  runKernel(op: ParallelKernel, memory: number, start: number, end: number, scratch: number, args: readonly number[]): void {
    (this.arenas[memory]!.kernels[op] as (...a: number[]) => void)(start, end, scratch, ...args);
  }

  /** @internal Runs a parallel kernel over `units` (rows or heads) on every thread. */
  run(op: ParallelKernel, memory: number, units: number, align: number, args: readonly number[], scratch = { base: 0, stride: 0 }): void {
    if (this.pool) this.pool.run(op, memory, units, align, args, scratch);
    else this.runKernel(op, memory, 0, units, scratch.base, args);
  }

  private matmulOne(x: WasmTensor, w: WasmWeight, bias: WasmWeight | undefined, out: WasmTensor, quantized: Set<string>): void {
    const A = w.arena;
    const T = x.rows, K = w.cols, N = w.rows;
    if (A.index === 0) {
      this.matmulIn(A, w, x.ptr, T, out.ptr, bias?.ptr ?? 0, quantized);
      return;
    }
    // The weight lives in another memory: stage rows of x there, run, copy the outputs back.
    const a0 = this.arenas[0]!;
    const chunk = Math.max(1, Math.min(T, Math.floor(IO_BYTES / ((K + N) * 4))));
    const io = A.scratchBlock('io', chunk * (K + N) * 4);
    for (let t0 = 0; t0 < T; t0 += chunk) {
      const tc = Math.min(chunk, T - t0);
      A.f32.set(a0.f32.subarray((x.ptr >>> 2) + t0 * K, (x.ptr >>> 2) + (t0 + tc) * K), io >>> 2);
      const o = io + tc * K * 4;
      this.matmulIn(A, w, io, tc, o, 0, undefined);
      a0.f32.set(A.f32.subarray(o >>> 2, (o >>> 2) + tc * N), (out.ptr >>> 2) + t0 * N);
    }
    if (bias) a0.kernels.add_bias(out.ptr, bias.ptr, T, N);
  }

  /** x, out and bias all in `A`. `quantized` remembers the (memory, layout) pairs whose activation scratch already holds x. */
  private matmulIn(A: Arena, w: WasmWeight, x: number, T: number, out: number, bias: number, quantized: Set<string> | undefined): void {
    const K = w.cols, N = w.rows;
    const threads = this.pool?.threads ?? 1;
    switch (w.format) {
      case 'f32':
        this.run('matmul_f32', A.index, N, 4, [x, w.ptr, bias, out, T, K, N]);
        return;
      case 'f16':
      case 'bf16': {
        if (w.format === 'bf16' && T <= BF16_MATVEC_MAX_T) {
          // Decode and passes of a few tokens: x reordered once (even/odd lanes) so that bf16 weights
          // widen with one op per 4, tokens two at a time (each weight read and widened once for both).
          const xp = A.scratchBlock('xpaired', T * K * 4);
          for (let t = 0; t < T; t++) A.kernels.pair_lanes(x + t * K * 4, xp + t * K * 4, K);
          let t = 0;
          for (; t + 2 <= T; t += 2) this.run('matvec_bf16_paired2', A.index, N, 4, [xp + t * K * 4, w.ptr, bias, out + t * N * 4, K, N]);
          if (t < T) this.run('matvec_bf16_paired', A.index, N, 4, [xp + t * K * 4, w.ptr, bias, out + t * N * 4, K]);
          return;
        }
        const stride = T > 1 ? PANEL * K * 4 : 0;
        const base = T > 1 ? A.scratchBlock('panel', stride * threads) : 0;
        this.run(w.format === 'f16' ? 'matmul_f16' : 'matmul_bf16', A.index, N, PANEL, [x, w.ptr, bias, out, T, K, N], { base, stride });
        return;
      }
      case 'q8_0':
      case 'q4_0':
      case 'q4_k': {
        // Activations quantized once per memory and layout for all weights of this call (decode
        // kernels and GEMMs read different layouts). q4_0 and q4_k under relaxed SIMD: int8 (ggml's
        // q8_0 rounding) for relaxed int8 dot products, 1.3x the int16 kernel in whole-model decode.
        // Otherwise int16 (q8_0 keeps int16 everywhere: its int8 kernel was no faster). q4_k shares
        // q4_0's layouts, kernels' loops and thresholds (assembly/q4_k_layout.ts).
        const q4k = w.format === 'q4_k';
        const int8 = this.relaxed && w.format !== 'q8_0';
        const gemm = T >= (this.options.quantGemmMinTokens ?? quantGemmMinTokens(w.format, int8));
        // int8 decode reads the GEMMs' grouping in dense rows (half the cache of the paired layout at T = 1).
        const layout = int8 ? (gemm ? 'i8x4' : 'i8d') : gemm ? 'i16x4' : w.format === 'q8_0' ? 'i16q8' : 'i16';
        const key = `${A.index}:${layout}`;
        // The GEMMs' layout pairs tokens: an odd T takes one more row.
        const xq = A.scratchBlock(`xq:${layout}`, (gemm ? T + (T & 1) : T) * K * (int8 ? 1 : 2));
        const xs = A.scratchBlock(`xs:${layout}`, (T * K) / 8);
        const xsum = A.scratchBlock(`xsum:${layout}`, (T * K) / 8);
        if (!quantized?.has(key)) {
          const quantizer = ({ i8x4: 'quantize_q8x4', i8d: 'quantize_q8x4_dense', i16x4: 'quantize_q16x4', i16q8: 'quantize_q16q8', i16: 'quantize_q16_q4' } as const)[layout];
          this.run(quantizer, A.index, T, 2, [x, xq, xs, xsum, T, K]);
          quantized?.add(key);
        }
        if (gemm) {
          // A panel's quants and f32 block scales (q4_k: and f32 mins).
          const stride = PANEL * K * (int8 ? 1 : 2) + PANEL * (K / 32) * 4 * (q4k ? 2 : 1);
          const base = A.scratchBlock('panel', stride * threads);
          const kernel = q4k ? (int8 ? 'matmul_q4_k_i8_gemm' : 'matmul_q4_k_i16_gemm')
            : int8 ? 'matmul_q4_0_i8_gemm' : w.format === 'q4_0' ? 'matmul_q4_0_i16_gemm' : 'matmul_q8_0_i16_gemm';
          this.run(kernel, A.index, N, PANEL, [xq, xs, xsum, w.ptr, w.scales, bias, out, T, K, N], { base, stride });
          return;
        }
        const kernel = q4k ? (int8 ? 'matmul_q4_k_i8' : 'matmul_q4_k_nib') : int8 ? 'matmul_q4_0_i8' : w.format === 'q4_0' ? 'matmul_q4_0_nib' : 'matmul_q8_0';
        this.run(kernel, A.index, N, 16, [xq, xs, xsum, w.ptr, w.scales, bias, out, T, K, N]);
        return;
      }
    }
  }

  private async arenaFor(bytes: number): Promise<Arena> {
    const budget = (a: Arena): number => (a.index === 0 ? this.options.firstMemoryWeightBytes : this.options.memoryWeightBytes);
    for (const a of this.arenas) {
      if (a.weightBytes + bytes <= budget(a) && a.allocator.available() >= bytes + 1024) return a;
    }
    if (bytes > this.options.memoryWeightBytes) throw new RangeError(`backend-wasm: a weight of ${bytes} bytes exceeds one memory's share (${this.options.memoryWeightBytes} bytes)`);
    const arena = new Arena(this.arenas.length, this.module, this.shared);
    this.arenas.push(arena);
    await this.pool?.addMemory(arena.memory);
    return arena;
  }

  private alive(): void {
    if (this.disposed) throw new BackendUsageError('the wasm backend was disposed');
  }

  private tensor(t: Tensor, what: string): WasmTensor {
    if (!(t instanceof WasmTensor) || t.owner !== this) throw new BackendUsageError(`${what}: not a tensor of this wasm backend`);
    if (t.dead || this.disposed) throw new BackendUsageError(`${what}: tensor used after free`);
    return t;
  }

  private weight(w: Weight, what: string): WasmWeight {
    if (!(w instanceof WasmWeight) || w.owner !== this) throw new BackendUsageError(`${what}: not a weight of this wasm backend`);
    if (w.freed || this.disposed) throw new BackendUsageError(`${what}: weight '${w.name}' used after free`);
    return w;
  }

  private vector(w: Weight, what: string, length: number): WasmWeight {
    const v = this.weight(w, what);
    if (v.rows !== 1 || v.cols !== length) throw new BackendUsageError(`${what}: '${v.name}' [${v.rows}, ${v.cols}] is not a vector of ${length}`);
    return v;
  }

  private cache(c: KVCache, what: string): WasmKVCache {
    if (!(c instanceof WasmKVCache) || c.owner !== this) throw new BackendUsageError(`${what}: not a KV cache of this wasm backend`);
    if (c.freed || this.disposed) throw new BackendUsageError(`${what}: KV cache used after free`);
    return c;
  }
}


function asBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Logical CPUs (Node: os.availableParallelism; browsers: navigator.hardwareConcurrency), at most 16. */
async function defaultThreads(): Promise<number> {
  let n = 1;
  if (typeof process !== 'undefined' && typeof process.versions?.node === 'string') {
    const specifier = 'node:os';
    const os = (await import(/* @vite-ignore */ specifier)) as typeof import('node:os');
    n = os.availableParallelism?.() ?? os.cpus().length;
  } else if (typeof navigator !== 'undefined') {
    n = navigator.hardwareConcurrency ?? 1;
  }
  return Math.max(1, Math.min(16, n));
}

/** A vector weight of any format as f32 values (norm weights and biases are stored as f32). */
function dequantizeVector(w: HostWeight): Float32Array {
  const out = new Float32Array(w.cols);
  const f16 = (h: number): number => {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    if (e === 0) return s * m * 2 ** -24;
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * 2 ** (e - 15);
  };
  switch (w.format) {
    case 'f32':
      out.set(w.data);
      break;
    case 'f16':
      for (let i = 0; i < w.cols; i++) out[i] = f16(w.data[i]!);
      break;
    case 'bf16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < w.cols; i++) u32[i] = w.data[i]! << 16;
      break;
    }
    case 'q8_0':
      for (let i = 0; i < w.cols; i++) out[i] = f16(w.scales[i >> 5]!) * w.quants[i]!;
      break;
    case 'q4_0':
      for (let i = 0; i < w.cols; i++) {
        const b = i >> 5, j = i & 31;
        const byte = w.quants[b * 16 + (j & 15)]!;
        out[i] = f16(w.scales[b]!) * ((j < 16 ? byte & 15 : byte >> 4) - 8);
      }
      break;
    case 'q4_k':
      dequantizeQ4_KRow(w.blocks, w.cols, 0, out);
      break;
  }
  return out;
}
