import { FreeListAllocator } from './allocator.js';
import { kernelImports, MAX_PAGES, STATIC_BYTES, type KernelExports } from './kernels.js';

const PAGE = 65536;
/**
 * Maximum sizes tried for a new memory, largest first (4, 2, 1 GiB, 512 MiB): a shared memory reserves
 * its maximum as address space up front, which a browser on a phone or a 32-bit system may refuse.
 */
const MAXIMA = [MAX_PAGES, MAX_PAGES / 2, MAX_PAGES / 4, MAX_PAGES / 8];

/** A memory with the largest maximum in {@link MAXIMA} that the engine grants. */
function createMemory(shared: boolean): { memory: WebAssembly.Memory; maxPages: number } {
  let error: unknown;
  for (const maxPages of MAXIMA) {
    try {
      return { memory: new WebAssembly.Memory({ initial: 2, maximum: maxPages, shared } as WebAssembly.MemoryDescriptor), maxPages };
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      error = e;
    }
  }
  throw new RangeError(`backend-wasm: the engine refused a WebAssembly memory of even ${MAXIMA.at(-1)! * PAGE / 2 ** 20} MiB (${(error as Error).message})`);
}

/**
 * One wasm memory (at most 4 GiB) with its own instance of the kernels and its own allocator. The
 * backend keeps several when the weights do not fit one (a 7B model): a kernel can only address the
 * memory its instance imported, so every matmul runs in the arena of its weight.
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  /** The memory's maximum in 64 KiB pages: 65536 (4 GiB) unless the engine refused that much. */
  readonly maxPages: number;
  readonly kernels: KernelExports;
  readonly allocator: FreeListAllocator;
  /** Bytes of weights placed here. */
  weightBytes = 0;
  private readonly scratch = new Map<string, { ptr: number; bytes: number }>();
  private f32Cache: Float32Array | undefined;
  private u8Cache: Uint8Array | undefined;

  /**
   * @param index - position in the backend's arena list (the memory index workers use)
   * @param shared - whether the memory is shared with workers (needs SharedArrayBuffer)
   */
  constructor(readonly index: number, module: WebAssembly.Module, shared: boolean) {
    ({ memory: this.memory, maxPages: this.maxPages } = createMemory(shared));
    const instance = new WebAssembly.Instance(module, kernelImports(this.memory));
    this.kernels = instance.exports as unknown as KernelExports;
    this.allocator = new FreeListAllocator(STATIC_BYTES, this.capacity);
  }

  /** Bytes the memory can grow to. */
  get capacity(): number {
    return this.maxPages * PAGE;
  }

  /**
   * Allocates `bytes`, growing the memory as needed.
   * @returns the offset, or -1 when the arena is full
   */
  alloc(bytes: number): number {
    const ptr = this.allocator.alloc(bytes);
    if (ptr < 0) return -1;
    this.cover(this.allocator.top);
    return ptr;
  }

  release(ptr: number): void {
    this.allocator.release(ptr);
  }

  /**
   * A named scratch block of at least `bytes`, reallocated (contents lost) when it must grow.
   * @throws RangeError when the arena has no room left
   */
  scratchBlock(name: string, bytes: number): number {
    const s = this.scratch.get(name);
    if (s && s.bytes >= bytes) return s.ptr;
    if (s) this.release(s.ptr);
    const want = Math.max(bytes, s ? s.bytes * 2 : 0);
    let size = want;
    let ptr = this.alloc(size);
    if (ptr < 0) ptr = this.alloc((size = bytes));
    if (ptr < 0) {
      this.scratch.delete(name);
      throw new RangeError(`backend-wasm: no room for ${bytes} bytes of scratch in memory ${this.index}`);
    }
    this.scratch.set(name, { ptr, bytes: size });
    return ptr;
  }

  /** Bytes held by scratch blocks. */
  scratchBytes(): number {
    let n = 0;
    for (const s of this.scratch.values()) n += s.bytes;
    return n;
  }

  /** A Float32Array over the whole memory (refreshed after growth). */
  get f32(): Float32Array {
    const buf = this.memory.buffer;
    if (this.f32Cache?.byteLength !== buf.byteLength) this.f32Cache = new Float32Array(buf);
    return this.f32Cache;
  }

  /** A Uint8Array over the whole memory (refreshed after growth). */
  get u8(): Uint8Array {
    const buf = this.memory.buffer;
    if (this.u8Cache?.byteLength !== buf.byteLength) this.u8Cache = new Uint8Array(buf);
    return this.u8Cache;
  }

  private cover(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    // Grow in steps of at least 1/8 of the current size so that many small allocations do not grow page by page.
    const need = Math.ceil((end - have) / PAGE);
    const step = Math.max(need, Math.min(Math.ceil(have / PAGE / 8), this.maxPages - have / PAGE));
    this.memory.grow(Math.min(step, this.maxPages - have / PAGE));
  }
}
