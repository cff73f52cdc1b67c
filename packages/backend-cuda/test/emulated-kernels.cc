// Runs the backend's CUDA kernels on the host emulation of the CUDA thread
// model (native/emulate.h) and checks each against a plain float64 reference written here from core's
// op semantics. Built and run by scripts/test-emulated-kernels.mjs (`pnpm --filter
// @qwen2-ts/backend-cuda test:kernels`, where a C++20 compiler and the CUDA headers exist; minutes long,
// so not part of the package's `test`, but the root `npm test` runs it). Exit status 1 on any mismatch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#include <csignal>
#include <memory>
#include <sys/mman.h>
#include <unistd.h>
#include "../native/common.cuh"
#include "../native/matmul.h"


static int failures = 0;
static void check(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
  double err = 0, mx = 0;
  for (size_t i = 0; i < want.size(); i++) {
    mx = std::max(mx, std::fabs(want[i]));
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    err = std::max(err, std::isnan(d) ? INFINITY : d);
  }
  err /= std::max(1.0, mx);
  const bool ok = err <= tol;
  if (!ok) failures++;
  std::printf("%s %s: relative error %.2e (tolerance %.0e)\n", ok ? "ok  " : "FAIL", what.c_str(), err, tol);
}
// Element-wise bounds: |got - want| <= bound[i] for every i (NaN fails).
static void check_within(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& bound) {
  double worst = 0;  // the largest error as a fraction of its bound
  for (size_t i = 0; i < want.size(); i++) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, std::isnan(d) ? INFINITY : d / bound[i]);
  }
  const bool ok = worst <= 1;
  if (!ok) failures++;
  std::printf("%s %s: largest error %.2f of its bound\n", ok ? "ok  " : "FAIL", what.c_str(), worst);
}
static void check_eq(const std::string& what, long got, long want) {
  const bool ok = got == want;
  if (!ok) failures++;
  std::printf("%s %s: got %ld, want %ld\n", ok ? "ok  " : "FAIL", what.c_str(), got, want);
}

static std::mt19937 rng(1234);
static float normal(float std = 1.f) { return std::normal_distribution<float>(0.f, std)(rng); }

static uint16_t f32_to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }
static uint16_t f32_to_bf16(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }
static double f16_value(uint16_t h) { return __half2float(__ushort_as_half(h)); }
static double bf16_value(uint16_t h) { uint32_t u = static_cast<uint32_t>(h) << 16; float f; std::memcpy(&f, &u, 4); return f; }

// Core's roundToF16KV from its definition, in float64 (not through CUDA's conversions, which the kernels
// use): the nearest half, ties to even (nearbyint in the default rounding mode), with the spacing of
// x's binade (that of the subnormals below 2^-14); finite values beyond 65504 saturate to it; ±inf and
// NaN stay; the sign of zero is kept.
static double round_f16_kv(double x) {
  if (std::isnan(x) || std::isinf(x)) return x;
  int e = 0;
  std::frexp(std::fabs(x), &e);  // |x| in [2^(e-1), 2^e)
  const double spacing = std::ldexp(1.0, std::max(e - 1, -14) - 10);
  return std::copysign(std::min(std::nearbyint(std::fabs(x) / spacing) * spacing, 65504.0), x);
}
// What a cache of `dtype` holds for each of `x`: the value, or its half (widened).
static std::vector<float> stored_as(const std::vector<float>& x, int dtype) {
  std::vector<float> r(x);
  if (dtype == KV_F16)
    for (auto& v : r) v = static_cast<float>(round_f16_kv(v));
  return r;
}
static const char* kv_name(int dtype) { return dtype == KV_F16 ? "f16" : "f32"; }

// Bytes in "device" memory that end where an inaccessible page begins (after up to 15 bytes of slack
// that keep them 16-byte aligned): a kernel that reads past the end, say weight rows past the matrix
// that it should have zero-filled, stops the test with a segmentation fault (see on_segv) instead of
// quietly reading whatever the host heap holds there.
class Guarded {
 public:
  Guarded(const void* src, size_t bytes) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    body_ = (bytes + 15 + page - 1) / page * page;
    len_ = body_ + page;
    base_ = static_cast<unsigned char*>(mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED || mprotect(base_ + body_, page, PROT_NONE) != 0) std::abort();
    data_ = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(base_ + body_ - bytes) & ~uintptr_t(15));
    std::memset(base_, 0xcd, body_);  // garbage around the bytes, as device memory may hold
    std::memcpy(data_, src, bytes);
  }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  ~Guarded() { munmap(base_, len_); }
  void* data() const { return data_; }

 private:
  unsigned char* base_;
  size_t body_, len_;
  void* data_;
};
// A vector's contents in guarded memory, for kernels to read and write.
template <typename T>
class GuardedArray {
 public:
  explicit GuardedArray(const std::vector<T>& v) : g_(v.data(), v.size() * sizeof(T)), n_(v.size()) {}
  T* data() const { return static_cast<T*>(g_.data()); }
  T& operator[](size_t i) const { return data()[i]; }
  size_t size() const { return n_; }
  std::vector<T> values() const { return std::vector<T>(data(), data() + n_); }

 private:
  Guarded g_;
  size_t n_;
};
// A layer's keys or values `[kv_heads][max_tokens][head_dim]` of either KV cache dtype, in guarded
// memory, every entry NaN until written (or an f32 cache holding given values).
class GuardedCache {
 public:
  GuardedCache(int dtype, size_t n) {
    if (dtype == KV_F16) f16_ = std::make_unique<GuardedArray<uint16_t>>(std::vector<uint16_t>(n, 0x7e00));
    else f32_ = std::make_unique<GuardedArray<float>>(std::vector<float>(n, NAN));
  }
  explicit GuardedCache(const std::vector<float>& values) : f32_(std::make_unique<GuardedArray<float>>(values)) {}
  int dtype() const { return f16_ ? KV_F16 : KV_F32; }
  void* data() const { return f16_ ? static_cast<void*>(f16_->data()) : static_cast<void*>(f32_->data()); }
  // The entries, widened to f32.
  std::vector<float> values() const {
    if (!f16_) return f32_->values();
    std::vector<float> r;
    for (const uint16_t h : f16_->values()) r.push_back(static_cast<float>(f16_value(h)));
    return r;
  }
  std::vector<uint16_t> halves() const { return f16_->values(); }

 private:
  std::unique_ptr<GuardedArray<float>> f32_;
  std::unique_ptr<GuardedArray<uint16_t>> f16_;
};

static void on_segv(int) {
  static const char msg[] = "FAIL segmentation fault: a kernel read or wrote past the end of a guarded buffer (the last line above names the case before it)\n";
  fflush(stdout);
  if (write(2, msg, sizeof msg - 1) < 0) {}
  _exit(1);
}

// A host weight in one of the five formats, with its exact values in float64. Kernels get guarded
// copies of its bytes, made at the first dev() (the vectors must not change after that).
struct HostW {
  int format, rows, cols;
  std::vector<float> f32;
  std::vector<uint16_t> u16, scales;
  std::vector<int8_t> q8;
  std::vector<uint8_t> q4;
  std::vector<double> value;
  mutable std::shared_ptr<Guarded> dev_data, dev_scales;
  DevWeight dev() const {
    if (!dev_data) {
      if (format == FMT_F32) dev_data = std::make_shared<Guarded>(f32.data(), f32.size() * sizeof(float));
      else if (format == FMT_Q8_0) dev_data = std::make_shared<Guarded>(q8.data(), q8.size());
      else if (format == FMT_Q4_0) dev_data = std::make_shared<Guarded>(q4.data(), q4.size());
      else dev_data = std::make_shared<Guarded>(u16.data(), u16.size() * sizeof(uint16_t));
      if (!scales.empty()) dev_scales = std::make_shared<Guarded>(scales.data(), scales.size() * sizeof(uint16_t));
    }
    return DevWeight{dev_data->data(), dev_scales ? static_cast<const uint16_t*>(dev_scales->data()) : nullptr, format, rows, cols};
  }
};

static HostW make_weight(int format, int rows, int cols, float std) {
  HostW w{format, rows, cols};
  const size_t n = static_cast<size_t>(rows) * cols;
  w.value.resize(n);
  if (format == FMT_F32) {
    for (size_t i = 0; i < n; i++) w.value[i] = (w.f32.push_back(normal(std)), w.f32.back());
  } else if (format == FMT_F16 || format == FMT_BF16) {
    for (size_t i = 0; i < n; i++) {
      const float v = normal(std);
      w.u16.push_back(format == FMT_F16 ? f32_to_f16(v) : f32_to_bf16(v));
      w.value[i] = format == FMT_F16 ? f16_value(w.u16.back()) : bf16_value(w.u16.back());
    }
  } else {
    const size_t blocks = n / 32;
    for (size_t b = 0; b < blocks; b++) w.scales.push_back(f32_to_f16(std / (format == FMT_Q8_0 ? 60.f : 4.f) * (0.5f + (b % 7) / 7.f)));
    if (format == FMT_Q8_0) {
      for (size_t i = 0; i < n; i++) w.q8.push_back(static_cast<int8_t>(static_cast<int>(rng() % 255) - 127));
      for (size_t i = 0; i < n; i++) w.value[i] = f16_value(w.scales[i / 32]) * w.q8[i];
    } else {
      for (size_t i = 0; i < n / 2; i++) w.q4.push_back(static_cast<uint8_t>(rng() & 0xff));
      for (size_t i = 0; i < n; i++) {
        const size_t b = i / 32;
        const int j = i % 32;
        const uint8_t byte = w.q4[b * 16 + (j & 15)];
        w.value[i] = f16_value(w.scales[b]) * ((j < 16 ? (byte & 15) : (byte >> 4)) - 8);
      }
    }
  }
  return w;
}

static std::vector<float> normals(size_t n, float std = 1.f) {
  std::vector<float> v(n);
  for (auto& x : v) x = normal(std);
  return v;
}
// Scratch for the prefill GEMM (launch_matmul's gemm_scratch), exactly as large as it asks for, guarded,
// and filled with garbage as device memory may be.
static void* gemm_scratch(int T, int K, const DevWeight* w, int count, int flags) {
  static std::unique_ptr<Guarded> buf;
  const std::vector<unsigned char> garbage(gemm_scratch_bytes(T, K, w, count, flags), 0xcd);
  buf = std::make_unique<Guarded>(garbage.data(), garbage.size());
  return buf->data();
}

static const char* fmt_name(int f) { return f == 0 ? "f32" : f == 1 ? "f16" : f == 2 ? "bf16" : f == 3 ? "q8_0" : "q4_0"; }

static void test_embed() {
  for (int f = 0; f < 5; f++) {
    const int V = 11, cols = f >= 3 ? 64 : 45;
    HostW w = make_weight(f, V, cols, 0.5f);
    std::vector<int> ids = {0, 10, 5, 5, 3};
    std::vector<float> out(ids.size() * cols);
    launch_embed(nullptr, w.dev(), ids.data(), static_cast<int>(ids.size()), out.data());
    std::vector<double> want;
    for (int id : ids) for (int c = 0; c < cols; c++) want.push_back(w.value[static_cast<size_t>(id) * cols + c]);
    check(std::string("embed ") + fmt_name(f), out, want, 0);
  }
}

static void test_rmsnorm() {
  for (int cols : {45, 896, 2304}) {
    const int rows = 3;
    auto x = normals(rows * cols, 1.5f);
    HostW g = make_weight(FMT_F32, 1, cols, 1.f);
    std::vector<float> out(x.size());
    launch_rmsnorm(nullptr, x.data(), g.dev(), 1e-6f, out.data(), rows, cols);
    std::vector<double> want;
    for (int r = 0; r < rows; r++) {
      double ss = 0;
      for (int c = 0; c < cols; c++) ss += static_cast<double>(x[r * cols + c]) * x[r * cols + c];
      const double inv = 1 / std::sqrt(ss / cols + 1e-6);
      for (int c = 0; c < cols; c++) want.push_back(x[r * cols + c] * inv * g.value[c]);
    }
    check("rmsNorm cols " + std::to_string(cols), out, want, 1e-5);
    launch_rmsnorm(nullptr, x.data(), g.dev(), 1e-6f, x.data(), rows, cols);  // in place
    check("rmsNorm in place cols " + std::to_string(cols), x, want, 1e-5);
  }
}

static void test_matmul() {
  for (int f = 0; f < 5; f++) {
    // 9 and 70 tokens take the GEMM: the pipelined one with K 64 or 96 (the three weights in one launch),
    // one WMMA launch per weight for f16/bf16 with K 45, the SIMT kernel for f32; 70 on the large tiles
    // (the emulation has one multiprocessor), 9 on the small ones.
    for (int T : {1, 5, 8, 9, 70}) {
      for (int K : {64, 96, 45}) {
        if (f >= 3 && K % 32) continue;
        if ((T == 70 || T == 5) && K == 64) continue;  // keep the run short
        const int Ns[3] = {37, 70, 9};
        std::vector<HostW> ws, bs;
        std::vector<std::unique_ptr<GuardedArray<float>>> outs;  // x and the outputs end at a guard page
        DevWeight dw[3], db[3];
        float* po[3];
        for (int i = 0; i < 3; i++) {
          ws.push_back(make_weight(f, Ns[i], K, 1.f / std::sqrt(static_cast<float>(K))));
          bs.push_back(make_weight(FMT_F32, 1, Ns[i], 0.1f));
          outs.push_back(std::make_unique<GuardedArray<float>>(std::vector<float>(static_cast<size_t>(T) * Ns[i], NAN)));
        }
        for (int i = 0; i < 3; i++) {
          dw[i] = ws[i].dev();
          db[i] = i == 1 ? DevWeight{nullptr, nullptr, -1, 0, 0} : bs[i].dev();
          po[i] = outs[i]->data();
        }
        // One float of padding in front: with T 9 and K 96, x is offset by 4 bytes, which the GEMMs must
        // not mind (the pipelined one reads x only in its split kernel, element by element).
        const size_t pad = T == 9 && K == 96 ? 1 : 0;
        const GuardedArray<float> xbuf(normals(static_cast<size_t>(T) * K + pad));
        const std::vector<float> x(xbuf.data() + pad, xbuf.data() + xbuf.size());
        launch_matmul(nullptr, xbuf.data() + pad, T, K, dw, db, po, 3, 0, NO_EPILOGUE, NO_PROLOGUE, gemm_scratch(T, K, dw, 3, 0));
        for (int i = 0; i < 3; i++) {
          std::vector<double> want;
          for (int t = 0; t < T; t++)
            for (int n = 0; n < Ns[i]; n++) {
              double acc = 0;
              for (int k = 0; k < K; k++) acc += static_cast<double>(x[t * K + k]) * ws[i].value[static_cast<size_t>(n) * K + k];
              want.push_back(acc + (i == 1 ? 0 : bs[i].value[n]));
            }
          // The GEMM rounds x to 16-bit hi + lo parts (f16/bf16) or to bf16 once with bf16 weights (q8_0/q4_0).
          const double tol = T <= GEMV_MAX_TOKENS || f == FMT_F32 ? 1e-5 : f <= FMT_BF16 ? 1e-4 : 2e-2;
          check(std::string(T <= GEMV_MAX_TOKENS ? "gemv " : "gemm ") + fmt_name(f) + " T " + std::to_string(T) + " K " + std::to_string(K) + " weight " + std::to_string(i), outs[i]->values(), want, tol);
        }
      }
    }
  }
}

// Activations beyond f16's range (65504) in some rows: the f16 GEMM's hi + lo split must not overflow.
static void test_gemm_large_activations() {
  const int T = 9, K = 96, N = 40;
  for (int f : {FMT_F16, FMT_BF16}) {
    HostW w = make_weight(f, N, K, 1.f / std::sqrt(static_cast<float>(K)));
    auto x = normals(static_cast<size_t>(T) * K);
    for (int k = 0; k < K; k++) x[2 * K + k] *= 3e5f;  // a whole row far beyond f16
    x[5 * K + 7] = 1e6f;                               // one value in an otherwise ordinary row
    x[6 * K + 3] = 65504.f;                            // f16's largest
    std::vector<float> out(static_cast<size_t>(T) * N, NAN);
    DevWeight dw = w.dev(), db{nullptr, nullptr, -1, 0, 0};
    float* po = out.data();
    launch_matmul(nullptr, x.data(), T, K, &dw, &db, &po, 1, 0, NO_EPILOGUE, NO_PROLOGUE, gemm_scratch(T, K, &dw, 1, 0));
    // Row by row: each relative to its own magnitude, so that the huge rows hide nothing in the others.
    for (int t = 0; t < T; t++) {
      std::vector<double> want;
      for (int n = 0; n < N; n++) {
        double acc = 0;
        for (int k = 0; k < K; k++) acc += static_cast<double>(x[t * K + k]) * w.value[static_cast<size_t>(n) * K + k];
        want.push_back(acc);
      }
      const std::vector<float> got(out.begin() + static_cast<size_t>(t) * N, out.begin() + static_cast<size_t>(t + 1) * N);
      check(std::string("gemm ") + fmt_name(f) + " with activations beyond f16's range, row " + std::to_string(t), got, want, 1e-4);
    }
  }
}

// Decode GEMV epilogues: the residual add (o_proj/down + add) and SwiGLU (gate/up + swiglu), in place
// as core calls them and into a separate tensor, on the vector path and (K 45: unaligned rows) on the
// fallback that runs the elementwise kernel after the plain GEMV.
static void test_gemv_epilogues() {
  for (int f = 0; f < 5; f++) {
    for (int K : {96, 45}) {
      if (f >= 3 && K % 32) continue;
      for (int T : {1, 5}) {
        for (int in_place = 0; in_place < 2; in_place++) {
          const int N = 40;
          const std::string what = std::string(fmt_name(f)) + " T " + std::to_string(T) + " K " + std::to_string(K) + (in_place ? " in place" : "");
          HostW w0 = make_weight(f, N, K, 1.f / std::sqrt(static_cast<float>(K))), w1 = make_weight(f, N, K, 1.f / std::sqrt(static_cast<float>(K)));
          HostW bias = make_weight(FMT_F32, 1, N, 0.1f);
          const auto x = normals(static_cast<size_t>(T) * K);
          const GuardedArray<float> xg(x);  // x and every output end at a guard page
          std::vector<double> y0, y1;
          for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
              double a = bias.value[n], b = 0;
              for (int k = 0; k < K; k++) {
                a += static_cast<double>(x[t * K + k]) * w0.value[static_cast<size_t>(n) * K + k];
                b += static_cast<double>(x[t * K + k]) * w1.value[static_cast<size_t>(n) * K + k];
              }
              y0.push_back(a);
              y1.push_back(b);
            }
          const DevWeight none{nullptr, nullptr, -1, 0, 0};
          // Residual: out = residual + (x W0^T + bias).
          {
            const auto residual = normals(static_cast<size_t>(T) * N);
            const GuardedArray<float> out0(std::vector<float>(static_cast<size_t>(T) * N, NAN)), res(residual), sum(out0.values());
            float* dst = in_place ? res.data() : sum.data();
            DevWeight dw = w0.dev(), db = bias.dev();
            float* po = out0.data();
            launch_matmul(nullptr, xg.data(), T, K, &dw, &db, &po, 1, false, MatmulEpilogue{EPI_RESIDUAL, res.data(), dst});
            std::vector<double> want;
            for (size_t i = 0; i < y0.size(); i++) want.push_back(residual[i] + y0[i]);
            check("gemv residual epilogue " + what + ": projection", out0.values(), y0, 1e-5);
            check("gemv residual epilogue " + what + ": sum", (in_place ? res : sum).values(), want, 1e-5);
          }
          // SwiGLU: out = silu(x W0^T + bias) * (x W1^T).
          {
            const GuardedArray<float> g(std::vector<float>(static_cast<size_t>(T) * N, NAN)), u(g.values()), glu(g.values());
            DevWeight dw[2] = {w0.dev(), w1.dev()}, db[2] = {bias.dev(), none};
            float* po[2] = {g.data(), u.data()};
            launch_matmul(nullptr, xg.data(), T, K, dw, db, po, 2, false, MatmulEpilogue{EPI_SWIGLU, nullptr, in_place ? g.data() : glu.data()});
            std::vector<double> want;
            for (size_t i = 0; i < y0.size(); i++) want.push_back(y0[i] / (1 + std::exp(-y0[i])) * y1[i]);
            if (!in_place) check("gemv SwiGLU epilogue " + what + ": gate", g.values(), y0, 1e-5);
            check("gemv SwiGLU epilogue " + what + ": up", u.values(), y1, 1e-5);
            check("gemv SwiGLU epilogue " + what + ": silu(gate) * up", (in_place ? g : glu).values(), want, 1e-5);
          }
        }
      }
    }
  }
}

// The RMSNorm prologue of the decode GEMV: x normalized in shared memory (and written out by block 0),
// then q/k/v-like weights, or one weight with the residual epilogue, or gate/up with SwiGLU. K 45
// (unaligned), mixed formats and T * K beyond the shared-memory limit take the fallback (the RMSNorm
// kernel, then the GEMV).
static void test_gemv_norm_prologue(int sms) {
  struct Case { int f0, f1, K, T; };
  const Case cases[] = {{FMT_BF16, FMT_BF16, 96, 1}, {FMT_Q4_0, FMT_Q4_0, 96, 5}, {FMT_F32, FMT_F32, 96, 8}, {FMT_Q8_0, FMT_Q8_0, 64, 2},
                        {FMT_F16, FMT_F16, 45, 3}, {FMT_BF16, FMT_Q8_0, 96, 1}, {FMT_F16, FMT_F16, 1600, 8}};
  for (const Case& c : cases) {
    const int N = 40, K = c.K, T = c.T;
    const std::string what = std::string(fmt_name(c.f0)) + (c.f1 != c.f0 ? std::string("+") + fmt_name(c.f1) : "") + " K " + std::to_string(K) + " T " + std::to_string(T) +
                             " on " + std::to_string(sms) + " SMs";
    HostW g = make_weight(FMT_F32, 1, K, 1.f);
    for (auto& v : g.f32) v = 1.f + 0.5f * v;
    for (int k = 0; k < K; k++) g.value[k] = g.f32[k];
    const float eps = 1e-6f;
    const auto x = normals(static_cast<size_t>(T) * K, 2.f);
    std::vector<double> xn(static_cast<size_t>(T) * K);
    for (int t = 0; t < T; t++) {
      double ss = 0;
      for (int k = 0; k < K; k++) ss += static_cast<double>(x[t * K + k]) * x[t * K + k];
      const double inv = 1 / std::sqrt(ss / K + eps);
      for (int k = 0; k < K; k++) xn[t * K + k] = x[t * K + k] * inv * g.value[k];
    }
    HostW w[3] = {make_weight(c.f0, N, K, 1.f / std::sqrt(static_cast<float>(K))), make_weight(c.f1, N, K, 1.f / std::sqrt(static_cast<float>(K))),
                  make_weight(c.f0, N, K, 1.f / std::sqrt(static_cast<float>(K)))};
    auto project = [&](const HostW& hw) {
      std::vector<double> y;
      for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
          double a = 0;
          for (int k = 0; k < K; k++) a += xn[t * K + k] * hw.value[static_cast<size_t>(n) * K + k];
          y.push_back(a);
        }
      return y;
    };
    const DevWeight none{nullptr, nullptr, -1, 0, 0};
    // x, the normalized rows and every output end at a guard page.
    const GuardedArray<float> xg(x), xn_out(std::vector<float>(x.size(), NAN));
    const MatmulPrologue pro{g.dev(), eps, xn_out.data()};
    const std::vector<float> unset(static_cast<size_t>(T) * N, NAN);
    // Three weights, no epilogue (q/k/v).
    {
      const GuardedArray<float> outs[3] = {GuardedArray<float>(unset), GuardedArray<float>(unset), GuardedArray<float>(unset)};
      DevWeight dw[3] = {w[0].dev(), w[1].dev(), w[2].dev()}, db[3] = {none, none, none};
      float* po[3] = {outs[0].data(), outs[1].data(), outs[2].data()};
      launch_matmul(nullptr, xg.data(), T, K, dw, db, po, 3, false, NO_EPILOGUE, pro);
      check("gemv RMSNorm prologue " + what + ": normalized x", xn_out.values(), xn, 1e-5);
      for (int i = 0; i < 3; i++) check("gemv RMSNorm prologue " + what + ": weight " + std::to_string(i), outs[i].values(), project(w[i]), 1e-5);
    }
    if (c.f1 != c.f0) continue;
    // With the residual epilogue, in place.
    {
      const auto residual = normals(static_cast<size_t>(T) * N);
      const GuardedArray<float> y(unset), res(residual);
      DevWeight dw = w[0].dev();
      float* po = y.data();
      launch_matmul(nullptr, xg.data(), T, K, &dw, &none, &po, 1, false, MatmulEpilogue{EPI_RESIDUAL, res.data(), res.data()}, pro);
      const auto want_y = project(w[0]);
      std::vector<double> want;
      for (size_t i = 0; i < want_y.size(); i++) want.push_back(residual[i] + want_y[i]);
      check("gemv RMSNorm prologue + residual " + what, res.values(), want, 1e-5);
    }
    // With SwiGLU into the gate.
    {
      const GuardedArray<float> gt(unset), up(unset);
      DevWeight dw[2] = {w[0].dev(), w[1].dev()}, db[2] = {none, none};
      float* po[2] = {gt.data(), up.data()};
      launch_matmul(nullptr, xg.data(), T, K, dw, db, po, 2, false, MatmulEpilogue{EPI_SWIGLU, nullptr, gt.data()}, pro);
      const auto yg = project(w[0]), yu = project(w[1]);
      std::vector<double> want;
      for (size_t i = 0; i < yg.size(); i++) want.push_back(yg[i] / (1 + std::exp(-yg[i])) * yu[i]);
      check("gemv RMSNorm prologue + SwiGLU " + what, gt.values(), want, 1e-5);
    }
  }
}

// The power of two the GEMMs scale row t of x by before rounding it to f16 (1 for other formats):
// 2^(15 - e) where the row's largest |value| is below 2^e and e > 15, so that the row stays below 2^15.
static double x16_row_scale(const std::vector<float>& x, int t, int K, int format) {
  double big = 0;
  for (int k = 0; k < K; k++) big = std::max(big, std::fabs(static_cast<double>(x[static_cast<size_t>(t) * K + k])));
  int e = 0;
  std::frexp(big, &e);
  return format == FMT_F16 && e > 15 ? std::ldexp(1.0, 15 - e) : 1.0;
}

// One call of launch_matmul with the given weights (their formats in `formats`, each with a bias but
// weight 1) on random x whose rows 3 and 170 (where T has them) reach beyond f16's range, checked against
// a float64 reference that multiplies x as the kernel does: exactly (hi + lo), rounded once to the
// weight's type (f16 rows scaled by a power of two first), or for quantized weights rounded to bf16 with
// each dequantized weight rounded to bf16 as well. Each row is compared relative to its own magnitude.
// Outputs and scratch are guarded buffers.
static void check_gemm_pipelined(const std::string& what, int T, int K, const std::vector<int>& Ns, const std::vector<int>& formats, int flags) {
  const int W = static_cast<int>(Ns.size());
  const bool rounded = (flags & GEMM_ROUND_X16) != 0;
  std::vector<HostW> ws, bs;
  std::vector<std::unique_ptr<GuardedArray<float>>> outs;
  DevWeight dw[MATMUL_MAX_FUSED], db[MATMUL_MAX_FUSED];
  float* po[MATMUL_MAX_FUSED];
  for (int i = 0; i < W; i++) {
    ws.push_back(make_weight(formats[i], Ns[i], K, 1.f / std::sqrt(static_cast<float>(K))));
    bs.push_back(make_weight(FMT_F32, 1, Ns[i], 0.1f));
    outs.push_back(std::make_unique<GuardedArray<float>>(std::vector<float>(static_cast<size_t>(T) * Ns[i], NAN)));
  }
  for (int i = 0; i < W; i++) {
    dw[i] = ws[i].dev();
    db[i] = i == 1 ? DevWeight{nullptr, nullptr, -1, 0, 0} : bs[i].dev();
    po[i] = outs[i]->data();
  }
  auto x = normals(static_cast<size_t>(T) * K);
  for (int big : {3, 170})
    if (big < T)
      for (int k = 0; k < K; k++) x[static_cast<size_t>(big) * K + k] *= big == 3 ? 3e5f : 2e5f;
  const GuardedArray<float> xg(x);
  check_eq(what + ": launch", launch_matmul(nullptr, xg.data(), T, K, dw, db, po, W, flags, NO_EPILOGUE, NO_PROLOGUE, gemm_scratch(T, K, dw, W, flags)), cudaSuccess);
  for (int i = 0; i < W; i++) {
    const int f = formats[i];
    const bool quant = f >= FMT_Q8_0;
    std::vector<float> got;
    std::vector<double> want;
    for (int t = 0; t < T; t++) {
      const double s = x16_row_scale(x, t, K, f);
      std::vector<double> row(Ns[i]);
      double mx = 1;
      for (int n = 0; n < Ns[i]; n++) {
        double acc = 0;
        for (int k = 0; k < K; k++) {
          const float v = x[static_cast<size_t>(t) * K + k];
          const double xv = quant ? bf16_value(f32_to_bf16(v))
                            : !rounded ? v
                            : f == FMT_F16 ? f16_value(f32_to_f16(static_cast<float>(v * s))) / s
                                           : bf16_value(f32_to_bf16(v));
          const double wv = ws[i].value[static_cast<size_t>(n) * K + k];
          acc += xv * (quant ? bf16_value(f32_to_bf16(static_cast<float>(wv))) : wv);
        }
        row[n] = acc + (i == 1 ? 0 : bs[i].value[n]);
        mx = std::max(mx, std::fabs(row[n]));
      }
      for (int n = 0; n < Ns[i]; n++) {
        got.push_back(static_cast<float>((*outs[i])[static_cast<size_t>(t) * Ns[i] + n] / mx));
        want.push_back(row[n] / mx);
      }
    }
    check(what + " weight " + std::to_string(i) + " (" + fmt_name(f) + (quant ? "" : rounded ? ", x rounded" : ", x split") + ")", got, want, 3e-5);
  }
}

// The pipelined GEMM (K a multiple of 32) past its pipeline's depth (K 256: 8 k-tiles through 3 or 4
// stages) and over two slices of rows (the test build sets QWEN2_GEMM_SLICE_ROWS to 160: 200 tokens are
// a slice on the large tiles, then one on the small tiles), for two 16-bit weights in one launch next to
// a q8_0 and a q4_0 weight of the same call (a launch per format), at both precisions. Two rows, one in
// each slice, reach beyond f16's range.
static void test_gemm_pipelined() {
  for (int f : {FMT_F16, FMT_BF16})
    for (int flags : {0, GEMM_ROUND_X16})
      check_gemm_pipelined(std::string("gemm pipelined T 200 K 256 beside ") + fmt_name(f), 200, 256, {150, 20, 40, 70}, {f, f, FMT_Q8_0, FMT_Q4_0}, flags);
}

// Split-K: where the output tiles would leave SMs idle, the k-tiles are cut into ranges summed by a
// second kernel. First the plans at Qwen2's shapes on an H100/H200's 132 SMs (from plan_gemm_pipelined's
// estimate: at 512 tokens a 7B o_proj is 112 large tiles; in one k-range (GEMM_ONE_K_RANGE) the plan must
// be 1 range), then runs on emulated SM counts where the plan cuts K: large tiles in 2 ranges (two
// weights: their partial sums side by side), small tiles in 4, and small tiles in 3 uneven ranges over
// two slices of rows (the second, of 40 rows, in 4).
static void test_gemm_split_k() {
  struct Pick { const char* what; int rows, K; std::vector<int> Ns; bool large; int splits; };
  const Pick picks[] = {
      {"7B q/k/v at 512", 512, 3584, {3584, 512, 512}, false, 2}, {"7B o_proj at 512", 512, 3584, {3584}, true, 2},
      {"7B gate/up at 512", 512, 3584, {18944, 18944}, true, 1},  {"7B down_proj at 512", 512, 18944, {3584}, true, 2},
      {"7B o_proj at 4096", 4096, 3584, {3584}, true, 1},         {"0.5B q/k/v at 512", 512, 896, {896, 128, 128}, false, 2},
      {"0.5B o_proj at 512", 512, 896, {896}, false, 3},          {"0.5B gate/up at 512", 512, 896, {4864, 4864}, true, 1},
      {"0.5B down_proj at 512", 512, 4864, {896}, false, 3},      {"7B down_proj at 64", 64, 18944, {3584}, false, 4}};
  for (const Pick& p : picks) {
    const PipelinedPlan plan = plan_gemm_pipelined(p.rows, p.K, p.Ns.data(), static_cast<int>(p.Ns.size()), 132, false);
    check_eq(std::string("gemm plan: ") + p.what + " on 132 SMs, tiles", plan.large ? 128 : 64, p.large ? 128 : 64);
    check_eq(std::string("gemm plan: ") + p.what + " on 132 SMs, k-ranges", plan.splits, p.splits);
    check_eq(std::string("gemm plan: ") + p.what + " on 132 SMs, k-tiles per range", plan.k_tiles_per_split, (p.K / 32 + p.splits - 1) / p.splits);
    check_eq(std::string("gemm plan: ") + p.what + " in one k-range", plan_gemm_pipelined(p.rows, p.K, p.Ns.data(), static_cast<int>(p.Ns.size()), 132, true).splits, 1);
  }
  // Each run in the formats and flags whose paths differ under split-K: the row scale of f16 (row 3
  // beyond f16's range) applied in the summing kernel, quantized blocks and scales indexed from the
  // range's first k-tile, 16-bit x split or rounded; and in one k-range to compare.
  struct Variant { int format, flags; };
  struct Run { int sms, T, K; std::vector<int> Ns; bool large; int splits; std::vector<Variant> variants; };
  const Run runs[] = {{3, 100, 2048, {200, 56}, true, 2, {{FMT_BF16, 0}, {FMT_F16, 0}, {FMT_Q4_0, 0}, {FMT_BF16, GEMM_ONE_K_RANGE}}},
                      {16, 100, 1024, {72, 40}, false, 4, {{FMT_F16, GEMM_ROUND_X16}, {FMT_Q8_0, 0}, {FMT_F16, GEMM_ONE_K_RANGE}}},
                      {12, 200, 1024, {256}, false, 3, {{FMT_BF16, 0}, {FMT_Q4_0, 0}}}};
  for (const Run& r : runs) {
    ::emu::multiprocessors = r.sms;
    const PipelinedPlan plan = plan_gemm_pipelined(std::min(r.T, QWEN2_GEMM_SLICE_ROWS), r.K, r.Ns.data(), static_cast<int>(r.Ns.size()), r.sms, false);
    const std::string shape = "T " + std::to_string(r.T) + " K " + std::to_string(r.K) + " on " + std::to_string(r.sms) + " SMs";
    check_eq("gemm split-K plan " + shape + ": tiles", plan.large ? 128 : 64, r.large ? 128 : 64);
    check_eq("gemm split-K plan " + shape + ": k-ranges", plan.splits, r.splits);
    for (const Variant& v : r.variants) {
      const std::vector<int> formats(r.Ns.size(), v.format);
      check_gemm_pipelined(std::string("gemm split-K ") + shape + (v.flags == GEMM_ONE_K_RANGE ? ", one k-range" : ""), r.T, r.K, r.Ns, formats, v.flags);
    }
  }
  ::emu::multiprocessors = 1;
}

// prefillPrecision '16-bit': x rounded once to the weight's type. Checked against exactly that rounding
// (so an unrounded or split x fails), on both tile sizes and both load paths, with an f16 row beyond
// f16's range (scaled by a power of two before rounding, as in the split path).
static void test_gemm_rounded() {
  for (int f : {FMT_F16, FMT_BF16}) {
    for (int T : {9, 70}) {
      const int K = T == 9 ? 45 : 96, N = 40;
      HostW w = make_weight(f, N, K, 1.f / std::sqrt(static_cast<float>(K)));
      auto x = normals(static_cast<size_t>(T) * K);
      for (int k = 0; k < K; k++) x[2 * K + k] *= 3e5f;
      std::vector<float> out(static_cast<size_t>(T) * N, NAN);
      DevWeight dw = w.dev(), db{nullptr, nullptr, -1, 0, 0};
      float* po = out.data();
      launch_matmul(nullptr, x.data(), T, K, &dw, &db, &po, 1, GEMM_ROUND_X16, NO_EPILOGUE, NO_PROLOGUE, gemm_scratch(T, K, &dw, 1, GEMM_ROUND_X16));
      for (int t = 0; t < T; t++) {
        const double s = x16_row_scale(x, t, K, f);
        std::vector<double> want;
        for (int n = 0; n < N; n++) {
          double acc = 0;
          for (int k = 0; k < K; k++) {
            const float v = static_cast<float>(x[t * K + k] * s);
            const double r = f == FMT_F16 ? f16_value(f32_to_f16(v)) : bf16_value(f32_to_bf16(v));
            acc += r / s * w.value[static_cast<size_t>(n) * K + k];
          }
          want.push_back(acc);
        }
        const std::vector<float> got(out.begin() + static_cast<size_t>(t) * N, out.begin() + static_cast<size_t>(t + 1) * N);
        check(std::string("gemm ") + fmt_name(f) + " with x rounded to 16 bits, T " + std::to_string(T) + " row " + std::to_string(t), got, want, 1e-5);
      }
    }
  }
}

// RoPE (rotate-half) of T rows of `heads` heads at positions start.., in float64.
static std::vector<double> rope_reference(const std::vector<float>& x, int T, int heads, int hd, int start, double theta) {
  std::vector<double> r(x.begin(), x.end());
  for (int t = 0; t < T; t++)
    for (int i = 0; i < hd / 2; i++) {
      const double a = (start + t) * std::pow(theta, -2.0 * i / hd);
      for (int h = 0; h < heads; h++) {
        const size_t b = (static_cast<size_t>(t) * heads + h) * hd;
        const double x1 = x[b + i], x2 = x[b + i + hd / 2];
        r[b + i] = x1 * std::cos(a) - x2 * std::sin(a);
        r[b + i + hd / 2] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  return r;
}

static void test_rope() {
  for (int hd : {64, 128}) {
    for (int start : {0, 7, 4000}) {
      const int T = 3, heads = 3;
      const double theta = 1e6;
      auto x = normals(static_cast<size_t>(T) * heads * hd);
      const std::vector<double> want = rope_reference(x, T, heads, hd, start, theta);
      int pos_base = start - 2;  // exercise the device-position path: start = *ptr + 2
      launch_rope(nullptr, x.data(), T, heads, hd, PosArg{&pos_base, 2}, static_cast<float>(theta));
      check("rope head_dim " + std::to_string(hd) + " start " + std::to_string(start), x, want, 1e-5);
    }
  }
}

// The KV write of T tokens at positions start.. into caches of [heads][max_tokens][hd] (filled with NaN
// before; an f16 cache's entries widened): the keys against `want_k` (within `key_tol`) and the values
// exactly against `want_v`, both in a pass's [T][heads][hd] order, and every other entry left alone.
static void check_cache_write(const std::string& what, const std::vector<float>& kc, const std::vector<float>& vc, int heads, int T, int hd,
                              int max_tokens, int start, const std::vector<double>& want_k, const std::vector<double>& want_v, double key_tol = 1e-5) {
  std::vector<float> got_k, got_v;
  for (int t = 0; t < T; t++)
    for (int h = 0; h < heads; h++)
      for (int d = 0; d < hd; d++) {
        const size_t c = (static_cast<size_t>(h) * max_tokens + start + t) * hd + d;
        got_k.push_back(kc[c]);
        got_v.push_back(vc[c]);
      }
  check(what + ": cached keys", got_k, want_k, key_tol);
  check(what + ": cached values", got_v, want_v, 0);
  size_t untouched = 0;
  for (size_t i = 0; i < kc.size(); i++) untouched += std::isnan(kc[i]) && std::isnan(vc[i]);
  check_eq(what + ": cache entries left alone", static_cast<long>(untouched), static_cast<long>(kc.size() - static_cast<size_t>(heads) * T * hd));
}

// rope(q) + rope(k) + writeKV in one launch (a decode step's fused op), against the same float64 RoPE
// and the cache layout of write_kv; once without the cache write. An f16 cache must hold exactly the
// rounded halves of the rotated k the kernel wrote back and of v.
static void test_rope_qk() {
  for (int hd : {64, 128}) {
    for (int write = 0; write < 3; write++) {
      const int T = 3, hq = 7, hk = 2, start = 40, max_tokens = 50;
      const int kv_dtype = write == 2 ? KV_F16 : KV_F32;
      const double theta = 1e6;
      auto q = normals(static_cast<size_t>(T) * hq * hd), k = normals(static_cast<size_t>(T) * hk * hd), v = normals(static_cast<size_t>(T) * hk * hd);
      const auto want_q = rope_reference(q, T, hq, hd, start, theta), want_k = rope_reference(k, T, hk, hd, start, theta);
      const GuardedCache kc(kv_dtype, static_cast<size_t>(hk) * max_tokens * hd), vc(kv_dtype, static_cast<size_t>(hk) * max_tokens * hd);
      int pass_pos = start - 1;
      launch_rope_qk(nullptr, q.data(), hq, k.data(), hk, T, hd, PosArg{&pass_pos, 1}, static_cast<float>(theta), v.data(), write ? kc.data() : nullptr,
                     write ? vc.data() : nullptr, kv_dtype, max_tokens);
      const std::string what = "rope q+k" + std::string(write ? " + KV write (" + std::string(kv_name(kv_dtype)) + " cache)" : "") + " head_dim " + std::to_string(hd);
      check(what + ": q", q, want_q, 1e-5);
      check(what + ": k", k, want_k, 1e-5);
      if (write == 1) check_cache_write(what, kc.values(), vc.values(), hk, T, hd, max_tokens, start, want_k, std::vector<double>(v.begin(), v.end()));
      if (write == 2) {
        const auto k16 = stored_as(k, KV_F16), v16 = stored_as(v, KV_F16);
        check_cache_write(what, kc.values(), vc.values(), hk, T, hd, max_tokens, start, std::vector<double>(k16.begin(), k16.end()),
                          std::vector<double>(v16.begin(), v16.end()), 0);
      }
    }
  }
}

// The rows per warp of the RMSNorm-prologue GEMV on an H100/H200's 132 SMs at Qwen2's shapes, and at
// the sizes of the tests below: their q/k/v on 1, 4 and 132 SMs take 4, 2 and 1 (rotary pairs: 2 per
// warp at 4 rows, 1 at 2 rows or 1, which the rope test's head_dim 64 and 16 cases take on 1 and 132).
static void test_gemv_rows_per_warp() {
  struct Pick { const char* what; std::vector<int> rows; bool shared, rope; int sms, want; };
  const Pick picks[] = {
      {"0.5B q/k/v + rope", {896, 128, 128}, false, true, 132, 1}, {"0.5B gate/up + SwiGLU", {4864, 4864}, true, false, 132, 2},
      {"0.5B lm_head", {151936}, false, false, 132, 4},            {"7B q/k/v + rope", {3584, 512, 512}, false, true, 132, 2},
      {"7B gate/up + SwiGLU", {18944, 18944}, true, false, 132, 4}, {"test q/k/v", {40, 40, 40}, false, false, 1, 4},
      {"test q/k/v", {40, 40, 40}, false, false, 4, 2},             {"test q/k/v", {40, 40, 40}, false, false, 132, 1},
      {"test rope head_dim 64", {192, 128, 128}, false, true, 8, 2}, {"test residual", {40}, true, false, 4, 1}};
  for (const Pick& p : picks)
    check_eq(std::string("gemv rows per warp: ") + p.what + " on " + std::to_string(p.sms) + " SMs",
             gemv_norm_rows_per_warp(p.rows.data(), static_cast<int>(p.rows.size()), p.shared, p.rope, p.sms), p.want);
}

// The decode GEMV's rope epilogue: q/k/v with biases, q and k rotated, the rotated k and v stored to the
// cache, with and without the RMSNorm prologue, at a position read from "device" memory. Checked against
// the float64 projections and RoPE, and against the unfused launches (GEMV, then rope_qk), which it must
// match to the bit. K 45 (unaligned rows) takes the fallback: those very launches; K 1600 at 8 tokens
// (rows beyond the prologue's shared memory) the RMSNorm kernel, then the GEMV with the epilogue. f16
// caches must hold exactly the rounded halves of the k and v the launch wrote out.
static void test_gemv_rope(int sms) {
  struct Case { int f, K, T, hd; bool norm, write; int kv; };
  const Case cases[] = {{FMT_BF16, 96, 1, 64, true, true, KV_F32}, {FMT_F16, 96, 5, 16, false, true, KV_F32}, {FMT_F32, 96, 8, 64, true, false, KV_F32},
                        {FMT_Q8_0, 64, 2, 16, true, true, KV_F32}, {FMT_Q4_0, 96, 3, 64, false, true, KV_F32}, {FMT_F16, 45, 2, 16, true, true, KV_F32},
                        {FMT_BF16, 1600, 8, 64, true, true, KV_F32}, {FMT_BF16, 96, 1, 64, true, true, KV_F16},
                        {FMT_Q4_0, 96, 3, 64, false, true, KV_F16}, {FMT_F16, 45, 2, 16, true, true, KV_F16}};
  for (const Case& c : cases) {
    // The last token's keys and values are the cache's last row: a write past it hits the guard page.
    const int K = c.K, T = c.T, hd = c.hd, hq = 3, hk = 2, start = 4000, max_tokens = start + T;
    const int rows[3] = {hq * hd, hk * hd, hk * hd};
    const double theta = 1e6;
    const float eps = 1e-6f;
    const std::string what = std::string(fmt_name(c.f)) + " K " + std::to_string(K) + " T " + std::to_string(T) + " head_dim " + std::to_string(hd) +
                             (c.norm ? " with RMSNorm" : "") + (c.write ? " + KV write (" + std::string(kv_name(c.kv)) + " cache)" : "") + " on " +
                             std::to_string(sms) + " SMs";
    HostW g = make_weight(FMT_F32, 1, K, 1.f);
    for (auto& v : g.f32) v = 1.f + 0.5f * v;
    for (int k = 0; k < K; k++) g.value[k] = g.f32[k];
    const auto x = normals(static_cast<size_t>(T) * K, 2.f);
    std::vector<double> xin(x.begin(), x.end());
    if (c.norm) {
      for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int k = 0; k < K; k++) ss += xin[t * K + k] * xin[t * K + k];
        const double inv = 1 / std::sqrt(ss / K + eps);
        for (int k = 0; k < K; k++) xin[t * K + k] *= inv * g.value[k];
      }
    }
    std::vector<HostW> w, b;
    std::vector<std::vector<double>> y(3);
    for (int j = 0; j < 3; j++) {
      w.push_back(make_weight(c.f, rows[j], K, 1.f / std::sqrt(static_cast<float>(K))));
      b.push_back(make_weight(FMT_F32, 1, rows[j], 0.5f));
      for (int t = 0; t < T; t++)
        for (int n = 0; n < rows[j]; n++) {
          double a = b[j].value[n];
          for (int k = 0; k < K; k++) a += xin[t * K + k] * w[j].value[static_cast<size_t>(n) * K + k];
          y[j].push_back(a);
        }
    }
    auto rotate = [&](const std::vector<double>& v, int heads) {  // rope_reference, on float64 input
      std::vector<double> r(v);
      for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
          const double a = (start + t) * std::pow(theta, -2.0 * i / hd);
          for (int h = 0; h < heads; h++) {
            const size_t o = (static_cast<size_t>(t) * heads + h) * hd;
            r[o + i] = v[o + i] * std::cos(a) - v[o + i + hd / 2] * std::sin(a);
            r[o + i + hd / 2] = v[o + i + hd / 2] * std::cos(a) + v[o + i] * std::sin(a);
          }
        }
      return r;
    };
    const std::vector<double> want[3] = {rotate(y[0], hq), rotate(y[1], hk), y[2]};
    // Both runs: [0] fused, [1] the GEMV and rope_qk launches it replaces. Every buffer ends at a guard page.
    std::vector<float> out[2][3], kc[2], vc[2], xn_out[2];
    const GuardedArray<float> xg(x);
    int pass_pos = start - 3;
    const PosArg at{&pass_pos, 3};
    for (int run = 0; run < 2; run++) {
      DevWeight dw[3], db[3];
      std::vector<std::unique_ptr<GuardedArray<float>>> og;
      float* po[3];
      for (int j = 0; j < 3; j++) {
        og.push_back(std::make_unique<GuardedArray<float>>(std::vector<float>(static_cast<size_t>(T) * rows[j], NAN)));
        dw[j] = w[j].dev();
        db[j] = b[j].dev();
        po[j] = og[j]->data();
      }
      const GuardedCache kcg(c.kv, static_cast<size_t>(hk) * max_tokens * hd), vcg(c.kv, static_cast<size_t>(hk) * max_tokens * hd);
      const GuardedArray<float> xng(std::vector<float>(x.size(), NAN));
      void* kcp = c.write ? kcg.data() : nullptr;
      void* vcp = c.write ? vcg.data() : nullptr;
      const MatmulPrologue pro = c.norm ? MatmulPrologue{g.dev(), eps, xng.data()} : NO_PROLOGUE;
      if (run == 0) {
        MatmulEpilogue epi = NO_EPILOGUE;
        epi.kind = EPI_ROPE;
        epi.rope = RopeEpilogue{hd, at, static_cast<float>(theta), kcp, vcp, max_tokens, c.kv};
        check_eq("gemv rope epilogue " + what + ": launch", launch_matmul(nullptr, xg.data(), T, K, dw, db, po, 3, false, epi, pro), cudaSuccess);
      } else {
        launch_matmul(nullptr, xg.data(), T, K, dw, db, po, 3, false, NO_EPILOGUE, pro);
        launch_rope_qk(nullptr, po[0], hq, po[1], hk, T, hd, at, static_cast<float>(theta), po[2], kcp, vcp, c.kv, max_tokens);
      }
      for (int j = 0; j < 3; j++) out[run][j] = og[j]->values();
      kc[run] = kcg.values();
      vc[run] = vcg.values();
      xn_out[run] = xng.values();
    }
    const char* names[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; j++) {
      check("gemv rope epilogue " + what + ": " + names[j], out[0][j], want[j], 1e-5);
      check_eq("gemv rope epilogue " + what + ": " + names[j] + " differs from the unfused launches", std::memcmp(out[0][j].data(), out[1][j].data(), out[0][j].size() * 4) != 0, 0);
    }
    if (c.norm) check("gemv rope epilogue " + what + ": normalized x", xn_out[0], xin, 1e-5);
    if (!c.write) continue;
    if (c.kv == KV_F16) {
      const auto k16 = stored_as(out[0][1], KV_F16), v16 = stored_as(out[0][2], KV_F16);
      check_cache_write("gemv rope epilogue " + what, kc[0], vc[0], hk, T, hd, max_tokens, start, std::vector<double>(k16.begin(), k16.end()),
                        std::vector<double>(v16.begin(), v16.end()), 0);
    } else {
      check_cache_write("gemv rope epilogue " + what, kc[0], vc[0], hk, T, hd, max_tokens, start, want[1], std::vector<double>(out[0][2].begin(), out[0][2].end()));
    }
    check_eq("gemv rope epilogue " + what + ": caches differ from the unfused launches",
             std::memcmp(kc[0].data(), kc[1].data(), kc[0].size() * 4) != 0 || std::memcmp(vc[0].data(), vc[1].data(), vc[0].size() * 4) != 0, 0);
  }
}

// Whether a stored half widens to `want` exactly: NaN for NaN, and the sign of a zero too.
static bool half_is(uint16_t h, double want) {
  const double g = f16_value(h);
  return std::isnan(want) ? std::isnan(g) : g == want && std::signbit(g) == std::signbit(want);
}

// Stored halves (a cache's rows [heads][max_tokens][hd] at positions start.., in a pass's [T][heads][hd]
// order) against what core's roundToF16KV makes of `x`, value by value.
static void check_halves(const std::string& what, const std::vector<uint16_t>& cache, int heads, int T, int hd, int max_tokens, int start,
                         const std::vector<float>& x) {
  size_t bad = 0, first = 0;
  for (int t = 0; t < T; t++)
    for (int h = 0; h < heads; h++)
      for (int d = 0; d < hd; d++) {
        const size_t i = (static_cast<size_t>(t) * heads + h) * hd + d;
        if (!half_is(cache[(static_cast<size_t>(h) * max_tokens + start + t) * hd + d], round_f16_kv(x[i])) && bad++ == 0) first = i;
      }
  if (bad) failures++;
  std::printf("%s %s: %zu of %zu values stored as roundToF16KV rounds them", bad ? "FAIL" : "ok  ", what.c_str(), x.size() - bad, x.size());
  if (bad) std::printf(" (first: %.9g)", x[first]);
  std::printf("\n");
}

// f16 caches store each value as core's roundToF16KV rounds it: core's op-suite values one by one, with
// the half each must become (saturation, the subnormals, ties to even, signed zeros, infinities, NaN),
// then with random values from subnormal to overflowing magnitudes, through write_kv (keys and values)
// and through rope_qk's write (values, which it stores unrotated; its keys are the test of test_rope_qk).
static void test_kv_f16_rounding() {
  struct Special {
    float x;
    double half;
  };
  const Special specials[] = {{65504.f, 65504},       {65519.f, 65504},         {65520.f, 65504},           {70000.f, 65504},
                              {-1e9f, -65504},         {1e-6f, 17 * 0x1p-24},    {-3e-8f, -0x1p-24},         {2.9e-8f, 0},
                              {6.1e-5f, 1023 * 0x1p-24}, {0.f, 0},              {-0.f, -0.0},               {INFINITY, INFINITY},
                              {-INFINITY, -INFINITY},  {NAN, NAN},              {1 + 0x1p-11f, 1},          {1 + 3 * 0x1p-11f, 1 + 0x1p-9},
                              {0.1f, 0.0999755859375}, {-1 / 3.f, -0.333251953125}};
  const int n_special = sizeof specials / sizeof specials[0];
  for (const Special& sp : specials) {
    const double r = round_f16_kv(sp.x);
    if (std::isnan(sp.half) ? !std::isnan(r) : r != sp.half || std::signbit(r) != std::signbit(sp.half)) {
      // The float64 reference the random values are checked against disagrees with a known half.
      failures++;
      std::printf("FAIL f16 reference: round_f16_kv(%.9g) is %.9g, not %.9g\n", sp.x, r, sp.half);
    }
  }
  const int hd = 64, heads = 2, T = 2, start = 5, max_tokens = start + T;  // the last rows: a write past them hits the guard page
  const size_t n = static_cast<size_t>(T) * heads * hd;
  std::vector<float> x(n);
  const float magnitudes[] = {1e-7f, 1e-5f, 1e-2f, 1.f, 1e3f, 3e4f, 6e4f, 1e5f};
  for (size_t i = 0; i < n; i++) x[i] = normal(magnitudes[i % 8]);
  for (int i = 0; i < n_special; i++) x[i] = specials[i].x;
  std::vector<float> neg(x);
  for (auto& v : neg) v = -v;
  const GuardedCache kc(KV_F16, static_cast<size_t>(heads) * max_tokens * hd), vc(KV_F16, static_cast<size_t>(heads) * max_tokens * hd);
  launch_write_kv(nullptr, kc.data(), vc.data(), KV_F16, x.data(), neg.data(), T, heads, hd, max_tokens, PosArg{nullptr, start});
  const std::vector<uint16_t> keys = kc.halves();
  for (int i = 0; i < n_special; i++) {
    const uint16_t h = keys[static_cast<size_t>(start) * hd + i];  // token 0, head 0
    const bool ok = half_is(h, specials[i].half);
    if (!ok) failures++;
    std::printf("%s f16 cache: write_kv stores %.9g as %.9g (want %.9g)\n", ok ? "ok  " : "FAIL", specials[i].x, f16_value(h), specials[i].half);
  }
  check_halves("f16 cache: write_kv keys", keys, heads, T, hd, max_tokens, start, x);
  check_halves("f16 cache: write_kv values", vc.halves(), heads, T, hd, max_tokens, start, neg);

  std::vector<float> q = normals(static_cast<size_t>(T) * hd), k = normals(n);
  const GuardedCache kr(KV_F16, static_cast<size_t>(heads) * max_tokens * hd), vr(KV_F16, static_cast<size_t>(heads) * max_tokens * hd);
  launch_rope_qk(nullptr, q.data(), 1, k.data(), heads, T, hd, PosArg{nullptr, start}, 1e6f, x.data(), kr.data(), vr.data(), KV_F16, max_tokens);
  check_halves("f16 cache: rope_qk values", vr.halves(), heads, T, hd, max_tokens, start, x);
  check_halves("f16 cache: rope_qk keys (rotated)", kr.halves(), heads, T, hd, max_tokens, start, k);
}

struct AttentionCase {
  int ratio, hd, start, T, window, capacity_extra;
};

// Attention of case c in float64 over keys and values as the cache holds them ([position][kv * hd]):
// core's semantics, or with `mma` the tensor-core kernel's (q * scale * log2(e), k and v rounded to
// bf16, modelled exactly; each probability rounded to bf16 before the value product, not modelled: it
// moves an output by at most 2^-8, bf16's unit roundoff, of the probability-weighted mean of |v|, which
// goes to `bound` per element, with 2e-5 for the f32 arithmetic).
static std::vector<double> attention_reference(const AttentionCase& c, const GuardedArray<float>& q, const std::vector<float>& keys,
                                               const std::vector<float>& values, float scale, bool mma, std::vector<double>* bound) {
  const int kv = 2, heads = kv * c.ratio, width = kv * c.hd;
  const float qscale = scale * 1.4426950408889634f;
  auto bf = [](float x) { return bf16_value(f32_to_bf16(x)); };
  std::vector<double> want;
  for (int t = 0; t < c.T; t++)
    for (int h = 0; h < heads; h++) {
      const int g = h / c.ratio, pos = c.start + t, first = c.window ? std::max(0, pos - c.window + 1) : 0;
      std::vector<double> p;
      double mx = -INFINITY, sum = 0;
      for (int j = first; j <= pos; j++) {
        double dot = 0;
        for (int d = 0; d < c.hd; d++) {
          const float qv = q[(static_cast<size_t>(t) * heads + h) * c.hd + d], kv_ = keys[static_cast<size_t>(j) * width + g * c.hd + d];
          dot += mma ? bf(qv * qscale) * bf(kv_) : static_cast<double>(qv) * kv_;
        }
        p.push_back(mma ? dot : dot * scale);
        mx = std::max(mx, p.back());
      }
      for (auto& v : p) sum += (v = mma ? std::exp2(v - mx) : std::exp(v - mx));
      for (int d = 0; d < c.hd; d++) {
        double acc = 0, mag = 0;
        for (int j = first; j <= pos; j++) {
          const float vf = values[static_cast<size_t>(j) * width + g * c.hd + d];
          const double v = mma ? bf(vf) : vf;
          acc += p[j - first] * v;
          mag += p[j - first] * std::fabs(v);
        }
        want.push_back(acc / sum);
        if (bound) bound->push_back(std::ldexp(mag / sum, -8) + 2e-5);
      }
    }
  return want;
}

// The outputs of every attention kernel that takes case c: the split kernel (its plan in `plan_name`),
// and at head_dim 64/128 the tiled and the tensor-core ones (empty otherwise).
struct AttentionOutputs {
  std::vector<float> split, tiled, mma;
  std::string plan_name;
};
static AttentionOutputs run_attention_kernels(const AttentionCase& c, const GuardedArray<float>& q, const GuardedCache& kc, const GuardedCache& vc,
                                              int max_tokens, int* pass_pos, float scale, const std::string& what) {
  const int kv = 2, heads = kv * c.ratio, total = c.start + c.T;
  AttentionOutputs r;
  const int capacity = c.T == 1 ? max_tokens : total;  // decode plans cover the whole cache
  AttentionPlan plan = plan_split_attention(c.T, heads, c.hd, capacity);
  // Scratch starts as plausible stale partial results (as an earlier step leaves them): the merge must
  // read only the chunks written for this step.
  const GuardedArray<float> scratch(std::vector<float>(plan.scratch_floats, 0.5f));
  r.split.assign(static_cast<size_t>(c.T) * heads * c.hd, NAN);
  // One set of merge counters for every case, as the addon keeps one: each launch (and each slice of
  // a pass: this build slices every 4 tokens) must leave them at zero for the next.
  static std::vector<int> counters(4096, 0);
  if (attention_counter_ints(c.T, kv) > counters.size()) std::abort();
  launch_attention(nullptr, q.data(), kc.data(), vc.data(), kc.dtype(), c.T, heads, kv, c.hd, max_tokens, PosArg{pass_pos, 0}, scale, c.window, plan,
                   scratch.data(), counters.data(), r.split.data());
  r.plan_name = std::to_string(plan.splits) + " splits of " + std::to_string(plan.chunk);
  check_eq(what + " (" + r.plan_name + "): merge counters left nonzero", std::count_if(counters.begin(), counters.end(), [](int v) { return v != 0; }), 0);
  if (c.hd == 64 || c.hd == 128) {
    r.tiled.assign(r.split.size(), NAN);
    launch_attention_tiled(nullptr, q.data(), kc.data(), vc.data(), kc.dtype(), c.T, heads, kv, c.hd, max_tokens, PosArg{pass_pos, 0}, scale, c.window,
                           r.tiled.data());
    r.mma.assign(r.split.size(), NAN);
    launch_attention_mma(nullptr, q.data(), kc.data(), vc.data(), kc.dtype(), c.T, heads, kv, c.hd, max_tokens, PosArg{pass_pos, 0}, scale, c.window,
                         r.mma.data());
  }
  return r;
}

// Case c on a cache of kv_dtype, written through write_kv: every kernel against the float64 references
// over what the cache holds (an f16 cache's rounded halves). On an f16 cache the kernels must also give
// the very bits they give on an f32 cache holding the widened halves: the same arithmetic, the halves
// only read differently.
static void check_attention_case(const AttentionCase& c, int kv_dtype) {
  const int kv = 2, heads = kv * c.ratio, width = kv * c.hd, total = c.start + c.T, max_tokens = total + 3 + c.capacity_extra;
  auto keys = normals(static_cast<size_t>(total) * width), values = normals(static_cast<size_t>(total) * width);
  // Queries, caches and scratch in guarded memory: reading past the cache's capacity stops the run.
  const GuardedArray<float> q(normals(static_cast<size_t>(c.T) * heads * c.hd));
  const GuardedCache kc(kv_dtype, static_cast<size_t>(kv) * max_tokens * c.hd), vc(kv_dtype, static_cast<size_t>(kv) * max_tokens * c.hd);
  // Write the prefix and the new rows through the kernel, in two calls as the model does.
  if (c.start > 0) launch_write_kv(nullptr, kc.data(), vc.data(), kv_dtype, keys.data(), values.data(), c.start, kv, c.hd, max_tokens, PosArg{nullptr, 0});
  int pass_pos = c.start;
  launch_write_kv(nullptr, kc.data(), vc.data(), kv_dtype, keys.data() + static_cast<size_t>(c.start) * width, values.data() + static_cast<size_t>(c.start) * width,
                  c.T, kv, c.hd, max_tokens, PosArg{&pass_pos, 0});
  const float scale = 1.f / std::sqrt(static_cast<float>(c.hd));
  const auto held_k = stored_as(keys, kv_dtype), held_v = stored_as(values, kv_dtype);
  char name[160];
  std::snprintf(name, sizeof name, "attention GQA %d head_dim %d start %d T %d window %d%s", c.ratio, c.hd, c.start, c.T, c.window,
                kv_dtype == KV_F16 ? ", f16 cache" : "");
  const AttentionOutputs got = run_attention_kernels(c, q, kc, vc, max_tokens, &pass_pos, scale, name);
  const std::vector<double> want = attention_reference(c, q, held_k, held_v, scale, false, nullptr);
  check(std::string(name) + " (" + got.plan_name + ")", got.split, want, 1e-5);
  if (!got.tiled.empty()) {
    check(std::string(name) + " (tiled)", got.tiled, want, 1e-5);
    std::vector<double> bound;
    const std::vector<double> want16 = attention_reference(c, q, held_k, held_v, scale, true, &bound);
    check_within(std::string(name) + " (tensor cores, bf16)", got.mma, want16, bound);
  }
  if (kv_dtype != KV_F16) return;
  const GuardedCache kw(kc.values()), vw(vc.values());
  const AttentionOutputs wide = run_attention_kernels(c, q, kw, vw, max_tokens, &pass_pos, scale, std::string(name) + " on f32 of its halves");
  auto differs = [](const std::vector<float>& a, const std::vector<float>& b) { return a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * 4) != 0; };
  check_eq(std::string(name) + " (split): differs from an f32 cache of its halves", differs(got.split, wide.split), 0);
  if (got.tiled.empty()) return;
  check_eq(std::string(name) + " (tiled): differs from an f32 cache of its halves", differs(got.tiled, wide.tiled), 0);
  check_eq(std::string(name) + " (tensor cores): differs from an f32 cache of its halves", differs(got.mma, wide.mma), 0);
}

static void test_attention() {
  // Every case runs on the split kernel and, at head_dim 64/128, on the tiled and the tensor-core ones (which plan_attention
  // picks for long prefills: its choice is checked below at an H100/H200's 132 SMs).
  const AttentionCase cases[] = {{1, 64, 0, 1, 0, 0}, {7, 64, 37, 1, 0, 0}, {4, 64, 300, 1, 0, 0}, {7, 128, 13, 5, 0, 0},
                                 {2, 64, 20, 5, 8, 0}, {1, 64, 40, 1, 16, 0}, {2, 64, 600, 1, 0, 1000}, {4, 80, 3, 4, 0, 0},
                                 // a window that starts past the first chunk; a cache long enough for chunks of 128
                                 {2, 64, 150, 3, 40, 0}, {7, 64, 200, 1, 0, 20000},
                                 // prefill-sized passes: tokens straddling the tiled kernel's 64-row blocks (groups of 7),
                                 // several key tiles, a prefix already in the cache, windows shorter than a tile and
                                 // starting past the first, a window of one key, and head_dim 80 (split kernel only)
                                 {2, 128, 0, 23, 0, 0}, {7, 128, 13, 40, 0, 0}, {7, 64, 0, 70, 0, 0}, {1, 64, 100, 16, 0, 5},
                                 {4, 128, 150, 17, 0, 0}, {2, 64, 20, 30, 8, 0}, {7, 64, 130, 20, 90, 0}, {1, 64, 10, 64, 1, 0},
                                 {4, 80, 0, 20, 0, 0}};
  for (const AttentionCase& c : cases) check_attention_case(c, KV_F32);
  // f16 caches on every path: decode over a short cache (one chunk) and over long ones (many chunks, of
  // 64 and of 128 positions), a window, prefills with and without a prefix and windowed, head_dim 80
  // (halves at 2-byte alignment only), both head sizes.
  const AttentionCase f16_cases[] = {{1, 64, 37, 1, 0, 0},    {4, 128, 37, 1, 0, 0}, {2, 64, 300, 1, 0, 0},   {2, 64, 600, 1, 0, 1000},
                                     {7, 64, 200, 1, 0, 20000}, {2, 64, 20, 5, 8, 0}, {7, 64, 0, 23, 0, 0},    {7, 128, 13, 40, 0, 0},
                                     {2, 64, 20, 30, 8, 0},   {4, 80, 3, 4, 0, 0}};
  for (const AttentionCase& c : f16_cases) check_attention_case(c, KV_F16);
  // Which kernel plan_attention's estimate picks on 132 SMs: long prefills go tiled, even where their
  // blocks leave SMs idle (Qwen2-0.5B at 512 tokens: 112 blocks); a short pass after a long prefix, a
  // short prompt and decode stay split; head_dim 80 never goes tiled.
  struct Pick { const char* what; int T, heads, kv, hd, keys; bool tiled; };
  const Pick picks[] = {{"Qwen2-7B, 512-token prompt", 512, 28, 4, 128, 512, true}, {"Qwen2-0.5B, 512-token prompt", 512, 14, 2, 64, 512, true},
                        {"Qwen2-0.5B, 16 tokens after 3000", 16, 14, 2, 64, 3016, false}, {"Qwen2-7B, 16-token prompt", 16, 28, 4, 128, 16, false},
                        {"Qwen2-7B, decode", 1, 28, 4, 128, 32768, false}, {"head_dim 80, 4096-token prompt", 4096, 16, 2, 80, 4096, false}};
  for (const Pick& p : picks) check_eq(std::string("attention kernel for ") + p.what + " (1 = tiled)", attention_tiled_suits(p.T, p.heads, p.kv, p.hd, p.keys, 132), p.tiled);
  // At 16-bit precision the tensor-core kernel takes the same long prefills, not the others.
  for (const Pick& p : picks) check_eq(std::string("16-bit attention kernel for ") + p.what + " (1 = tensor cores)", attention_mma_suits(p.T, p.heads, p.kv, p.hd, p.keys, 132), p.tiled);
}

static void test_elementwise_and_argmax() {
  const size_t n = 1000;
  auto g = normals(n, 3), u = normals(n);
  std::vector<float> out(n);
  launch_swiglu(nullptr, g.data(), u.data(), out.data(), n);
  std::vector<double> want;
  for (size_t i = 0; i < n; i++) want.push_back(g[i] / (1 + std::exp(-static_cast<double>(g[i]))) * u[i]);
  check("swiglu", out, want, 1e-6);
  launch_add(nullptr, g.data(), u.data(), out.data(), n);
  want.clear();
  for (size_t i = 0; i < n; i++) want.push_back(static_cast<double>(g[i] + u[i]));
  check("add", out, want, 0);

  // Rows of 1003 logits (element by element) and of 4100 (whole float4s: 16-byte loads, more than one
  // per thread, and ties inside one float4 as well as across threads).
  for (const int V : {1003, 4100}) {
    const std::string at = " (" + std::to_string(V) + " logits)";
    auto l = normals(6 * static_cast<size_t>(V));
    l[5] = 50; l[900] = 50;            // row 0: tie, first wins
    l[V + V - 1] = 40;                 // row 1: last element
    for (int i = 0; i < V; i++) l[2 * V + i] = NAN;
    l[2 * V + 77] = -INFINITY;         // row 2: only -inf among NaN
    for (int i = 0; i < V; i++) l[3 * V + i] = NAN;  // row 3: all NaN
    l[4 * V + 10] = 60; l[4 * V + 9] = 60; l[4 * V + 11] = 60;  // row 4: a tie inside one float4, lowest wins
    l[5 * V + 3000 % V] = 70; l[5 * V + 1030 % V] = 70;          // row 5: a tie between two threads, lowest wins
    int res[6] = {9, 9, 9, 9, 9, 9};
    launch_argmax(nullptr, l.data(), 6, V, res);
    check_eq("argmax tie" + at, res[0], 5);
    check_eq("argmax last" + at, res[1], V - 1);
    check_eq("argmax -inf among NaN" + at, res[2], 77);
    check_eq("argmax all NaN" + at, res[3], -1);
    check_eq("argmax tie inside a float4" + at, res[4], 9);
    check_eq("argmax tie across threads" + at, res[5], std::min(3000 % V, 1030 % V));
  }
}

// Core's sampleFromLogits, with sorting (a different algorithm from the kernel's searches).
static int reference_sample(const std::vector<float>& logits, const SampleArgs& a, const std::vector<int>& ids, const std::vector<int>& counts) {
  const int n = static_cast<int>(logits.size());
  std::vector<double> l(logits.begin(), logits.end());
  for (size_t j = 0; j < ids.size(); j++) {
    double v = l[ids[j]];
    if (a.repetition_penalty != 1) v = v > 0 ? v / a.repetition_penalty : v * a.repetition_penalty;
    l[ids[j]] = v - (a.presence_penalty + a.frequency_penalty * counts[j]);
  }
  auto argmax = [&] {
    int best = -1;
    double bv = -INFINITY;
    for (int i = 0; i < n; i++)
      if (l[i] > bv || (best < 0 && l[i] == -INFINITY)) best = i, bv = l[i];
    return best;
  };
  if (a.temperature == 0) return argmax();
  double mx = -INFINITY;
  for (double v : l) if (v > mx) mx = v;
  std::vector<double> p(n);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += (p[i] = std::isnan(l[i]) ? 0 : std::exp((l[i] - mx) / a.temperature));
  for (auto& v : p) v /= sum;
  std::vector<char> keep(n);
  for (int i = 0; i < n; i++) keep[i] = p[i] > 0;
  if (a.top_k > 0 && a.top_k < n) {
    std::vector<double> kept;
    for (int i = 0; i < n; i++) if (keep[i]) kept.push_back(p[i]);
    if (static_cast<int>(kept.size()) > a.top_k) {
      std::sort(kept.begin(), kept.end(), std::greater<double>());
      for (int i = 0; i < n; i++) if (keep[i] && p[i] < kept[a.top_k - 1]) keep[i] = 0;
    }
  }
  if (a.top_p < 1) {
    double total = 0;
    std::vector<int> order;
    for (int i = 0; i < n; i++) if (keep[i]) total += p[i], order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return p[x] > p[y]; });
    double before = 0;
    for (size_t j = 0; j < order.size(); j++) {
      if (j > 0 && before / total >= a.top_p) keep[order[j]] = 0;
      before += p[order[j]];
    }
  }
  if (a.min_p > 0) {
    double top = 0;
    for (int i = 0; i < n; i++) if (keep[i]) top = std::max(top, p[i]);
    for (int i = 0; i < n; i++) if (keep[i] && p[i] < a.min_p * top) keep[i] = 0;
  }
  double total = 0;
  int last = -1;
  for (int i = 0; i < n; i++) if (keep[i]) total += p[i], last = i;
  double cum = 0;
  for (int i = 0; i < n; i++) {
    if (!keep[i]) continue;
    cum += p[i];
    if (cum > a.uniform * total) return i;
  }
  return last;
}

static void test_sample() {
  std::vector<int> ids = {3, 17, 1400}, counts = {1, 4, 2};
  int mismatches = 0, cases = 0, boundary = 0;
  // 2 chunks of the vocabulary (the second partial), then 5.
  for (int V : {1500, 4500})
  for (int tied = 0; tied < 2; tied++) {
    std::vector<char> scratch(sample_scratch_bytes(V));
    std::vector<float> l(V);
    for (auto& v : l) v = tied ? static_cast<float>(rng() % 5) : normal(2.f);
    const SampleArgs variants[] = {
        {0, 0, 1, 0, 1, 0, 0, 0, 0}, {0, 0, 1, 0, 1.3, 0, 0, 0, 0}, {1, 0, 1, 0, 1, 0, 0, 0, 0}, {0.7, 0, 1, 0, 1, 0, 0, 0, 0},
        {1.3, 20, 1, 0, 1, 0, 0, 0, 0}, {1, 0, 0.9, 0, 1, 0, 0, 0, 0}, {1, 50, 0.5, 0, 1, 0, 0, 0, 0}, {1, 0, 1, 0.1, 1, 0, 0, 0, 0},
        {1, 1, 1, 0, 1, 0, 0, 0, 0}, {1, 0, 1, 0, 1, 1.5, 0.5, 0, 0}, {0.5, 40, 0.95, 0.05, 1.1, 0, 0, 0, 0}, {1, 0, 0.3, 0, 1, 0, 0, 0, 0},
        // Top-k at many depths: with 5 tied values (about V / 5 tokens each) these fall inside tie groups.
        {0.8, 7, 1, 0, 1, 0, 0, 0, 0}, {0.8, 300, 1, 0, 1, 0, 0, 0, 0}, {1, 700, 1, 0, 1, 0, 0, 0, 0}, {1.2, 1499, 1, 0, 1, 0, 0, 0, 0},
        // Top-p alone on peaked and nearly whole distributions (the candidate floor drops most tokens).
        {0.5, 0, 0.95, 0, 1, 0, 0, 0, 0}, {0.3, 0, 0.6, 0, 1, 0, 0, 0, 0}, {1, 0, 0.999, 0, 1, 0, 0, 0, 0}, {2, 0, 0.99, 0, 1, 0, 0, 0, 0}};
    for (SampleArgs a : variants) {
      for (int i = 0; i < (V > 2000 ? 1 : 2); i++) {
        a.uniform = std::uniform_real_distribution<double>(0, 1)(rng);
        int got = -2;
        launch_sample(nullptr, l.data(), V, ids.data(), counts.data(), 3, a, nullptr, scratch.data(), &got);
        const int want = reference_sample(l, a, ids, counts);
        cases++;
        if (got == want) continue;
        // Exactly at top-p's boundary (tied logits: top-k keeps a group of equal probabilities and top-p
        // wants exactly half of it) whether one more tied token stays depends on the last bit of the
        // kept total, which the kernel sums in a tree and the reference one by one: the draw may then
        // be either reference's with top_p a hair above or below. Elsewhere all three agree.
        SampleArgs lo = a, hi = a;
        lo.top_p = a.top_p * (1 - 1e-12);
        hi.top_p = a.top_p * (1 + 1e-12);
        const int want_lo = a.top_p < 1 ? reference_sample(l, lo, ids, counts) : want, want_hi = a.top_p < 1 ? reference_sample(l, hi, ids, counts) : want;
        if (got == want_lo || got == want_hi) {
          boundary++;
          std::printf("note sample tied %d T %.2f k %d p %.2f u %.4f: got %d, the reference's %d with top_p exactly, %d / %d a hair below / above\n", tied,
                      a.temperature, a.top_k, a.top_p, a.uniform, got, want, want_lo, want_hi);
        } else {
          mismatches++;
          std::printf("FAIL sample tied %d T %.2f k %d p %.2f minp %.2f u %.4f: got %d, want %d\n", tied, a.temperature, a.top_k, a.top_p, a.min_p, a.uniform, got, want);
        }
      }
    }
  }
  // Penalties reach the tokens at chunk edges: the largest logits sit there, the history penalizes them,
  // and greedy or a draw must land on the one token left standing.
  {
    const int V = 4500;
    std::vector<float> l(V, -5.f);
    std::vector<int> edge_ids = {0, 1023, 1024, 2047, 2048, 3071, 3072, 4095, 4096, V - 1}, ones(edge_ids.size(), 1);
    for (size_t i = 0; i < edge_ids.size(); i++) l[edge_ids[i]] = 20.f - 0.1f * i;
    l[777] = 5.f;
    std::vector<char> scratch(sample_scratch_bytes(V));
    for (SampleArgs a : {SampleArgs{0, 0, 1, 0, 1, 40, 0, 0.5, 0}, SampleArgs{0.5, 5, 1, 0, 1, 40, 0, 0.99, 0}, SampleArgs{0.5, 0, 1, 0, 1, 40, 0, 0.99, 1}}) {
      int got = -2;
      launch_sample(nullptr, l.data(), V, edge_ids.data(), ones.data(), static_cast<int>(edge_ids.size()), a, nullptr, scratch.data(), &got);
      cases++;
      if (got != 777 || reference_sample(l, a, edge_ids, ones) != 777) {
        mismatches++;
        std::printf("FAIL sample with penalties at chunk edges (T %.1f, k %d, serial %d): got %d, want 777\n", a.temperature, a.top_k, a.serial_history, got);
      }
    }
  }
  if (mismatches) failures++;
  std::printf("%s sample: %d of %d cases match the sort-based reference (%d of them only with top_p a hair off, at an exact tie boundary)\n",
              mismatches ? "FAIL" : "ok  ", cases - mismatches, cases, boundary);
}

// The previous draw's token, read from the device (here from the very int the kernel then writes, as the
// backend passes it), counts as one more occurrence: in the first history entry with its id, or as a new
// last entry (core's withOccurrence). Distinct ids (applied in parallel) and repeated ids (in order).
static void test_sample_previous() {
  const int V = 1500;
  struct History {
    std::vector<int> ids, counts;
    int serial;
  };
  const History histories[] = {{{3, 17, 1400}, {1, 4, 2}, 0}, {{17, 5, 17, 1400}, {2, 1, 3, 1}, 1}, {{}, {}, 0}};
  const SampleArgs variants[] = {{0, 0, 1, 0, 1.3, 0.4, 0.7, 0, 0}, {0.8, 40, 0.9, 0, 1.2, 0.5, 0.3, 0, 0}, {1, 0, 1, 0.02, 1.5, 0, 1, 0, 0},
                                 {0, 0, 1, 0, 1, 0, 0.25, 0, 0}};
  std::vector<char> scratch(sample_scratch_bytes(V));
  int bad = 0, cases = 0;
  for (const History& h : histories) {
    for (int prev : {17, 42, 1400, -1}) {
      for (SampleArgs a : variants) {
        a.serial_history = h.serial;
        a.uniform = std::uniform_real_distribution<double>(0, 1)(rng);
        std::vector<float> l(V);
        for (auto& v : l) v = normal(1.f);
        // The candidates close together, so one occurrence more or less moves the draw.
        l[17] = 4.f, l[42] = 4.1f, l[1400] = 3.9f, l[5] = 3.8f;
        std::vector<int> ids = h.ids, counts = h.counts;
        if (prev >= 0) {
          auto at = std::find(ids.begin(), ids.end(), prev);
          if (at != ids.end()) counts[at - ids.begin()]++;
          else ids.push_back(prev), counts.push_back(1);
        }
        const int want = reference_sample(l, a, ids, counts);
        int token = prev;
        launch_sample(nullptr, l.data(), V, h.ids.data(), h.counts.data(), static_cast<int>(h.ids.size()), a, prev >= 0 ? &token : nullptr,
                      scratch.data(), &token);
        cases++;
        if (token != want) {
          bad++;
          std::printf("FAIL sample after %d (history of %zu, serial %d) T %.2f: got %d, want %d\n", prev, h.ids.size(), h.serial, a.temperature, token, want);
        }
      }
    }
  }
  // Greedy, where the previous token's count decides: its penalized logit with the count it should get
  // lies 0.05 above or below the runner-up's (99), and one occurrence more or less, or the extra one in
  // another entry of a repeated id, moves it by at least 0.25.
  const SampleArgs decisive = {0, 0, 1, 0, 2, 0.3, 1, 0, 0};
  for (const History& h : histories) {
    for (int prev : {17, 42, 1400, 5}) {
      std::vector<int> ids = h.ids, counts = h.counts;
      auto at = std::find(ids.begin(), ids.end(), prev);
      if (at != ids.end()) counts[at - ids.begin()]++;
      else ids.push_back(prev), counts.push_back(1);
      double v = 10;
      for (size_t j = 0; j < ids.size(); j++)
        if (ids[j] == prev) v = (v > 0 ? v / decisive.repetition_penalty : v * decisive.repetition_penalty) - decisive.presence_penalty - decisive.frequency_penalty * counts[j];
      for (double side : {-0.05, 0.05}) {
        std::vector<float> l(V, -5.f);
        l[prev] = 10.f;
        l[99] = static_cast<float>(v + side);
        const int want = side > 0 ? 99 : prev;
        SampleArgs a = decisive;
        a.serial_history = h.serial;
        int token = prev;
        launch_sample(nullptr, l.data(), V, h.ids.data(), h.counts.data(), static_cast<int>(h.ids.size()), a, &token, scratch.data(), &token);
        cases++;
        if (token != want || reference_sample(l, a, ids, counts) != want) {
          bad++;
          std::printf("FAIL greedy sample after %d (history of %zu, serial %d), runner-up %+.2f: got %d, want %d\n", prev, h.ids.size(), h.serial, side, token, want);
        }
      }
    }
  }
  if (bad) failures++;
  std::printf("%s sample with the previous device token: %d of %d cases match\n", bad ? "FAIL" : "ok  ", cases - bad, cases);
}

int main(int argc, char** argv) {
  // Optional argument: run only the groups whose name contains it (embed, rmsnorm, matmul, pipelined
  // (the pipelined GEMM's own test, also part of matmul), rope (with the GEMV's rope epilogue, also part
  // of matmul), kv (f16 caches' rounding, also part of rope and attention), attention, elementwise, sample).
  const std::string only = argc > 1 ? argv[1] : "";
  setvbuf(stdout, nullptr, _IOLBF, 0);  // each check's line as it is made, also into a pipe
  std::signal(SIGSEGV, on_segv);
  std::signal(SIGBUS, on_segv);
  auto want = [&](const char* name) { return only.empty() || std::string(name).find(only) != std::string::npos; };
  if (want("embed")) test_embed();
  if (want("rmsnorm")) test_rmsnorm();
  if (want("matmul")) test_matmul();
  if (want("matmul")) test_gemm_large_activations();
  if (want("matmul")) test_gemm_rounded();
  if (want("matmul pipelined")) test_gemm_pipelined();
  if (want("matmul pipelined split")) test_gemm_split_k();
  if (want("matmul")) test_gemv_epilogues();
  // On 1, 4 and 132 multiprocessors the RMSNorm prologue's warps take 4, 2 and 1 rows (q/k/v test).
  if (want("matmul")) test_gemv_rows_per_warp();
  for (int sms : {1, 4, 132}) {
    ::emu::multiprocessors = sms;
    if (want("matmul")) test_gemv_norm_prologue(sms);
    if (want("matmul rope")) test_gemv_rope(sms);
  }
  ::emu::multiprocessors = 1;
  if (want("rope")) test_rope();
  if (want("rope")) test_rope_qk();
  if (want("kv rope attention")) test_kv_f16_rounding();
  if (want("attention")) test_attention();
  if (want("elementwise")) test_elementwise_and_argmax();
  if (want("sample")) test_sample();
  if (want("sample")) test_sample_previous();
  std::printf("%s\n", failures ? "emulated kernels: FAILED" : "emulated kernels: all ok");
  return failures ? 1 : 0;
}
