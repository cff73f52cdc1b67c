// Greedy argmax and sampling on the device, following core's sampleFromLogits step by step so that
// only the chosen token id comes back: penalties on the raw logits, temperature, softmax in float64,
// top-k, top-p, min-p, then the draw in ascending id order. One block of SAMPLE_THREADS threads works on
// a float64 copy of the row; the top-k and top-p cut-offs are found by binary search over the bit
// patterns of the (positive) probabilities, which order like the values, so no sort is needed.
#include <cfloat>
#include <cmath>
#include "common.cuh"

namespace {

constexpr int ARGMAX_THREADS = 1024;
constexpr int SAMPLE_THREADS = 1024;
constexpr int WARPS = SAMPLE_THREADS / 32;

// (value, index) ordering of the reference argmax: larger value wins, then lower index; NaN never wins,
// but -inf does when nothing else is there.
__device__ __forceinline__ bool better(double v, int i, double bv, int bi) {
  if (isnan(v)) return false;
  if (bi < 0) return true;
  return v > bv || (v == bv && i < bi);
}

template <int THREADS>
__device__ void block_argmax(double& v, int& i) {
  __shared__ double sv[THREADS / 32];
  __shared__ int si[THREADS / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi >= 0 && better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < THREADS / 32 ? sv[lane] : 0.0;
    i = lane < THREADS / 32 ? si[lane] : -1;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const double ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int oi = __shfl_xor_sync(0xffffffffu, i, o);
      if (oi >= 0 && better(ov, oi, v, i)) {
        v = ov;
        i = oi;
      }
    }
    if (lane == 0) {
      sv[0] = v;
      si[0] = i;
    }
  }
  __syncthreads();
  v = sv[0];
  i = si[0];
  __syncthreads();
}

__global__ void __launch_bounds__(ARGMAX_THREADS) argmax_kernel(const float* __restrict__ logits, int cols, int* __restrict__ out) {
  await_prior_grids();
  const float* row = logits + static_cast<size_t>(blockIdx.x) * cols;
  double bv = 0.0;
  int bi = -1;
  if ((cols & 3) == 0 && (reinterpret_cast<uintptr_t>(row) & 15) == 0) {
    // Rows of whole float4s (every Qwen2 vocabulary): 16-byte loads, four in flight per thread, so the
    // one block waits on memory about 10 times over 151,936 logits instead of about 150.
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int quads = cols / 4;
#pragma unroll 4
    for (int q = threadIdx.x; q < quads; q += ARGMAX_THREADS) {
      const float4 v = row4[q];
      const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        if (better(e[j], 4 * q + j, bv, bi)) {
          bv = e[j];
          bi = 4 * q + j;
        }
      }
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += ARGMAX_THREADS) {
      const double v = row[c];
      if (better(v, c, bv, bi)) {
        bv = v;
        bi = c;
      }
    }
  }
  block_argmax<ARGMAX_THREADS>(bv, bi);
  if (threadIdx.x == 0) out[blockIdx.x] = bi;
}

// ---- block reductions of the sampler (every thread gets the result) ------------------------------

__device__ double block_sum(double v) {
  __shared__ double s[WARPS];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) s[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < WARPS; w++) total += s[w];  // same order in every thread: identical results
  __syncthreads();
  return total;
}

__device__ double block_max(double v) {
  __shared__ double s[WARPS];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) s[warp] = v;
  __syncthreads();
  double m = -INFINITY;
  for (int w = 0; w < WARPS; w++) m = fmax(m, s[w]);
  __syncthreads();
  return m;
}

__device__ __forceinline__ unsigned long long key_of(double p) { return static_cast<unsigned long long>(__double_as_longlong(p)); }

// Inclusive prefix sum over the block in thread order; `total` receives the block's sum.
__device__ double block_scan(double v, double& total) {
  __shared__ double s[WARPS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  __syncthreads();
  if (lane == 31) s[warp] = v;
  __syncthreads();
  double before = 0.0;
  total = 0.0;
  for (int w = 0; w < WARPS; w++) {
    if (w < warp) before += s[w];
    total += s[w];
  }
  __syncthreads();
  return before + v;
}

__device__ int block_scan_count(int flag, int& total) {
  __shared__ int s[WARPS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  const int in_warp = __popc(ballot & ((1u << lane) - 1u));
  __syncthreads();
  if (lane == 0) s[warp] = __popc(ballot);
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < WARPS; w++) {
    if (w < warp) before += s[w];
    total += s[w];
  }
  __syncthreads();
  return before + in_warp;  // exclusive rank among flagged threads
}

// Smallest key x in [lo, hi] for which pred(x) holds; pred must be monotone (false..., true...).
template <typename Pred>
__device__ unsigned long long search_key(unsigned long long lo, unsigned long long hi, Pred pred) {
  while (lo < hi) {
    const unsigned long long mid = lo + (hi - lo) / 2;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// The k-th largest key among p[0, n): a radix select, 4 bits per pass from the top, each pass a
// histogram of the next digit among the keys that share the digits chosen so far. Counts are exact, so
// this is the key a bisection over keys finds, in 16 passes instead of about 62.
__device__ unsigned long long kth_largest_key(const double* p, int n, int k) {
  __shared__ int hist[16];
  const int tid = threadIdx.x;
  unsigned long long prefix = 0;
  int need = k;
  for (int shift = 60; shift >= 0; shift -= 4) {
    // The digits above this one (none on the first pass).
    const unsigned long long mask = shift == 60 ? 0ull : ~0ull << (shift + 4);
    if (tid < 16) hist[tid] = 0;
    __syncthreads();
    int bins[16] = {};
    for (int i = tid; i < n; i += SAMPLE_THREADS) {
      const unsigned long long key = key_of(p[i]);
      if ((key & mask) == prefix) bins[(key >> shift) & 15]++;
    }
    for (int d = 0; d < 16; d++)
      if (bins[d] > 0) atomicAdd(&hist[d], bins[d]);
    __syncthreads();
    // The largest digit whose keys, with those of larger digits, number at least `need`.
    int above = 0, chosen = 0;
    for (int d = 15; d >= 0; d--) {
      if (above + hist[d] >= need) {
        chosen = d;
        break;
      }
      above += hist[d];
    }
    need -= above;
    prefix |= static_cast<unsigned long long>(chosen) << shift;
    __syncthreads();
  }
  return prefix;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_kernel(const float* __restrict__ logits, int n, const int* __restrict__ hist_ids,
                                                              const int* __restrict__ hist_counts, int hist_len, SampleArgs a,
                                                              const int* previous, double* __restrict__ p, int* out) {
  await_prior_grids();
  const int tid = threadIdx.x;
  // The previous draw's token (not yet seen by the host) counts as one more occurrence, as core's
  // withOccurrence adds it: to the first history entry with its id, or as a new last entry. `previous`
  // may be `out` itself, so it is read here, before any thread can write `out`.
  __shared__ int prev_id;
  __shared__ int prev_listed;
  if (tid == 0) {
    prev_id = previous ? *previous : -1;
    prev_listed = 0;
  }
  // 1. Raw logits to float64, then the penalties of the history.
  for (int i = tid; i < n; i += SAMPLE_THREADS) p[i] = logits[i];
  __syncthreads();
  const int prev = prev_id;
  auto penalize = [&](int id, int count) {
    if (id < 0 || id >= n || count <= 0) return;
    double v = p[id];
    if (a.repetition_penalty != 1.0) v = v > 0 ? v / a.repetition_penalty : v * a.repetition_penalty;
    v -= a.presence_penalty + a.frequency_penalty * count;
    p[id] = v;
  };
  if (a.serial_history) {
    if (tid == 0) {
      bool listed = false;
      for (int j = 0; j < hist_len; j++) {
        const bool bump = !listed && hist_ids[j] == prev;
        listed = listed || bump;
        penalize(hist_ids[j], hist_counts[j] + bump);
      }
      if (!listed) penalize(prev, 1);
    }
  } else {
    // Distinct ids: at most one entry is the previous token's, and order does not matter.
    for (int j = tid; j < hist_len; j += SAMPLE_THREADS) {
      const bool bump = hist_ids[j] == prev;
      if (bump) prev_listed = 1;
      penalize(hist_ids[j], hist_counts[j] + bump);
    }
    __syncthreads();
    if (tid == 0 && !prev_listed) penalize(prev, 1);
  }
  __syncthreads();

  // 2. Greedy, or nothing but -inf/NaN: the argmax of the penalized logits.
  double mx = -INFINITY;
  for (int i = tid; i < n; i += SAMPLE_THREADS)
    if (!isnan(p[i])) mx = fmax(mx, p[i]);
  mx = block_max(mx);
  if (a.temperature == 0.0 || mx == -INFINITY) {
    double bv = 0.0;
    int bi = -1;
    for (int i = tid; i < n; i += SAMPLE_THREADS)
      if (better(p[i], i, bv, bi)) {
        bv = p[i];
        bi = i;
      }
    block_argmax<SAMPLE_THREADS>(bv, bi);
    if (tid == 0) *out = bi;
    return;
  }

  // 3. Softmax at temperature (NaN gets no probability). Dropped tokens get probability 0 from here on.
  const double inv_t = 1.0 / a.temperature;
  double sum = 0.0;
  for (int i = tid; i < n; i += SAMPLE_THREADS) {
    const double v = p[i];
    const double e = isnan(v) ? 0.0 : exp((v - mx) * inv_t);
    p[i] = e;
    sum += e;
  }
  sum = block_sum(sum);
  for (int i = tid; i < n; i += SAMPLE_THREADS) p[i] /= sum;
  __syncthreads();
  const unsigned long long max_key = key_of(1.0);

  // 4. Top-k: keep probabilities at least the k-th largest (ties at the boundary kept).
  if (a.top_k > 0 && a.top_k < n) {
    int kept = 0;
    for (int i = tid; i < n; i += SAMPLE_THREADS) kept += p[i] > 0.0;
    __shared__ int kept_s;
    if (tid == 0) kept_s = 0;
    __syncthreads();
    atomicAdd(&kept_s, kept);
    __syncthreads();
    if (kept_s > a.top_k) {
      // The k-th largest key (positive: more than k probabilities are).
      const unsigned long long kth = kth_largest_key(p, n, a.top_k);
      for (int i = tid; i < n; i += SAMPLE_THREADS)
        if (key_of(p[i]) < kth) p[i] = 0.0;
      __syncthreads();
    }
  }

  // 5. Top-p: in descending probability (ties by lower id), keep a token while the mass before it,
  // over the kept total, is below top_p. x0 = the smallest key whose strictly-larger mass is below the
  // bound; keys above x0 are kept whole, and the first c tokens (by id) with key x0.
  if (a.top_p < 1.0) {
    double total = 0.0, count = 0.0;
    for (int i = tid; i < n; i += SAMPLE_THREADS) {
      total += p[i];
      count += p[i] > 0.0;
    }
    total = block_sum(total);
    count = block_sum(count);
    // No token below (1 - top_p) * total / count is ever kept: if one were, it and every token after it
    // would together hold more than (1 - top_p) * total, yet none of them reaches that share of it.
    // Such tokens also cannot move the bisection below: at any x under them, the tokens above them
    // already hold at least top_p * total. Half that bound leaves room for rounding; on peaked
    // distributions it leaves a few hundred tokens for the summing scans instead of the vocabulary.
    const double floor_p = 0.5 * (1.0 - a.top_p) * total / count;
    // The candidates, compacted after p in id order, so that the bisection's summing scans read only
    // them (after top-k, tens of tokens). Zeros never count above x >= 1.
    double* kept_p = p + n;
    int kept_n = 0;
    for (int base = 0; base < n; base += SAMPLE_THREADS) {
      const int i = base + tid;
      const bool keep = i < n && p[i] > 0.0 && p[i] >= floor_p;
      int chunk_kept = 0;
      const int rank = block_scan_count(keep, chunk_kept);
      if (keep) kept_p[kept_n + rank] = p[i];
      kept_n += chunk_kept;
    }
    __syncthreads();
    const unsigned long long x0 = search_key(1, max_key, [&](unsigned long long x) {
      double m = 0.0;
      for (int j = tid; j < kept_n; j += SAMPLE_THREADS)
        if (key_of(kept_p[j]) > x) m += kept_p[j];
      m = block_sum(m);
      return m / total < a.top_p;
    });
    double above = 0.0;
    for (int i = tid; i < n; i += SAMPLE_THREADS)
      if (key_of(p[i]) > x0) above += p[i];
    above = block_sum(above);
    const double p0 = __longlong_as_double(static_cast<long long>(x0));
    // c = how many tied tokens (in id order) stay: the reference adds their probabilities one by one
    // to the mass before them, so do the same (products r * p0 round differently at exact boundaries).
    int ties = 0;
    for (int i = tid; i < n; i += SAMPLE_THREADS) ties += key_of(p[i]) == x0;
    __shared__ int ties_s;
    __shared__ long long c_s;
    if (tid == 0) ties_s = 0;
    __syncthreads();
    atomicAdd(&ties_s, ties);
    __syncthreads();
    if (tid == 0) {
      long long r = 0;
      double before = above;
      while (r < ties_s && before / total < a.top_p) {
        before += p0;
        r++;
      }
      c_s = r > 0 ? r : 1;
    }
    __syncthreads();
    const long long c = c_s;
    long long rank_base = 0;
    for (int base = 0; base < n; base += SAMPLE_THREADS) {
      const int i = base + tid;
      const bool tie = i < n && key_of(p[i]) == x0;
      int chunk_ties = 0;
      const int rank = block_scan_count(tie, chunk_ties);
      if (i < n) {
        const unsigned long long k = key_of(p[i]);
        if (k < x0 || (tie && rank_base + rank >= c)) p[i] = 0.0;
      }
      rank_base += chunk_ties;
    }
    __syncthreads();
  }

  // 6. Min-p: drop tokens below min_p times the top probability.
  if (a.min_p > 0.0) {
    double top = 0.0;
    for (int i = tid; i < n; i += SAMPLE_THREADS) top = fmax(top, p[i]);
    top = block_max(top);
    const double threshold = a.min_p * top;
    for (int i = tid; i < n; i += SAMPLE_THREADS)
      if (p[i] < threshold) p[i] = 0.0;
    __syncthreads();
  }

  // 7. Draw: the first kept token, in id order, whose cumulative probability exceeds uniform * total;
  // the last kept token if rounding runs past the end.
  double total = 0.0;
  for (int i = tid; i < n; i += SAMPLE_THREADS) total += p[i];
  total = block_sum(total);
  const double target = a.uniform * total;
  __shared__ int chosen;
  __shared__ int last_kept;
  if (tid == 0) {
    chosen = -1;
    last_kept = -1;
  }
  __syncthreads();
  double cumulative = 0.0;
  for (int base = 0; base < n; base += SAMPLE_THREADS) {
    const int i = base + tid;
    const double v = i < n ? p[i] : 0.0;
    double chunk = 0.0;
    const double inclusive = cumulative + block_scan(v, chunk);
    if (v > 0.0) {
      atomicMax(&last_kept, i);
      if (inclusive > target) atomicMin(reinterpret_cast<unsigned*>(&chosen), static_cast<unsigned>(i));  // -1 is the largest unsigned
    }
    __syncthreads();
    if (chosen >= 0) break;
    cumulative += chunk;
  }
  if (tid == 0) *out = chosen >= 0 ? chosen : last_kept;
}

}  // namespace

cudaError_t launch_argmax(cudaStream_t stream, const float* logits, int rows, int cols, int* out) {
  if (rows <= 0) return cudaSuccess;
  LAUNCH(argmax_kernel, rows, ARGMAX_THREADS, 0, stream, logits, cols, out);
  return cudaGetLastError();
}

cudaError_t launch_sample(cudaStream_t stream, const float* logits, int n, const int* history_ids, const int* history_counts,
                          int history_len, SampleArgs args, const int* previous, double* scratch, int* out) {
  LAUNCH(sample_kernel, 1, SAMPLE_THREADS, 0, stream, logits, n, history_ids, history_counts, history_len, args, previous, scratch, out);
  return cudaGetLastError();
}
