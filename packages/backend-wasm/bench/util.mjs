// Shared helpers of the benchmark scripts.
import { createReadStream, existsSync, statSync } from 'node:fs';

/** Seconds per call of fn: `warmup` calls, then as many as fit in `budget` seconds (at least 2); the median. */
export function timeIt(fn, budget = 0.5, warmup = 1) {
  for (let i = 0; i < warmup; i++) fn();
  const times = [];
  const end = performance.now() + budget * 1000;
  while (times.length < 2 || (performance.now() < end && times.length < 200)) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random HostWeight of `format` (values in about [-0.05, 0.05]); quantized formats get random codes. */
export function randomWeight(format, rows, cols, seed) {
  const r = rng(seed);
  const n = rows * cols;
  if (format === 'f32') return { host: { format, rows, cols, data: Float32Array.from({ length: n }, () => (r() - 0.5) * 0.1) } };
  if (format === 'bf16' || format === 'f16') {
    const data = new Uint16Array(n);
    // bf16 0.0x / f16 0.0x patterns with random mantissas and signs.
    const base = format === 'bf16' ? 0x3c00 : 0x2400;
    for (let i = 0; i < n; i++) data[i] = base | (r() < 0.5 ? 0x8000 : 0) | Math.floor(r() * (format === 'bf16' ? 0x100 : 0x800));
    return { host: { format, rows, cols, data } };
  }
  if (format === 'q4_k') {
    // ggml's Q4_K blocks of random bytes (any 12 bytes are valid 6-bit scales and mins), d and dmin 2^-12.
    const blocks = new Uint8Array((n / 256) * 144);
    for (let i = 0; i < blocks.length; i++) blocks[i] = Math.floor(r() * 256);
    for (let at = 0; at < blocks.length; at += 144) blocks.set([0x00, 0x0c, 0x00, 0x0c], at);
    return { host: { format, rows, cols, blocks } };
  }
  const scales = new Uint16Array(n / 32).fill(0x1c00); // f16 2^-8
  if (format === 'q8_0') {
    const quants = new Int8Array(n);
    for (let i = 0; i < n; i++) quants[i] = Math.floor(r() * 255) - 127;
    return { host: { format, rows, cols, scales, quants } };
  }
  const quants = new Uint8Array(n / 2);
  for (let i = 0; i < n / 2; i++) quants[i] = Math.floor(r() * 256);
  return { host: { format, rows, cols, scales, quants } };
}

/**
 * Memory read bandwidth in GB/s with `threads` threads: this backend's `read_chunks` kernel (v128 loads,
 * sum kept) over a 256 MiB buffer, split between the threads like a matvec's rows: the denominator of
 * every "fraction of the bandwidth bound" the benchmarks print.
 */
export async function measureReadBandwidth(wasmBackend, threads) {
  const probe = await wasmBackend({ threads });
  try {
    const bytes = 256 << 20;
    const buf = probe.alloc(bytes / 4096, 1024);
    probe.write(buf, new Float32Array(bytes / 4).fill(1));
    const sums = probe.alloc(threads * 16, 1);
    const seconds = timeIt(() => probe.run('read_chunks', 0, bytes / (1 << 20), 1, [buf.ptr, 1 << 20], { base: sums.ptr, stride: 64 }), 0.5);
    return bytes / seconds / 1e9;
  } finally {
    await probe.dispose();
  }
}

/** The median, averaging the two middle values of an even count: the same as `qwen2 bench` reports. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * The `--key=value` flags of the comparison scripts (vs-llama-cpp, vs-wllama) with their shared
 * defaults: formats, threads, prompt and generated tokens, runs per round, rounds.
 */
export function comparisonArgs(argv = process.argv.slice(2), defaults = {}) {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
  return {
    args,
    formats: (args.get('formats') ?? defaults.formats ?? 'bf16,q8_0,q4_0').split(','),
    threads: Number(args.get('threads') ?? 2),
    promptTokens: Number(args.get('prompt-tokens') ?? 64),
    genTokens: Number(args.get('gen-tokens') ?? 32),
    repeats: Number(args.get('repeats') ?? 2),
    rounds: Number(args.get('rounds') ?? 3),
  };
}

/**
 * Answers a GET or HEAD for `file` as a static server with Range support does (206 with Content-Range,
 * 416 past the end, 404 when it is missing), with `headers` on every answer.
 */
export function sendFile(req, res, file, headers = {}) {
  if (!file || !existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404, headers).end();
  const size = statSync(file).size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]), end = Math.min(size - 1, range[2] ? Number(range[2]) : size - 1);
    if (start >= size) return void res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
    res.writeHead(206, { ...headers, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
    return void (req.method === 'HEAD' ? res.end() : createReadStream(file, { start, end }).pipe(res));
  }
  res.writeHead(200, { ...headers, 'content-length': size, 'accept-ranges': 'bytes' });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
}
