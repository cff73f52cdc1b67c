// Greedy argmax and sampling on the device, following core's sampleFromLogits step by step so that
// only the chosen token id comes back: penalties on the raw logits, temperature, softmax in float64,
// top-k, top-p, min-p, then the draw in ascending id order. The passes over the whole vocabulary run in
// blocks of CHUNK tokens; one block then filters and draws among the candidates they leave. The top-k
// and top-p cut-offs are found over the bit patterns of the (positive) probabilities, which order like
// the values, so no sort is needed.
#include <cfloat>
#include <cmath>
#include "common.cuh"

namespace {

constexpr int ARGMAX_THREADS = 1024;
constexpr int SAMPLE_THREADS = 1024;
static_assert(SAMPLE_THREADS == SAMPLE_MAX_CHUNKS, "the draw kernel holds one chunk's start per thread");

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

// ---- block reductions (every thread gets the result; THREADS a multiple of 32) ----------------------

template <int THREADS>
__device__ double block_sum(double v) {
  constexpr int W = THREADS / 32;
  __shared__ double s[W];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) s[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < W; w++) total += s[w];  // same order in every thread: identical results
  __syncthreads();
  return total;
}

template <int THREADS>
__device__ double block_max(double v) {
  constexpr int W = THREADS / 32;
  __shared__ double s[W];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) s[warp] = v;
  __syncthreads();
  double m = -INFINITY;
  for (int w = 0; w < W; w++) m = fmax(m, s[w]);
  __syncthreads();
  return m;
}

__device__ __forceinline__ unsigned long long key_of(double p) { return static_cast<unsigned long long>(__double_as_longlong(p)); }

// Inclusive prefix sum over the block in thread order; `total` receives the block's sum.
template <int THREADS>
__device__ double block_scan(double v, double& total) {
  constexpr int W = THREADS / 32;
  __shared__ double s[W];
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
  for (int w = 0; w < W; w++) {
    if (w < warp) before += s[w];
    total += s[w];
  }
  __syncthreads();
  return before + v;
}

// Exclusive prefix sum of non-negative ints over the block in thread order; `total` receives the sum.
template <int THREADS>
__device__ int block_scan_int(int v, int& total) {
  constexpr int W = THREADS / 32;
  __shared__ int s[W];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inclusive = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int u = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += u;
  }
  __syncthreads();
  if (lane == 31) s[warp] = inclusive;
  __syncthreads();
  int before = 0;
  total = 0;
  for (int w = 0; w < W; w++) {
    if (w < warp) before += s[w];
    total += s[w];
  }
  __syncthreads();
  return before + inclusive - v;
}

// Exclusive rank of each flagged thread among the flagged threads of the block; `total` their count.
template <int THREADS>
__device__ int block_scan_count(int flag, int& total) {
  return block_scan_int<THREADS>(flag ? 1 : 0, total);
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
template <int THREADS>
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
    for (int i = tid; i < n; i += THREADS) {
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

// ---- the sampler: three kernels --------------------------------------------------------------------
// 1. sample_logits_kernel, a block per CHUNK tokens: the chunk's logits in float64 with the penalties
//    of the history, and the chunk's max, sum of exp((v - max) / T) and greedy best.
// 2. sample_candidates_kernel, a block per chunk: the softmax's max and sum from the chunks' (the same
//    bits in every block), the chunk's probabilities, and its candidates compacted in id order: the
//    tokens the later steps can keep (the chunk's own top k, at least a floor no top-p token is below,
//    or min-p's threshold), a few per chunk where a filter is set.
// 3. sample_draw_kernel, one block: greedy from the chunks' bests, or top-k, top-p, min-p and the draw
//    over the gathered candidates (or, with no filter, the draw by chunk masses then within one chunk).
// Passes over the whole vocabulary so run on every SM; one block (about 150 loads per thread and pass,
// each waiting on memory) did 20 to 30 of them.

constexpr int CHUNK = 1024;        // tokens per block of kernels 1 and 2
constexpr int CHUNK_THREADS = 256;

// The sampler's scratch, carved from one allocation of sample_scratch_bytes(n).
struct SampleScratch {
  double* v;          // [n] penalized logits (kernel 1)
  double* cand_p;     // [n] each chunk's candidates from the chunk's start, probabilities and ids (2)
  double* list_p;     // [2n] the candidates gathered in id order, then top-p's compacted ones (3)
  double* chunk_max;  // [chunks] kernel 1: max, sum of exp relative to it, greedy best value and id
  double* chunk_exp;
  double* best_v;
  double* kept_mass;  // [chunks] kernel 2: mass of the probabilities, and the count of those above 0
  double* stats;      // [2] the softmax's max and sum (kernel 2's block 0)
  int* cand_id;       // [n]
  int* list_id;       // [n]
  int* best_i;        // [chunks]
  int* kept_n;        // [chunks]
  int* cand_n;        // [chunks]
};

__host__ __device__ inline int sample_chunks(int n) { return (n + CHUNK - 1) / CHUNK; }

__host__ __device__ inline SampleScratch carve_scratch(void* base, int n) {
  const size_t c = static_cast<size_t>(sample_chunks(n));
  double* d = static_cast<double*>(base);
  SampleScratch s;
  s.v = d;
  s.cand_p = s.v + n;
  s.list_p = s.cand_p + n;
  s.chunk_max = s.list_p + 2 * static_cast<size_t>(n);
  s.chunk_exp = s.chunk_max + c;
  s.best_v = s.chunk_exp + c;
  s.kept_mass = s.best_v + c;
  s.stats = s.kept_mass + c;
  int* i = reinterpret_cast<int*>(s.stats + 2);
  s.cand_id = i;
  s.list_id = s.cand_id + n;
  s.best_i = s.list_id + n;
  s.kept_n = s.best_i + c;
  s.cand_n = s.kept_n + c;
  return s;
}

__global__ void __launch_bounds__(CHUNK_THREADS) sample_logits_kernel(const float* __restrict__ logits, int n, const int* __restrict__ hist_ids,
                                                                    const int* __restrict__ hist_counts, int hist_len, SampleArgs a,
                                                                    const int* previous, SampleScratch s) {
  await_prior_grids();
  __shared__ double x[CHUNK];
  // The previous draw's token (not yet seen by the host) counts as one more occurrence, as core's
  // withOccurrence adds it: to the first history entry with its id, or as a new last entry. `previous`
  // may be where kernel 3 writes this draw, after this kernel.
  __shared__ int prev_id;
  __shared__ int prev_listed;
  const int tid = threadIdx.x, chunk = blockIdx.x, base = chunk * CHUNK, len = min(CHUNK, n - base);
  if (tid == 0) {
    prev_id = previous ? *previous : -1;
    prev_listed = 0;
  }
  for (int i = tid; i < len; i += CHUNK_THREADS) x[i] = logits[base + i];
  __syncthreads();
  const int prev = prev_id;
  // Every block reads the whole history and applies the entries of its own tokens.
  auto penalize = [&](int id, int count) {
    if (id < base || id >= base + len || count <= 0) return;
    double v = x[id - base];
    if (a.repetition_penalty != 1.0) v = v > 0 ? v / a.repetition_penalty : v * a.repetition_penalty;
    v -= a.presence_penalty + a.frequency_penalty * count;
    x[id - base] = v;
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
    for (int j = tid; j < hist_len; j += CHUNK_THREADS) {
      const bool bump = hist_ids[j] == prev;
      if (bump) prev_listed = 1;
      penalize(hist_ids[j], hist_counts[j] + bump);
    }
    __syncthreads();
    if (tid == 0 && !prev_listed) penalize(prev, 1);
  }
  __syncthreads();

  double m = -INFINITY, bv = 0.0;
  int bi = -1;
  for (int i = tid; i < len; i += CHUNK_THREADS) {
    const double v = x[i];
    s.v[base + i] = v;
    if (!isnan(v)) m = fmax(m, v);
    if (better(v, base + i, bv, bi)) {
      bv = v;
      bi = base + i;
    }
  }
  m = block_max<CHUNK_THREADS>(m);
  block_argmax<CHUNK_THREADS>(bv, bi);
  double e = 0.0;
  if (a.temperature > 0.0 && m > -INFINITY) {
    const double inv_t = 1.0 / a.temperature;
    for (int i = tid; i < len; i += CHUNK_THREADS)
      if (!isnan(x[i])) e += exp((x[i] - m) * inv_t);
  }
  e = block_sum<CHUNK_THREADS>(e);
  if (tid == 0) {
    s.chunk_max[chunk] = m;
    s.chunk_exp[chunk] = e;
    s.best_v[chunk] = bv;
    s.best_i[chunk] = bi;
  }
}

__global__ void __launch_bounds__(CHUNK_THREADS) sample_candidates_kernel(int n, SampleArgs a, SampleScratch s) {
  await_prior_grids();
  __shared__ double x[CHUNK];
  const int tid = threadIdx.x, chunk = blockIdx.x, base = chunk * CHUNK, len = min(CHUNK, n - base);
  const int chunks = sample_chunks(n);
  // The softmax's max and sum, from the chunks' (the same order, so the same bits, in every block).
  double m = -INFINITY;
  for (int c = tid; c < chunks; c += CHUNK_THREADS) m = fmax(m, s.chunk_max[c]);
  const double mx = block_max<CHUNK_THREADS>(m);
  const bool greedy = a.temperature == 0.0 || mx == -INFINITY;
  const double inv_t = greedy ? 0.0 : 1.0 / a.temperature;
  double t = 0.0;
  if (!greedy)
    for (int c = tid; c < chunks; c += CHUNK_THREADS)
      if (s.chunk_max[c] > -INFINITY) t += s.chunk_exp[c] * exp((s.chunk_max[c] - mx) * inv_t);
  const double sum = block_sum<CHUNK_THREADS>(t);
  if (chunk == 0 && tid == 0) {
    s.stats[0] = mx;
    s.stats[1] = sum;
  }
  if (greedy) return;  // kernel 3 takes the chunks' bests

  // The chunk's probabilities, as core computes them (NaN gets none).
  double mass = 0.0;
  int kept = 0;
  for (int i = tid; i < len; i += CHUNK_THREADS) {
    const double v = s.v[base + i];
    const double p = isnan(v) ? 0.0 : exp((v - mx) * inv_t) / sum;
    x[i] = p;
    mass += p;
    kept += p > 0.0;
  }
  mass = block_sum<CHUNK_THREADS>(mass);
  kept = static_cast<int>(block_sum<CHUNK_THREADS>(kept));
  // Candidates: with top-k, the chunk's own top k (every token of the k largest overall is among its
  // chunk's). Without: at least a floor no top-p token is below (tokens under (1 - top_p) * total /
  // count are never kept: see sample_draw_kernel; the total is about 1, the count at most n, so a
  // quarter of (1 - top_p) / n is below it), or, with min-p alone, its threshold: min_p times the
  // largest probability, exp(0) / sum. Min-p cannot trim top-p's candidates: top-p's total counts the
  // tokens min-p drops later.
  const bool top_k = a.top_k > 0 && a.top_k < n;
  double floor_p = 0.0;
  if (!top_k && a.top_p < 1.0) floor_p = 0.25 * (1.0 - a.top_p) / n;
  else if (!top_k && a.min_p > 0.0) floor_p = a.min_p * (1.0 / sum);
  unsigned long long cut = 1;  // the smallest positive double: p > 0
  if (top_k && kept > a.top_k) cut = kth_largest_key<CHUNK_THREADS>(x, len, a.top_k);
  int taken = 0;
  for (int off = 0; off < len; off += CHUNK_THREADS) {
    const int i = off + tid;
    const bool take = i < len && x[i] >= floor_p && key_of(x[i]) >= cut;
    int count = 0;
    const int rank = block_scan_count<CHUNK_THREADS>(take, count);
    if (take) {
      s.cand_p[base + taken + rank] = x[i];
      s.cand_id[base + taken + rank] = base + i;
    }
    taken += count;
  }
  if (tid == 0) {
    s.kept_mass[chunk] = mass;
    s.kept_n[chunk] = kept;
    s.cand_n[chunk] = taken;
  }
}

// Top-p as core runs it, where at most SAMPLE_THREADS tokens of p[0, n) are kept (after top-k, tens):
// the kept tokens sorted by probability, descending, ties by lower id (a bitonic sort in shared
// memory), the total summed from the smallest up and the mass before each token from the largest down,
// one by one as core adds them, so the same tokens stay to the last bit. With top-k the total is that
// sum; without, `total` (the mass of every token with a probability, p holding only the candidates).
__device__ void top_p_sorted(double* p, int n, const SampleArgs& a, bool top_k, double total) {
  const int tid = threadIdx.x;
  __shared__ unsigned long long key[SAMPLE_THREADS];
  __shared__ int at[SAMPLE_THREADS];
  __shared__ int keep_s;
  // The kept tokens, compacted in id order; the rest of the power-of-two span padded with zeros whose
  // indices sort after every token's.
  int m = 0;
  for (int base = 0; base < n; base += SAMPLE_THREADS) {
    const int i = base + tid;
    const bool kept = i < n && p[i] > 0.0;
    int chunk_kept = 0;
    const int rank = block_scan_count<SAMPLE_THREADS>(kept, chunk_kept);
    if (kept) {
      key[m + rank] = key_of(p[i]);
      at[m + rank] = i;
    }
    m += chunk_kept;
  }
  int span = 1;
  while (span < m) span <<= 1;
  if (tid >= m && tid < span) {
    key[tid] = 0;
    at[tid] = n + tid;
  }
  __syncthreads();
  // (key, at) goes before (key2, at2): larger key first, then lower index.
  auto first = [](unsigned long long k1, int i1, unsigned long long k2, int i2) { return k1 > k2 || (k1 == k2 && i1 < i2); };
  for (int size = 2; size <= span; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      const int i = tid, j = tid ^ stride;
      if (i < span && j > i) {
        // Ascending in "first" order within blocks of `size` whose bit is clear, descending elsewhere.
        const bool forward = (i & size) == 0;
        const bool ordered = first(key[i], at[i], key[j], at[j]);
        if (ordered != forward) {
          const unsigned long long k = key[i];
          key[i] = key[j];
          key[j] = k;
          const int t = at[i];
          at[i] = at[j];
          at[j] = t;
        }
      }
      __syncthreads();
    }
  }
  if (tid == 0) {
    auto prob = [&](int j) { return __longlong_as_double(static_cast<long long>(key[j])); };
    if (top_k) {
      total = 0.0;
      for (int j = m - 1; j >= 0; j--) total += prob(j);
    }
    double before = 0.0;
    int count = 0;
    while (count < m && !(count > 0 && before / total >= a.top_p)) before += prob(count++);
    keep_s = count;
  }
  __syncthreads();
  if (tid < m && tid >= keep_s) p[at[tid]] = 0.0;
  __syncthreads();
}

// Top-k, top-p and min-p over p[0, n) (probabilities in id order, dropped ones set to 0), then the draw;
// returns the index in p. `top_k`: whether top-k applies. `total` and `count`: top-p's kept mass and
// count when top-k does not apply (p then holds only the candidates; the mass and count include the
// tokens below them); with top-k they are summed over p. `p + n` holds top-p's compacted candidates.
__device__ int filter_and_draw(double* p, int n, const SampleArgs& a, bool top_k, double total, double count) {
  const int tid = threadIdx.x;
  const unsigned long long max_key = key_of(1.0);

  // 4. Top-k: keep probabilities at least the k-th largest (ties at the boundary kept).
  if (top_k) {
    int kept = 0;
    for (int i = tid; i < n; i += SAMPLE_THREADS) kept += p[i] > 0.0;
    __shared__ int kept_s;
    if (tid == 0) kept_s = 0;
    __syncthreads();
    atomicAdd(&kept_s, kept);
    __syncthreads();
    if (kept_s > a.top_k) {
      // The k-th largest key (positive: more than k probabilities are).
      const unsigned long long kth = kth_largest_key<SAMPLE_THREADS>(p, n, a.top_k);
      for (int i = tid; i < n; i += SAMPLE_THREADS)
        if (key_of(p[i]) < kth) p[i] = 0.0;
      __syncthreads();
    }
  }

  // 5. Top-p: in descending probability (ties by lower id), keep a token while the mass before it,
  // over the kept total, is below top_p. x0 = the smallest key whose strictly-larger mass is below the
  // bound; keys above x0 are kept whole, and the first c tokens (by id) with key x0.
  int top_p_kept = 0;
  if (a.top_p < 1.0) {
    for (int i = tid; i < n; i += SAMPLE_THREADS) top_p_kept += p[i] > 0.0;
    top_p_kept = static_cast<int>(block_sum<SAMPLE_THREADS>(top_p_kept));
  }
  if (a.top_p < 1.0 && top_p_kept <= SAMPLE_THREADS) {
    top_p_sorted(p, n, a, top_k, total);
  } else if (a.top_p < 1.0) {
    if (top_k) {
      double t = 0.0;
      for (int i = tid; i < n; i += SAMPLE_THREADS) t += p[i];
      total = block_sum<SAMPLE_THREADS>(t);
      count = top_p_kept;
    }
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
      const int rank = block_scan_count<SAMPLE_THREADS>(keep, chunk_kept);
      if (keep) kept_p[kept_n + rank] = p[i];
      kept_n += chunk_kept;
    }
    __syncthreads();
    const unsigned long long x0 = search_key(1, max_key, [&](unsigned long long x) {
      double m = 0.0;
      for (int j = tid; j < kept_n; j += SAMPLE_THREADS)
        if (key_of(kept_p[j]) > x) m += kept_p[j];
      m = block_sum<SAMPLE_THREADS>(m);
      return m / total < a.top_p;
    });
    double above = 0.0;
    for (int i = tid; i < n; i += SAMPLE_THREADS)
      if (key_of(p[i]) > x0) above += p[i];
    above = block_sum<SAMPLE_THREADS>(above);
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
      const int rank = block_scan_count<SAMPLE_THREADS>(tie, chunk_ties);
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
    top = block_max<SAMPLE_THREADS>(top);
    const double threshold = a.min_p * top;
    for (int i = tid; i < n; i += SAMPLE_THREADS)
      if (p[i] < threshold) p[i] = 0.0;
    __syncthreads();
  }

  // 7. Draw: the first kept token, in id order, whose cumulative probability exceeds uniform * total;
  // the last kept token if rounding runs past the end.
  double kept_total = 0.0;
  for (int i = tid; i < n; i += SAMPLE_THREADS) kept_total += p[i];
  kept_total = block_sum<SAMPLE_THREADS>(kept_total);
  const double target = a.uniform * kept_total;
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
    const double inclusive = cumulative + block_scan<SAMPLE_THREADS>(v, chunk);
    if (v > 0.0) {
      atomicMax(&last_kept, i);
      if (inclusive > target) atomicMin(reinterpret_cast<unsigned*>(&chosen), static_cast<unsigned>(i));  // -1 is the largest unsigned
    }
    __syncthreads();
    if (chosen >= 0) break;
    cumulative += chunk;
  }
  const int r = chosen >= 0 ? chosen : last_kept;
  __syncthreads();
  return r;
}

// With no filter every token with a probability is a candidate: the draw finds the chunk where the
// cumulative mass crosses uniform * total from the chunks' masses, then the token within that chunk.
__device__ int draw_by_chunks(const SampleArgs& a, const SampleScratch& s, int chunks) {
  const int tid = threadIdx.x;
  __shared__ double mass[SAMPLE_THREADS];
  __shared__ int crossing;
  __shared__ double before;
  __shared__ double target;
  mass[tid] = tid < chunks ? s.kept_mass[tid] : 0.0;
  // The last chunk with candidates (-1: none), where a draw past the end lands.
  const int last_chunk = static_cast<int>(block_max<SAMPLE_THREADS>(tid < chunks && s.cand_n[tid] > 0 ? tid : -1));
  if (tid == 0) {
    double total = 0.0;
    for (int c = 0; c < chunks; c++) total += mass[c];
    target = a.uniform * total;
    crossing = -1;
    double cum = 0.0;
    for (int c = 0; c < chunks; c++) {
      if (cum + mass[c] > target) {
        crossing = c;
        break;
      }
      cum += mass[c];
    }
    before = cum;
  }
  __syncthreads();
  const int c = crossing >= 0 ? crossing : last_chunk;
  if (c < 0) return -1;  // no token with a probability (not reached: the top token has 1 / sum)
  const int cnt = s.cand_n[c];
  const double v = tid < cnt ? s.cand_p[c * CHUNK + tid] : 0.0;  // cnt <= CHUNK <= SAMPLE_THREADS
  double chunk_total = 0.0;
  const double inclusive = before + block_scan<SAMPLE_THREADS>(v, chunk_total);
  __shared__ int chosen;
  if (tid == 0) chosen = -1;
  __syncthreads();
  if (crossing >= 0 && tid < cnt && inclusive > target) atomicMin(reinterpret_cast<unsigned*>(&chosen), static_cast<unsigned>(tid));
  __syncthreads();
  // Past the end (rounding, or no crossing at all): the chunk's last candidate.
  const int r = s.cand_id[c * CHUNK + (chosen >= 0 ? chosen : cnt - 1)];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_draw_kernel(int n, SampleArgs a, SampleScratch s, int* out) {
  await_prior_grids();
  const int tid = threadIdx.x;
  const int chunks = sample_chunks(n);
  const double mx = s.stats[0];
  // 2. Greedy, or nothing but -inf/NaN: the argmax of the penalized logits, from the chunks' bests.
  if (a.temperature == 0.0 || mx == -INFINITY) {
    double bv = 0.0;
    int bi = -1;
    for (int c = tid; c < chunks; c += SAMPLE_THREADS)
      if (s.best_i[c] >= 0 && better(s.best_v[c], s.best_i[c], bv, bi)) {
        bv = s.best_v[c];
        bi = s.best_i[c];
      }
    block_argmax<SAMPLE_THREADS>(bv, bi);
    if (tid == 0) *out = bi;
    return;
  }
  const bool top_k = a.top_k > 0 && a.top_k < n;
  if (!top_k && a.top_p == 1.0 && a.min_p == 0.0) {
    const int r = draw_by_chunks(a, s, chunks);
    if (tid == 0) *out = r;
    return;
  }
  // Gather the chunks' candidates in id order: where chunk c's go (chunks <= SAMPLE_THREADS).
  __shared__ int start[SAMPLE_THREADS];
  int count = 0;
  start[tid] = block_scan_int<SAMPLE_THREADS>(tid < chunks ? s.cand_n[tid] : 0, count);
  __syncthreads();  // every start written before the gather reads them
  double mass = 0.0, kept = 0.0;
  for (int c = tid; c < chunks; c += SAMPLE_THREADS) {
    mass += s.kept_mass[c];
    kept += s.kept_n[c];
  }
  mass = block_sum<SAMPLE_THREADS>(mass);
  kept = block_sum<SAMPLE_THREADS>(kept);
  for (int g = tid; g < count; g += SAMPLE_THREADS) {
    // The last chunk starting at or before g (chunks without candidates share the next one's start).
    int lo = 0, hi = chunks - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (start[mid] <= g) lo = mid;
      else hi = mid - 1;
    }
    s.list_p[g] = s.cand_p[lo * CHUNK + g - start[lo]];
    s.list_id[g] = s.cand_id[lo * CHUNK + g - start[lo]];
  }
  __syncthreads();
  const int r = filter_and_draw(s.list_p, count, a, top_k, mass, kept);
  if (tid == 0) *out = r >= 0 ? s.list_id[r] : -1;
}

}  // namespace

cudaError_t launch_argmax(cudaStream_t stream, const float* logits, int rows, int cols, int* out) {
  if (rows <= 0) return cudaSuccess;
  LAUNCH(argmax_kernel, rows, ARGMAX_THREADS, 0, stream, logits, cols, out);
  return cudaGetLastError();
}

size_t sample_scratch_bytes(int n) {
  const size_t c = static_cast<size_t>(sample_chunks(n));
  return (4 * static_cast<size_t>(n) + 4 * c + 2) * sizeof(double) + (2 * static_cast<size_t>(n) + 3 * c) * sizeof(int);
}

cudaError_t launch_sample(cudaStream_t stream, const float* logits, int n, const int* history_ids, const int* history_counts,
                          int history_len, SampleArgs args, const int* previous, void* scratch, int* out) {
  if (n < 1 || sample_chunks(n) > SAMPLE_MAX_CHUNKS) return cudaErrorInvalidValue;
  const SampleScratch s = carve_scratch(scratch, n);
  const int chunks = sample_chunks(n);
  LAUNCH(sample_logits_kernel, chunks, CHUNK_THREADS, 0, stream, logits, n, history_ids, history_counts, history_len, args, previous, s);
  LAUNCH(sample_candidates_kernel, chunks, CHUNK_THREADS, 0, stream, n, args, s);
  LAUNCH(sample_draw_kernel, 1, SAMPLE_THREADS, 0, stream, n, args, s, out);
  return cudaGetLastError();
}
