// Row-wise and element-wise kernels on f32 activations. Pointers are byte offsets into the memory.
import { expf, expv, hsum } from './common';

/** out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * g, for `rows` rows of n. out may be x. */
export function rms_norm(x: usize, g: usize, out: usize, rows: i32, n: i32, eps: f64): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * <usize>n) << 2);
    const orow = out + ((<usize>r * <usize>n) << 2);
    // Sum of squares in f64 halves (two f64x2 chains): the reference sums in float64.
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      const lo = f64x2.promote_low_f32x4(v);
      const hi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
      a0 = f64x2.add(a0, f64x2.mul(lo, lo));
      a1 = f64x2.add(a1, f64x2.mul(hi, hi));
    }
    let ss = f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1) + f64x2.extract_lane(a1, 0) + f64x2.extract_lane(a1, 1);
    for (; i < n; i++) { const v = <f64>load<f32>(xr + (<usize>i << 2)); ss += v * v; }
    const inv = <f32>(1.0 / Math.sqrt(ss / <f64>n + eps));
    const vinv = f32x4.splat(inv);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const off = <usize>i << 2;
      v128.store(orow + off, f32x4.mul(f32x4.mul(v128.load(xr + off), vinv), v128.load(g + off)));
    }
    for (; i < n; i++) { const off = <usize>i << 2; store<f32>(orow + off, load<f32>(xr + off) * inv * load<f32>(g + off)); }
  }
}

/** out = a + b over n floats. out may alias a or b. */
export function add_f32(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o))); }
  for (; i < n; i++) { const o = <usize>i << 2; store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o)); }
}

/**
 * out = silu(gate) * up over elements [i0, i1) (the thread pool splits the n of a call), four at a time
 * with common.ts's SIMD exp. out may alias gate or up (each element is read before it is written).
 */
export function swiglu_f32(i0: i32, i1: i32, scratch: usize, gate: usize, up: usize, out: usize): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    const g = v128.load(gate + o);
    const silu = f32x4.div(g, f32x4.add(f32x4.splat(1), expv(f32x4.neg(g))));
    v128.store(out + o, f32x4.mul(silu, v128.load(up + o)));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(gate + o);
    const e = expf(-g);
    store<f32>(out + o, (g / (1.0 + e)) * load<f32>(up + o));
  }
}

/** Adds the vector bias[n] to each of `rows` rows of out. */
export function add_bias(out: usize, bias: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) add_f32(out + ((<usize>r * <usize>n) << 2), bias, out + ((<usize>r * <usize>n) << 2), n);
}

/**
 * Rotary embedding (rotate-half) in place on x[T, heads*headDim]; `table` holds, per row t, half
 * cosines then half sines (precomputed in float64 on the host).
 */
export function rope_f32(x: usize, table: usize, T: i32, heads: i32, headDim: i32): void {
  const half = headDim >> 1;
  for (let t = 0; t < T; t++) {
    const cs = table + ((<usize>t * <usize>headDim) << 2);
    const sn = cs + (<usize>half << 2);
    for (let h = 0; h < heads; h++) {
      const p = x + ((<usize>(t * heads + h) * <usize>headDim) << 2);
      const q = p + (<usize>half << 2);
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const x1 = v128.load(p + o), x2 = v128.load(q + o), c = v128.load(cs + o), s = v128.load(sn + o);
        v128.store(p + o, f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, s)));
        v128.store(q + o, f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, s)));
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const x1 = load<f32>(p + o), x2 = load<f32>(q + o), c = load<f32>(cs + o), s = load<f32>(sn + o);
        store<f32>(p + o, x1 * c - x2 * s);
        store<f32>(q + o, x2 * c + x1 * s);
      }
    }
  }
}

/** Dot product of two f32 vectors of length n. */
export function dot_f32(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; acc = f32x4.add(acc, f32x4.mul(v128.load(a + o), v128.load(b + o))); }
  let s = hsum(acc);
  for (; i < n; i++) { const o = <usize>i << 2; s += load<f32>(a + o) * load<f32>(b + o); }
  return s;
}
