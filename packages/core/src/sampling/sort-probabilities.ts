// Ascending sort of non-negative float64 values (probabilities) by their bits: for x >= 0 the IEEE-754
// bit pattern read as an unsigned 64-bit integer orders exactly as the number does, so an LSD radix sort
// on four 16-bit digits gives the same array as a comparison sort. On Qwen2's 151,936 probabilities it
// takes a few milliseconds where TypedArray.prototype.sort took about 14: top-p without top-k sorts
// every kept probability.

const DIGITS = 4;
const RADIX = 1 << 16;

/**
 * Sorts `values` (all >= +0: no NaN, no -0, which as bits would sort last) ascending, in place;
 * returns it.
 * Small arrays use the built-in sort.
 */
export function sortProbabilities(values: Float64Array): Float64Array {
  const n = values.length;
  if (n < 4096) return values.sort();
  let src: Float64Array = values;
  let dst: Float64Array = new Float64Array(n);
  let srcBits: Uint32Array = new Uint32Array(src.buffer, src.byteOffset, n * 2);
  let dstBits: Uint32Array = new Uint32Array(dst.buffer, dst.byteOffset, n * 2);
  const counts = new Uint32Array(RADIX);
  for (let d = 0; d < DIGITS; d++) {
    // Digit d: bits 16d..16d+15 of the 64-bit pattern (little-endian words: low word first).
    const word = d >> 1;
    const shift = (d & 1) * 16;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(srcBits[2 * i + word]! >>> shift) & 0xffff]!++;
    // All values share this digit: nothing to move.
    if (counts[(srcBits[word]! >>> shift) & 0xffff] === n) continue;
    let sum = 0;
    for (let k = 0; k < RADIX; k++) {
      const c = counts[k]!;
      counts[k] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const lo = srcBits[2 * i]!;
      const hi = srcBits[2 * i + 1]!;
      const at = counts[(((word === 0 ? lo : hi) >>> shift) & 0xffff)]!++;
      dstBits[2 * at] = lo;
      dstBits[2 * at + 1] = hi;
    }
    [src, dst] = [dst, src];
    [srcBits, dstBits] = [dstBits, srcBits];
  }
  if (src !== values) values.set(src);
  return values;
}
