import type { NativeAddon, NativeDeviceInfo } from './addon.js';

/** One call the stand-in addon received. */
export interface Call {
  fn: string;
  args: unknown[];
}

/**
 * A stand-in for the native addon that records every call, for testing the host-side logic (argument
 * marshalling, pass bookkeeping, graph reuse) where no GPU exists. Device memory is modelled only as
 * addresses; no kernel runs.
 */
export function fakeAddon(overrides: Partial<NativeAddon> = {}): NativeAddon & { calls: Call[]; live: Map<number, number> } {
  const calls: Call[] = [];
  const live = new Map<number, number>();
  let next = 0x7f0000000000;
  let graphs = 0;
  const record = (fn: string) => (...args: unknown[]) => {
    calls.push({ fn, args });
  };
  // The calls that write or read a KV cache take its dtype code last, as the native ones do: those
  // throw a TypeError for a missing argument and fail the launch for an unknown code.
  const kvCall = (fn: string, arity: number) => (...args: unknown[]) => {
    if (args.length < arity) throw new TypeError(`qwen2_cuda: expected ${arity} arguments, got ${args.length}`);
    if (args[arity - 1] !== 0 && args[arity - 1] !== 1) throw new Error(`${fn}: cudaErrorInvalidValue (KV cache dtype code ${String(args[arity - 1])})`);
    calls.push({ fn, args });
  };
  const info: NativeDeviceInfo = { ctx: 0, name: 'Fake GPU', totalBytes: 80 * 2 ** 30, freeBytes: 79 * 2 ** 30, computeCapability: 90, smCount: 132 };
  const base: NativeAddon = {
    probe: () => ({ runtimeVersion: 13000, driverVersion: 13000, deviceCount: 1, error: 0, errorName: 'cudaSuccess', errorString: 'no error' }),
    init: () => info,
    setProgrammaticLaunch: (ctx, on) => {
      calls.push({ fn: 'setProgrammaticLaunch', args: [ctx, on] });
      return on !== 0 && info.computeCapability >= 90;
    },
    destroy: record('destroy'),
    malloc: (ctx, bytes) => {
      calls.push({ fn: 'malloc', args: [ctx, bytes] });
      const p = next;
      next += Math.ceil(bytes / 256) * 256 + 256;
      live.set(p, bytes);
      return p;
    },
    free: (ctx, ptr) => {
      calls.push({ fn: 'free', args: [ctx, ptr] });
      if (!live.delete(ptr)) throw new Error(`fake addon: double free of ${ptr}`);
    },
    memInfo: () => ({ freeBytes: info.freeBytes, totalBytes: info.totalBytes }),
    upload: record('upload'),
    download: (ctx, ptr, bytes) => {
      calls.push({ fn: 'download', args: [ctx, ptr, bytes] });
      return new ArrayBuffer(bytes);
    },
    sync: record('sync'),
    setPassPos: record('setPassPos'),
    embed: record('embed'),
    rmsNorm: record('rmsNorm'),
    matmul: record('matmul'),
    rope: record('rope'),
    ropeQK: kvCall('ropeQK', 15),
    writeKV: kvCall('writeKV', 12),
    attention: kvCall('attention', 17),
    swiglu: record('swiglu'),
    add: record('add'),
    copy: record('copy'),
    argmaxKeep: (ctx, logits, rows, cols, slot) => {
      calls.push({ fn: 'argmaxKeep', args: [ctx, logits, rows, cols, slot] });
      return 0x7e0000000000;
    },
    readKept: (ctx, slot, rows) => {
      calls.push({ fn: 'readKept', args: [ctx, slot, rows] });
      return new Int32Array(rows);
    },
    sampleKeep: (...args) => {
      calls.push({ fn: 'sampleKeep', args });
      return 0x7e0000000000;
    },
    beginCapture: record('beginCapture'),
    endCapture: (ctx, discard) => {
      calls.push({ fn: 'endCapture', args: [ctx, discard] });
      return discard ? -1 : graphs++;
    },
    launchGraph: record('launchGraph'),
    destroyGraph: record('destroyGraph'),
    copyBandwidth: () => 0,
  };
  return Object.assign(base, overrides, { calls, live });
}
