import type { Buf } from './objects.js';
import type { KernelDef } from './wgsl/kernel-def.js';

// WebGPU enum values, spelled out so that nothing depends on the GPUBufferUsage globals (Dawn in Node
// only provides them when its `globals` were installed).
export const USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const STAGE_COMPUTE = 4;
const MAP_READ = 1;

/** Bytes of one dispatch's uniform slice (the dynamic-offset alignment WebGPU guarantees). */
const UNIFORM_SLOT = 256;
const UNIFORM_SLOTS = 2048;

/** A compute pipeline, its bind group layout and the bind groups made for it. */
interface PipelineEntry {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly label: string;
  /** By the ids of the bound buffers (the uniform arena is the same for every dispatch). */
  readonly groups: Map<string, { group: GPUBindGroup; ids: number[] }>;
}

/**
 * Records dispatches into one command encoder and one compute pass, and submits them all at once
 * (`flush`). Owns what every dispatch shares: the pipeline and bind group caches, the uniform arena
 * (one 256-byte slice per dispatch, uploaded with a single `writeBuffer` per submission) and the aux
 * arena (per-submission host data: token ids, rope tables, sampling history).
 */
export class Runtime {
  private nextId = 1;
  /** Pipelines by kernel key, each with its bind groups by the ids of the buffers they bind. */
  private readonly pipelines = new Map<string, PipelineEntry>();
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private readonly uniformHost = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private readonly uniformU32 = new Uint32Array(this.uniformHost);
  private readonly uniformF32 = new Float32Array(this.uniformHost);
  private uniformSlots = 0;
  private readonly uniform: Buf;
  /** The one dynamic offset of every setBindGroup, reused instead of a new array per dispatch. */
  private readonly dynamicOffset = new Uint32Array(1);
  /** The pipeline set last on the open compute pass (a repeat needs no setPipeline). */
  private lastPipeline: GPUComputePipeline | undefined;
  private auxHost = new Uint32Array(1 << 16);
  private auxUsed = 0;
  private aux: Buf;
  /** Buffers freed while commands that use them may still be unsubmitted; destroyed after the next submit. */
  private graveyard: Buf[] = [];
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** Host memo of aux uploads of this submission (for example the rope table, shared by every layer). */
  readonly auxMemo = new Map<string, number>();
  /** Command buffers submitted so far (a pass should add exactly one). */
  submissions = 0;
  /** Dispatches recorded so far (the benchmark prints them per token: each costs host time to record). */
  dispatches = 0;
  /** A dispatch held back by {@link Runtime.defer}, recorded before any other command. */
  private deferred: { tag: unknown; record: () => void } | undefined;

  constructor(readonly device: GPUDevice) {
    this.uniform = this.createBuffer(UNIFORM_SLOT * UNIFORM_SLOTS, USAGE.UNIFORM | USAGE.COPY_DST, 'qwen2-ts uniforms');
    this.aux = this.createBuffer(this.auxHost.byteLength, USAGE.STORAGE | USAGE.COPY_DST, 'qwen2-ts aux');
  }

  createBuffer(size: number, usage: number, label: string, mappedAtCreation = false): Buf {
    const s = Math.max(16, Math.ceil(size / 16) * 16);
    const buffer = this.device.createBuffer({ size: s, usage, label, mappedAtCreation });
    return { id: this.nextId++, buffer, size: s };
  }

  /**
   * Holds a dispatch back until the next command (dispatch, copy, submit, buffer release), so that the
   * backend may replace it and that next command by one fused dispatch ({@link Runtime.takeDeferred}).
   * Everything that records or submits settles it first, so the order of commands never changes.
   */
  defer(tag: unknown, record: () => void): void {
    this.settle();
    this.deferred = { tag, record };
  }

  /** Takes back the held-back dispatch without recording it, when `match` accepts its tag. */
  takeDeferred<T>(match: (tag: unknown) => tag is T): T | undefined {
    const d = this.deferred;
    if (!d || !match(d.tag)) return undefined;
    this.deferred = undefined;
    return d.tag;
  }

  /** Forgets the held-back dispatch without recording it (its buffers are going away). */
  dropDeferred(): void {
    this.deferred = undefined;
  }

  /** Records the held-back dispatch, if any (without submitting anything). */
  settle(): void {
    const d = this.deferred;
    if (!d) return;
    this.deferred = undefined;
    d.record();
  }

  /** Destroys a buffer once no recorded-but-unsubmitted command can use it. */
  release(b: Buf): void {
    this.settle();
    this.forgetBindGroups(b.id);
    if (this.encoder) this.graveyard.push(b);
    else b.buffer.destroy();
  }

  get pending(): boolean {
    return this.encoder !== undefined;
  }

  /** The aux buffer (bound read-only by kernels that take host data). */
  get auxBuf(): Buf {
    return this.aux;
  }

  /** Appends host data for this submission; returns its offset in u32 words. */
  pushAux(data: Uint32Array | Int32Array | Float32Array): number {
    const words = data.length;
    if (this.auxUsed + words > this.aux.size / 4) {
      // Recorded dispatches bind the current aux buffer: submit them before replacing it.
      this.flush();
      if (words > this.aux.size / 4) {
        this.release(this.aux);
        let cap = this.aux.size / 4;
        while (cap < words) cap *= 2;
        this.auxHost = new Uint32Array(cap);
        this.aux = this.createBuffer(cap * 4, USAGE.STORAGE | USAGE.COPY_DST, 'qwen2-ts aux');
      }
    }
    const off = this.auxUsed;
    this.auxHost.set(new Uint32Array(data.buffer, data.byteOffset, words), off);
    this.auxUsed += words;
    return off;
  }

  private pipeline(def: KernelDef): PipelineEntry {
    let p = this.pipelines.get(def.key);
    if (p) return p;
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } }];
    for (let i = 0; i < def.acts; i++) entries.push({ binding: 1 + i, visibility: STAGE_COMPUTE, buffer: { type: 'storage' } });
    def.extras.forEach((kind, i) => entries.push({ binding: 1 + def.acts + i, visibility: STAGE_COMPUTE, buffer: { type: kind === 'ro' ? 'read-only-storage' : 'storage' } }));
    const layout = this.device.createBindGroupLayout({ entries, label: def.key });
    const module = this.device.createShaderModule({ code: def.code, label: def.key });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
      label: def.key,
    });
    p = { pipeline, layout, label: def.key, groups: new Map() };
    this.pipelines.set(def.key, p);
    return p;
  }

  private bindGroup(p: PipelineEntry, bufs: readonly Buf[]): GPUBindGroup {
    // Every dispatch looks its bind group up: a short key of buffer ids, built without intermediate
    // arrays (recording over a hundred dispatches per token makes this a measurable share of host time).
    let key = '';
    for (let i = 0; i < bufs.length; i++) key += `${bufs[i]!.id},`;
    const hit = p.groups.get(key);
    if (hit) return hit.group;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.uniform.buffer, size: UNIFORM_SLOT } }];
    bufs.forEach((b, i) => entries.push({ binding: 1 + i, resource: { buffer: b.buffer } }));
    const group = this.device.createBindGroup({ layout: p.layout, entries, label: p.label });
    p.groups.set(key, { group, ids: bufs.map((b) => b.id) });
    return group;
  }

  private forgetBindGroups(id: number): void {
    for (const p of this.pipelines.values()) for (const [k, v] of p.groups) if (v.ids.includes(id)) p.groups.delete(k);
  }

  /**
   * Records one dispatch. `bufs` are the distinct activation buffers (bindings 1..def.acts) followed by
   * the extra bindings; `params` fills the kernel's uniform fields by name.
   */
  dispatch(def: KernelDef, bufs: readonly Buf[], params: Record<string, number>, x: number, y = 1): void {
    this.settle();
    if (x === 0 || y === 0) return;
    this.dispatches++;
    if (this.uniformSlots === UNIFORM_SLOTS) this.flush();
    const p = this.pipeline(def);
    const slot = this.uniformSlots++;
    const base = (slot * UNIFORM_SLOT) / 4;
    const fields = def.fields;
    for (let i = 0; i < fields.length; i++) {
      const [name, type] = fields[i]!;
      const v = params[name];
      if (v === undefined) throw new Error(`internal: kernel ${def.key} misses uniform ${name}`);
      if (type === 'f32') this.uniformF32[base + i] = v;
      else this.uniformU32[base + i] = v >>> 0;
    }
    const group = this.bindGroup(p, bufs);
    const pass = this.computePass();
    if (p.pipeline !== this.lastPipeline) {
      pass.setPipeline(p.pipeline);
      this.lastPipeline = p.pipeline;
    }
    this.dynamicOffset[0] = slot * UNIFORM_SLOT;
    pass.setBindGroup(0, group, this.dynamicOffset, 0, 1);
    pass.dispatchWorkgroups(x, y);
  }

  /** Records a dispatch of `total` workgroups laid out 2-D (kernels use `wgIndex`). */
  dispatchFlat(def: KernelDef, bufs: readonly Buf[], params: Record<string, number>, total: number): void {
    const x = Math.min(total, 32768);
    this.dispatch(def, bufs, params, x, Math.ceil(total / x));
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.pass = this.commandEncoder().beginComputePass();
      this.lastPipeline = undefined;
    }
    return this.pass;
  }

  /** Records a buffer copy (ends the current compute pass). */
  copy(src: Buf, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.settle();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    this.commandEncoder().copyBufferToBuffer(src.buffer, srcOffset, dst, dstOffset, bytes);
  }

  /** Submits everything recorded so far as one command buffer. */
  flush(): void {
    this.settle();
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    const q = this.device.queue;
    if (this.uniformSlots > 0) q.writeBuffer(this.uniform.buffer, 0, this.uniformHost, 0, this.uniformSlots * UNIFORM_SLOT);
    if (this.auxUsed > 0) q.writeBuffer(this.aux.buffer, 0, this.auxHost.buffer, 0, this.auxUsed * 4);
    q.submit([this.encoder.finish()]);
    this.submissions++;
    this.encoder = undefined;
    this.uniformSlots = 0;
    this.auxUsed = 0;
    this.auxMemo.clear();
    for (const b of this.graveyard) b.buffer.destroy();
    this.graveyard = [];
  }

  /** Copies `bytes` from `src` into host memory after all recorded work (submits it). */
  async readBack(src: Buf, srcOffset: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(Math.ceil(bytes / 4) * 4)));
    const pool = this.staging.get(size) ?? [];
    this.staging.set(size, pool);
    const staging = pool.pop() ?? this.device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST, label: 'qwen2-ts readback' });
    this.copy(src, srcOffset, staging, 0, Math.ceil(bytes / 4) * 4);
    this.flush();
    try {
      await staging.mapAsync(MAP_READ, 0, Math.ceil(bytes / 4) * 4);
      const out = staging.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
      staging.unmap();
      pool.push(staging);
      return out;
    } catch (e) {
      staging.destroy();
      throw e;
    }
  }

  /** Destroys every buffer this runtime owns. */
  destroy(): void {
    this.dropDeferred();
    this.encoder = undefined;
    this.pass = undefined;
    for (const b of this.graveyard) b.buffer.destroy();
    this.graveyard = [];
    this.uniform.buffer.destroy();
    this.aux.buffer.destroy();
    for (const pool of this.staging.values()) for (const s of pool) s.destroy();
    this.staging.clear();
    this.pipelines.clear();
  }
}
