// Memory-bandwidth probes for the benchmark: the speed limit the matmul kernels are measured against.

/** Reads n bytes (n % 64 == 0) and returns a checksum so the loads cannot be optimized away. */
export function read_bytes(p: usize, n: usize): i32 {
  let a = i32x4.splat(0), b = i32x4.splat(0), c = i32x4.splat(0), d = i32x4.splat(0);
  for (let i: usize = 0; i < n; i += 64) {
    a = i32x4.add(a, v128.load(p + i)); b = i32x4.add(b, v128.load(p + i, 16));
    c = i32x4.add(c, v128.load(p + i, 32)); d = i32x4.add(d, v128.load(p + i, 48));
  }
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return i32x4.extract_lane(s, 0) ^ i32x4.extract_lane(s, 1) ^ i32x4.extract_lane(s, 2) ^ i32x4.extract_lane(s, 3);
}

/** Parallel form of read_bytes over chunk c0..c1 of `chunk` bytes each (for the threaded probe). */
export function read_chunks(c0: i32, c1: i32, scratch: usize, p: usize, chunk: i32): void {
  let s = 0;
  for (let c = c0; c < c1; c++) s ^= read_bytes(p + <usize>c * <usize>chunk, <usize>chunk);
  store<i32>(scratch, s);
}
