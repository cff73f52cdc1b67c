// Causal grouped-query attention over an f32 KV cache. Cache layout per layer: keys then values, each
// [kvHeads][maxTokens][headDim], so one head's history is contiguous. Scores live in the thread's
// scratch (maxTokens floats). Parallel over query heads h0..h1.
import { hsum } from './common';

export function attention_f32(h0: i32, h1: i32, scratch: usize, q: usize, kc: usize, vc: usize, out: usize, T: i32, startPos: i32,
  heads: i32, kvHeads: i32, headDim: i32, maxTokens: i32, scale: f32, window: i32): void {
  const group = heads / kvHeads;
  const rowBytes = <usize>(heads * headDim) << 2;
  const hdBytes = <usize>headDim << 2;
  const D4 = headDim & ~3;
  for (let h = h0; h < h1; h++) {
    const g = h / group;
    const kh = kc + <usize>g * <usize>maxTokens * hdBytes;
    const vh = vc + <usize>g * <usize>maxTokens * hdBytes;
    for (let t = 0; t < T; t++) {
      const pos = startPos + t;
      const first = window > 0 ? max(0, pos - window + 1) : 0;
      const qp = q + <usize>t * rowBytes + <usize>h * hdBytes;
      const op = out + <usize>t * rowBytes + <usize>h * hdBytes;
      let m: f32 = -Infinity;
      for (let j = first; j <= pos; j++) {
        const kp = kh + <usize>j * hdBytes;
        let acc = f32x4.splat(0);
        let d = 0;
        for (; d < D4; d += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(qp + (<usize>d << 2)), v128.load(kp + (<usize>d << 2))));
        let s = hsum(acc);
        for (; d < headDim; d++) s += load<f32>(qp + (<usize>d << 2)) * load<f32>(kp + (<usize>d << 2));
        s *= scale;
        store<f32>(scratch + (<usize>j << 2), s);
        if (s > m) m = s;
      }
      for (let d = 0; d < headDim; d++) store<f32>(op + (<usize>d << 2), 0);
      let sum: f32 = 0;
      for (let j = first; j <= pos; j++) {
        const p = Mathf.exp(load<f32>(scratch + (<usize>j << 2)) - m);
        sum += p;
        const vp = vh + <usize>j * hdBytes;
        const pv = f32x4.splat(p);
        let d = 0;
        for (; d < D4; d += 4) {
          const o = <usize>d << 2;
          v128.store(op + o, f32x4.add(v128.load(op + o), f32x4.mul(pv, v128.load(vp + o))));
        }
        for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(op + (<usize>d << 2)) + p * load<f32>(vp + (<usize>d << 2)));
      }
      const inv = f32x4.splat(<f32>1.0 / sum);
      let d = 0;
      for (; d < D4; d += 4) v128.store(op + (<usize>d << 2), f32x4.mul(v128.load(op + (<usize>d << 2)), inv));
      for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(op + (<usize>d << 2)) / sum);
    }
  }
}
