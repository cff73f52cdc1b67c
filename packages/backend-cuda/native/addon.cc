// Node-API entry point of the CUDA backend. Functions take plain numbers (device pointers travel as
// doubles: 48-bit addresses are exact) so that enqueueing an op costs one cheap call. Every CUDA failure
// becomes a JS Error whose `code` is the CUDA error name (for example cudaErrorInsufficientDriver);
// allocation failures also carry the requested and free sizes.
#include <napi.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include "context.h"
#include "kernels.h"
#include "probe.h"

// Declared in kernels.h; read by the launches (common.cuh).
bool g_programmatic_launch = false;

namespace {

std::vector<Context*> g_contexts;

// Throws a JS Error for a CUDA error and returns false, so callers write `if (!ok(...)) return ...`.
bool ok(Napi::Env env, cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  cudaGetLastError();  // clear non-sticky errors so the next call starts clean
  std::string msg = std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, cudaGetErrorName(err)));
  e.Set("cudaError", Napi::Number::New(env, static_cast<double>(err)));
  e.ThrowAsJavaScriptException();
  return false;
}

void throwType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }

// Reads argument i as a number; throws a TypeError (returning false) when it is not one.
bool nums(const Napi::CallbackInfo& info, size_t count, double* out) {
  if (info.Length() < count) {
    throwType(info.Env(), "qwen2_cuda: expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    if (!info[i].IsNumber()) {
      throwType(info.Env(), "qwen2_cuda: argument " + std::to_string(i) + " must be a number");
      return false;
    }
    out[i] = info[i].As<Napi::Number>().DoubleValue();
  }
  return true;
}

template <typename T>
T* ptr(double v) { return reinterpret_cast<T*>(static_cast<uintptr_t>(v)); }
double fromPtr(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }

Context* ctxOf(Napi::Env env, double id) {
  size_t i = static_cast<size_t>(id);
  if (id < 0 || i >= g_contexts.size() || !g_contexts[i]) {
    Napi::Error::New(env, "qwen2_cuda: unknown or destroyed CUDA context").ThrowAsJavaScriptException();
    return nullptr;
  }
  Context* c = g_contexts[i];
  g_programmatic_launch = c->programmatic_launch;
  int current = -1;
  cudaGetDevice(&current);
  if (current != c->device) cudaSetDevice(c->device);
  return c;
}

// cudaMalloc that reports out-of-memory with the requested, free and total sizes.
bool deviceAlloc(Napi::Env env, size_t bytes, void** out) {
  cudaError_t err = cudaMalloc(out, bytes == 0 ? 1 : bytes);
  if (err == cudaSuccess) return true;
  cudaGetLastError();
  if (err == cudaErrorMemoryAllocation) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    char msg[256];
    std::snprintf(msg, sizeof msg, "cudaErrorMemoryAllocation: out of device memory allocating %zu bytes (%zu bytes free of %zu)",
                  bytes, free_b, total_b);
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("code", Napi::String::New(env, "cudaErrorMemoryAllocation"));
    e.Set("cudaError", Napi::Number::New(env, static_cast<double>(err)));
    e.Set("requestedBytes", Napi::Number::New(env, static_cast<double>(bytes)));
    e.Set("freeBytes", Napi::Number::New(env, static_cast<double>(free_b)));
    e.Set("totalBytes", Napi::Number::New(env, static_cast<double>(total_b)));
    e.ThrowAsJavaScriptException();
    return false;
  }
  return ok(env, err, "cudaMalloc");
}

// Grows a scratch buffer to at least `bytes`. The old buffer is retired, not freed: a graph captured
// earlier may still point at it.
bool ensure(Napi::Env env, Context* c, DeviceBuffer& b, size_t bytes) {
  if (b.bytes >= bytes) return true;
  if (c->capturing) {
    Napi::Error::New(env, "qwen2_cuda: a scratch buffer must grow while a CUDA graph is being captured").ThrowAsJavaScriptException();
    return false;
  }
  void* p = nullptr;
  if (!deviceAlloc(env, bytes, &p)) return false;
  if (b.ptr) c->retired.push_back(b);
  b.ptr = p;
  b.bytes = bytes;
  return true;
}

PosArg posArg(Context* c, double usePassPos, double value) {
  return PosArg{usePassPos != 0 ? c->pass_pos : nullptr, static_cast<int>(value)};
}

DevWeight weightAt(const double* p) {
  return DevWeight{ptr<const void>(p[0]), ptr<const uint16_t>(p[1]), static_cast<int>(p[2]), static_cast<int>(p[3]), static_cast<int>(p[4])};
}

// ---- lifetime ---------------------------------------------------------------------------------------

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ProbeResult r = probe_devices();
  Napi::Object o = Napi::Object::New(env);
  o.Set("runtimeVersion", r.runtime_version);
  o.Set("driverVersion", r.driver_version);
  o.Set("deviceCount", r.device_count);
  o.Set("error", r.error);
  o.Set("errorName", r.error_name);
  o.Set("errorString", r.error_string);
  return o;
}

// init(device) -> { ctx, name, totalBytes, freeBytes, computeCapability, smCount }
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a)) return env.Undefined();
  int count = 0;
  if (!ok(env, cudaGetDeviceCount(&count), "cudaGetDeviceCount")) return env.Undefined();
  int device = static_cast<int>(a[0]);
  if (device < 0 || device >= count) {
    Napi::Error e = Napi::Error::New(env, "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " device(s) visible)");
    e.Set("code", Napi::String::New(env, "cudaErrorInvalidDevice"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!ok(env, cudaSetDevice(device), "cudaSetDevice")) return env.Undefined();
  cudaDeviceProp prop;
  if (!ok(env, cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) return env.Undefined();
  auto* c = new Context();
  c->device = device;
  c->compute_major = prop.major;
  if (!ok(env, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate")) {
    delete c;
    return env.Undefined();
  }
  void* pos = nullptr;
  if (!deviceAlloc(env, sizeof(int), &pos)) {
    cudaStreamDestroy(c->stream);
    delete c;
    return env.Undefined();
  }
  c->pass_pos = static_cast<int*>(pos);
  // On our stream: a non-blocking stream does not order itself after the legacy stream.
  cudaMemsetAsync(c->pass_pos, 0, sizeof(int), c->stream);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  g_contexts.push_back(c);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ctx", static_cast<double>(g_contexts.size() - 1));
  o.Set("name", prop.name);
  o.Set("totalBytes", static_cast<double>(total_b));
  o.Set("freeBytes", static_cast<double>(free_b));
  o.Set("computeCapability", prop.major * 10 + prop.minor);
  o.Set("smCount", prop.multiProcessorCount);
  return o;
}

void freeBuffer(DeviceBuffer& b) {
  if (b.ptr) cudaFree(b.ptr);
  b = DeviceBuffer{};
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  cudaError_t err = cudaStreamSynchronize(c->stream);
  for (auto g : c->graphs) if (g) cudaGraphExecDestroy(g);
  freeBuffer(c->attention_scratch);
  freeBuffer(c->attention_counters);
  freeBuffer(c->sample_scratch);
  freeBuffer(c->gemm_scratch);
  freeBuffer(c->history);
  freeBuffer(c->tokens);
  if (c->token_host) cudaFreeHost(c->token_host);
  if (c->history_host) cudaFreeHost(c->history_host);
  for (auto e : c->token_events) if (e) cudaEventDestroy(e);
  for (auto& b : c->retired) freeBuffer(b);
  cudaFree(c->pass_pos);
  cudaStreamDestroy(c->stream);
  g_contexts[static_cast<size_t>(a[0])] = nullptr;
  delete c;
  ok(env, err, "dispose (work still in flight failed)");
  return env.Undefined();
}

// ---- memory -----------------------------------------------------------------------------------------

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  if (!ctxOf(env, a[0])) return env.Undefined();
  void* p = nullptr;
  if (!deviceAlloc(env, static_cast<size_t>(a[1]), &p)) return env.Undefined();
  return Napi::Number::New(env, fromPtr(p));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  // Work already enqueued may still read the buffer: cudaFree waits for the device implicitly only for
  // the legacy stream, so wait for ours first.
  if (!ok(env, cudaStreamSynchronize(c->stream), "free (work in flight failed)")) return env.Undefined();
  ok(env, cudaFree(ptr<void>(a[1])), "cudaFree");
  return env.Undefined();
}

Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a) || !ctxOf(env, a[0])) return env.Undefined();
  size_t free_b = 0, total_b = 0;
  if (!ok(env, cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo")) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("freeBytes", static_cast<double>(free_b));
  o.Set("totalBytes", static_cast<double>(total_b));
  return o;
}

// upload(ctx, devicePtr, byteOffset, typedArray): enqueued; pageable sources are staged before the call
// returns, so the caller may reuse or drop the array at once.
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[3];
  if (!nums(info, 3, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  if (info.Length() < 4 || !info[3].IsTypedArray()) {
    throwType(env, "qwen2_cuda.upload: argument 3 must be a typed array");
    return env.Undefined();
  }
  Napi::TypedArray t = info[3].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  char* dst = ptr<char>(a[1]) + static_cast<size_t>(a[2]);
  ok(env, cudaMemcpyAsync(dst, src, t.ByteLength(), cudaMemcpyHostToDevice, c->stream), "upload (cudaMemcpyAsync)");
  return env.Undefined();
}

// download(ctx, devicePtr, bytes) -> ArrayBuffer, after all enqueued work.
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[3];
  if (!nums(info, 3, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  size_t bytes = static_cast<size_t>(a[2]);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (!ok(env, cudaMemcpyAsync(buf.Data(), ptr<void>(a[1]), bytes, cudaMemcpyDeviceToHost, c->stream), "read (cudaMemcpyAsync)")) return env.Undefined();
  if (!ok(env, cudaStreamSynchronize(c->stream), "read (cudaStreamSynchronize)")) return env.Undefined();
  return buf;
}

Napi::Value Sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
  return env.Undefined();
}

// ---- ops --------------------------------------------------------------------------------------------

Napi::Value SetPassPos(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_set_int(c->stream, c->pass_pos, static_cast<int>(a[1])), "setPassPos");
  return env.Undefined();
}

// setProgrammaticLaunch(ctx, on) -> whether launches now use programmatic dependent launch (only on
// compute capability 9.0 or later). Graphs captured before keep their launches: the host drops them.
Napi::Value SetProgrammaticLaunch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  c->programmatic_launch = a[1] != 0 && c->compute_major >= 9;
  return Napi::Boolean::New(env, c->programmatic_launch);
}

// embed(ctx, table(5), idsPtr, tokens, out)
Napi::Value Embed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[9];
  if (!nums(info, 9, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_embed(c->stream, weightAt(a + 1), ptr<const int>(a[6]), static_cast<int>(a[7]), ptr<float>(a[8])), "embed");
  return env.Undefined();
}

// rmsNorm(ctx, x, weight(5), eps, out, rows, cols)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[11];
  if (!nums(info, 11, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_rmsnorm(c->stream, ptr<const float>(a[1]), weightAt(a + 2), static_cast<float>(a[7]), ptr<float>(a[8]), static_cast<int>(a[9]), static_cast<int>(a[10])), "rmsNorm");
  return env.Undefined();
}

// An optional Float64Array argument of `count` numbers: *out stays null when it is absent or undefined;
// false (with a TypeError thrown) when it is something else. `count_of` (optional) gives the count from
// the array's first number instead (the epilogue's length depends on its kind).
bool optionalF64(const Napi::CallbackInfo& info, size_t index, size_t count, const char* what, const double** out,
                 size_t (*count_of)(double first) = nullptr) {
  if (info.Length() <= index || info[index].IsUndefined()) return true;
  const bool f64 = info[index].IsTypedArray() && info[index].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array;
  const size_t n = f64 ? info[index].As<Napi::Float64Array>().ElementLength() : 0;
  if (f64 && count_of && n > 0) count = count_of(info[index].As<Napi::Float64Array>().Data()[0]);
  if (!f64 || n != count) {
    throwType(info.Env(), "qwen2_cuda.matmul: argument " + std::to_string(index) + " must be a Float64Array of " + std::to_string(count) + " " + what);
    return false;
  }
  *out = info[index].As<Napi::Float64Array>().Data();
  return true;
}

// Numbers of a matmul epilogue of kind `kind`: the rope epilogue's 11, or kind, residual, out.
size_t epilogueLength(double kind) { return kind == static_cast<double>(EPI_ROPE) ? 11 : 3; }

// matmul(ctx, x, tokens, K, Float64Array of count * 11: weight(5), bias(5, format -1 = none), out[,
//   gemmFlags (GEMM_ROUND_X16 | GEMM_ONE_K_RANGE)[,
//   Float64Array epilogue: kind (MatmulEpilogueKind), residual, out[, with EPI_ROPE: headDim, usePassPos, pos,
//     theta, kCache, vCache, maxTokens, kvDtype (KVDtypeCode)] | undefined[,
//   Float64Array prologue: RMSNorm weight(5), eps, out]]])
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[4];
  if (!nums(info, 4, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  if (info.Length() < 5 || !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throwType(env, "qwen2_cuda.matmul: argument 4 must be a Float64Array");
    return env.Undefined();
  }
  Napi::Float64Array p = info[4].As<Napi::Float64Array>();
  size_t count = p.ElementLength() / 11;
  if (count < 1 || count > MATMUL_MAX_FUSED || p.ElementLength() % 11 != 0) {
    throwType(env, "qwen2_cuda.matmul: 1 to " + std::to_string(MATMUL_MAX_FUSED) + " weights of 11 numbers each");
    return env.Undefined();
  }
  DevWeight w[MATMUL_MAX_FUSED], b[MATMUL_MAX_FUSED];
  float* outs[MATMUL_MAX_FUSED];
  for (size_t i = 0; i < count; i++) {
    const double* q = p.Data() + i * 11;
    w[i] = weightAt(q);
    b[i] = weightAt(q + 5);
    outs[i] = ptr<float>(q[10]);
  }
  // GEMM_ROUND_X16 | GEMM_ONE_K_RANGE (kernels.h); absent: 0.
  const double flags = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : 0;
  if (!(flags == 0 || flags == GEMM_ROUND_X16 || flags == GEMM_ONE_K_RANGE || flags == (GEMM_ROUND_X16 | GEMM_ONE_K_RANGE))) {
    throwType(env, "qwen2_cuda: matmul's GEMM flags (argument 5) must be 0 to 3, got " + std::to_string(flags));
    return env.Undefined();
  }
  const int gemm_flags = static_cast<int>(flags);
  const double* e = nullptr;
  const double* q = nullptr;
  if (!optionalF64(info, 6, 3, "(epilogue kind, residual, out[, for the rope: head dim, use pass pos, pos, theta, k cache, v cache, max tokens, kv dtype])",
                   &e, epilogueLength) ||
      !optionalF64(info, 7, 7, "(RMSNorm weight, eps, out)", &q))
    return env.Undefined();
  MatmulEpilogue epi = e ? MatmulEpilogue{static_cast<int>(e[0]), ptr<const float>(e[1]), ptr<float>(e[2]), NO_EPILOGUE.rope} : NO_EPILOGUE;
  if (epi.kind == EPI_ROPE)
    epi.rope = RopeEpilogue{static_cast<int>(e[3]), posArg(c, e[4], e[5]), static_cast<float>(e[6]), ptr<void>(e[7]), ptr<void>(e[8]), static_cast<int>(e[9]),
                            static_cast<int>(e[10])};
  const MatmulPrologue pro = q ? MatmulPrologue{weightAt(q), static_cast<float>(q[5]), ptr<float>(q[6])} : NO_PROLOGUE;
  const int tokens = static_cast<int>(a[2]), K = static_cast<int>(a[3]);
  if (tokens > GEMV_MAX_TOKENS) {
    // Sized for the token count rounded up to a power of two as well, so that the scratch grows a few
    // times at most and the buffers it outgrows (kept until dispose, see ensure) add up to less than its
    // size; and for the exact count, whose split-K plan may differ.
    int rows = 16;
    while (rows < tokens && rows < (1 << 30)) rows *= 2;
    const int n = static_cast<int>(count);
    const size_t bytes = std::max(gemm_scratch_bytes(rows, K, w, n, gemm_flags), gemm_scratch_bytes(tokens, K, w, n, gemm_flags));
    if (!ensure(env, c, c->gemm_scratch, bytes)) return env.Undefined();
  }
  ok(env, launch_matmul(c->stream, ptr<const float>(a[1]), tokens, K, w, b, outs, static_cast<int>(count), gemm_flags, epi, pro, c->gemm_scratch.ptr),
     "matmul");
  return env.Undefined();
}

// rope(ctx, x, tokens, heads, headDim, usePassPos, pos, theta)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[8];
  if (!nums(info, 8, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_rope(c->stream, ptr<float>(a[1]), (int)a[2], (int)a[3], (int)a[4], posArg(c, a[5], a[6]), static_cast<float>(a[7])), "rope");
  return env.Undefined();
}

// ropeQK(ctx, q, qHeads, k, kHeads, tokens, headDim, usePassPos, pos, theta, v, kCache, vCache, maxTokens, kvDtype):
// rope of q and k in one launch, and with kCache != 0 the KV write of the rotated k and of v (caches of
// kvDtype, a KVDtypeCode).
Napi::Value RopeQK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[15];
  if (!nums(info, 15, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c)
    ok(env,
       launch_rope_qk(c->stream, ptr<float>(a[1]), (int)a[2], ptr<float>(a[3]), (int)a[4], (int)a[5], (int)a[6], posArg(c, a[7], a[8]),
                      static_cast<float>(a[9]), ptr<const float>(a[10]), ptr<void>(a[11]), ptr<void>(a[12]), (int)a[14], (int)a[13]),
       "ropeQK");
  return env.Undefined();
}

// writeKV(ctx, kCache, vCache, k, v, tokens, kvHeads, headDim, maxTokens, usePassPos, pos, kvDtype): caches of kvDtype (KVDtypeCode)
Napi::Value WriteKV(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[12];
  if (!nums(info, 12, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c)
    ok(env,
       launch_write_kv(c->stream, ptr<void>(a[1]), ptr<void>(a[2]), (int)a[11], ptr<const float>(a[3]), ptr<const float>(a[4]), (int)a[5], (int)a[6],
                       (int)a[7], (int)a[8], posArg(c, a[9], a[10])),
       "writeKV");
  return env.Undefined();
}

// attention(ctx, q, kCache, vCache, out, tokens, heads, kvHeads, headDim, maxTokens, usePassPos, pos, scale, window, keyCapacity,
//           sixteenBit, kvDtype): sixteenBit 1 lets a prefill pass take the bf16 tensor-core kernel; caches of kvDtype (KVDtypeCode)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[17];
  if (!nums(info, 17, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  int tokens = (int)a[5], heads = (int)a[6], head_dim = (int)a[8];
  AttentionPlan plan = plan_attention(tokens, heads, (int)a[7], head_dim, (int)a[14], a[15] != 0);
  if (!ensure(env, c, c->attention_scratch, plan.scratch_floats * sizeof(float))) return env.Undefined();
  // The merge counters start at zero (the kernels leave them so); a new buffer is cleared once, in stream order.
  const size_t counter_bytes = attention_counter_ints(tokens, (int)a[7]) * sizeof(int);
  void* old_counters = c->attention_counters.ptr;
  if (!ensure(env, c, c->attention_counters, counter_bytes)) return env.Undefined();
  if (c->attention_counters.ptr != old_counters && !ok(env, cudaMemsetAsync(c->attention_counters.ptr, 0, c->attention_counters.bytes, c->stream), "cudaMemsetAsync"))
    return env.Undefined();
  ok(env, launch_attention(c->stream, ptr<const float>(a[1]), ptr<const void>(a[2]), ptr<const void>(a[3]), (int)a[16], tokens, heads, (int)a[7], head_dim, (int)a[9],
                           posArg(c, a[10], a[11]), static_cast<float>(a[12]), (int)a[13], plan, static_cast<float*>(c->attention_scratch.ptr),
                           static_cast<int*>(c->attention_counters.ptr), ptr<float>(a[4])),
     "attention");
  return env.Undefined();
}

// swiglu / add (ctx, a, b, out, n)
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[5];
  if (!nums(info, 5, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_swiglu(c->stream, ptr<const float>(a[1]), ptr<const float>(a[2]), ptr<float>(a[3]), static_cast<size_t>(a[4])), "swiglu");
  return env.Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[5];
  if (!nums(info, 5, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, launch_add(c->stream, ptr<const float>(a[1]), ptr<const float>(a[2]), ptr<float>(a[3]), static_cast<size_t>(a[4])), "add");
  return env.Undefined();
}

// copy(ctx, src, dst, bytes): device to device, enqueued (capturable).
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[4];
  if (!nums(info, 4, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (c) ok(env, cudaMemcpyAsync(ptr<void>(a[2]), ptr<const void>(a[1]), static_cast<size_t>(a[3]), cudaMemcpyDeviceToDevice, c->stream), "copy");
  return env.Undefined();
}

// Makes the pinned readback ring hold `rows` ids per slot (keeping what its slots hold) and creates
// the slots' events.
bool ensureTokenRing(Napi::Env env, Context* c, int rows) {
  if (!c->token_events[0]) {
    for (auto& e : c->token_events) {
      if (!ok(env, cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate")) return false;
    }
  }
  if (rows <= c->token_rows) return true;
  // Copies into the old ring may be in flight: let them land before moving the slots.
  if (!ok(env, cudaStreamSynchronize(c->stream), "argmaxKeep (cudaStreamSynchronize)")) return false;
  void* p = nullptr;
  if (!ok(env, cudaMallocHost(&p, sizeof(int) * rows * Context::kTokenSlots), "cudaMallocHost")) return false;
  int* ring = static_cast<int*>(p);
  if (c->token_host) {
    for (int s = 0; s < Context::kTokenSlots; s++) std::memcpy(ring + s * rows, c->token_host + s * c->token_rows, sizeof(int) * c->token_rows);
    cudaFreeHost(c->token_host);
  }
  c->token_host = ring;
  c->token_rows = rows;
  return true;
}

// Ends a draw kept on the device: the id in the token buffer is copied to readback slot `slot` without
// waiting, and the slot's event marks the copy done (readKept waits for it).
bool keepTokens(Napi::Env env, Context* c, int rows, int slot, const char* what) {
  if (!ok(env, cudaMemcpyAsync(c->token_host + slot * c->token_rows, c->tokens.ptr, rows * sizeof(int), cudaMemcpyDeviceToHost, c->stream), what)) return false;
  return ok(env, cudaEventRecord(c->token_events[slot], c->stream), what);
}

// argmaxKeep(ctx, logits, rows, cols, slot) -> device address of the ids
// The greedy ids of each row go to the context's token buffer, where the next pass's embed can read
// them, and are copied to readback slot `slot` without waiting (readKept waits); -1 marks a row with
// no orderable value.
Napi::Value ArgmaxKeep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[5];
  if (!nums(info, 5, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  int rows = (int)a[2];
  int slot = (int)a[4];
  if (rows < 1 || slot < 0 || slot >= Context::kTokenSlots) {
    Napi::RangeError::New(env, "argmaxKeep: rows must be >= 1 and slot in 0.." + std::to_string(Context::kTokenSlots - 1)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!ensure(env, c, c->tokens, rows * sizeof(int)) || !ensureTokenRing(env, c, rows)) return env.Undefined();
  int* ids = static_cast<int*>(c->tokens.ptr);
  if (!ok(env, launch_argmax(c->stream, ptr<const float>(a[1]), rows, (int)a[3], ids), "argmax")) return env.Undefined();
  if (!keepTokens(env, c, rows, slot, "argmax (read back)")) return env.Undefined();
  return Napi::Number::New(env, fromPtr(ids));
}

// readKept(ctx, slot, rows) -> Int32Array: waits for slot `slot`'s copy (not for later work) and returns it.
Napi::Value ReadKept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[3];
  if (!nums(info, 3, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  int slot = (int)a[1];
  int rows = (int)a[2];
  if (slot < 0 || slot >= Context::kTokenSlots || rows < 1 || rows > c->token_rows) {
    Napi::RangeError::New(env, "readKept: no ids kept in slot " + std::to_string(slot) + " for " + std::to_string(rows) + " rows").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!ok(env, cudaEventSynchronize(c->token_events[slot]), "argmax (cudaEventSynchronize)")) return env.Undefined();
  Napi::Int32Array out = Napi::Int32Array::New(env, rows);
  std::memcpy(out.Data(), c->token_host + slot * c->token_rows, rows * sizeof(int));
  return out;
}

// Makes each readback slot's pinned staging hold `ints` history ints (ids then counts). The history goes
// up from pinned memory because a copy from pageable memory first waits for the stream, which would
// make the host wait for the pass recorded ahead. A slot's staging is rewritten only after its previous
// ids were read (backend.ts settles a slot before reusing it), so after that draw's upload finished.
bool ensureHistoryStaging(Napi::Env env, Context* c, size_t ints) {
  if (ints <= c->history_host_ints) return true;
  size_t grown = std::max<size_t>(ints, 2 * c->history_host_ints);
  // Uploads from the old staging may be in flight: let them land before freeing it.
  if (!ok(env, cudaStreamSynchronize(c->stream), "sampleKeep (cudaStreamSynchronize)")) return false;
  void* p = nullptr;
  if (!ok(env, cudaMallocHost(&p, sizeof(int) * grown * Context::kTokenSlots), "cudaMallocHost")) return false;
  if (c->history_host) cudaFreeHost(c->history_host);
  c->history_host = static_cast<int*>(p);
  c->history_host_ints = grown;
  return true;
}

// sampleKeep(ctx, logits, n, historyIds: Int32Array, historyCounts: Int32Array, params: Float64Array(9),
//   slot, countPrevious) -> device address of the id
// Draws one token into the context's token buffer (where the next pass's embed can read it) and starts
// its copy to readback slot `slot`, as argmaxKeep does. With `countPrevious`, the id the buffer holds
// (the latest argmaxKeep's or sampleKeep's) counts as one more occurrence in the history.
Napi::Value SampleKeep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[3];
  if (!nums(info, 3, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  if (info.Length() < 8 || !info[3].IsTypedArray() || !info[4].IsTypedArray() || !info[5].IsTypedArray() || !info[6].IsNumber() || !info[7].IsBoolean()) {
    throwType(env, "qwen2_cuda.sampleKeep: history ids, counts (Int32Array), params (Float64Array), slot (number) and countPrevious (boolean) expected");
    return env.Undefined();
  }
  Napi::Int32Array ids = info[3].As<Napi::Int32Array>();
  Napi::Int32Array counts = info[4].As<Napi::Int32Array>();
  Napi::Float64Array p = info[5].As<Napi::Float64Array>();
  const int slot = info[6].As<Napi::Number>().Int32Value();
  const bool count_previous = info[7].As<Napi::Boolean>().Value();
  if (ids.ElementLength() != counts.ElementLength() || p.ElementLength() != 9) {
    throwType(env, "qwen2_cuda.sampleKeep: history ids and counts must have equal lengths and params 9 numbers");
    return env.Undefined();
  }
  if (slot < 0 || slot >= Context::kTokenSlots) {
    Napi::RangeError::New(env, "sampleKeep: slot must be in 0.." + std::to_string(Context::kTokenSlots - 1)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (count_previous && c->tokens.bytes < sizeof(int)) {
    Napi::Error::New(env, "sampleKeep: no previous device token to count").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int n = (int)a[2];
  if (n < 1 || n > SAMPLE_MAX_VOCAB) {
    Napi::RangeError::New(env, "sample: " + std::to_string(n) + " logits; the device sampler takes 1 to " + std::to_string(SAMPLE_MAX_VOCAB)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  size_t h = ids.ElementLength();
  if (!ensure(env, c, c->sample_scratch, sample_scratch_bytes(n))) return env.Undefined();
  if (!ensure(env, c, c->history, (2 * h + 1) * sizeof(int))) return env.Undefined();
  if (!ensure(env, c, c->tokens, sizeof(int)) || !ensureTokenRing(env, c, 1)) return env.Undefined();
  int* hist = static_cast<int*>(c->history.ptr);
  if (h > 0) {
    if (!ensureHistoryStaging(env, c, 2 * h)) return env.Undefined();
    int* staged = c->history_host + slot * c->history_host_ints;
    std::memcpy(staged, ids.Data(), h * sizeof(int));
    std::memcpy(staged + h, counts.Data(), h * sizeof(int));
    if (!ok(env, cudaMemcpyAsync(hist, staged, 2 * h * sizeof(int), cudaMemcpyHostToDevice, c->stream), "sample (history upload)")) return env.Undefined();
  }
  const double* q = p.Data();
  SampleArgs s{q[0], static_cast<int>(q[1]), q[2], q[3], q[4], q[5], q[6], q[7], static_cast<int>(q[8])};
  int* out = static_cast<int*>(c->tokens.ptr);
  if (!ok(env, launch_sample(c->stream, ptr<const float>(a[1]), n, hist, hist + h, static_cast<int>(h), s, count_previous ? out : nullptr,
                             c->sample_scratch.ptr, out),
          "sample"))
    return env.Undefined();
  if (!keepTokens(env, c, 1, slot, "sample (read back)")) return env.Undefined();
  return Napi::Number::New(env, fromPtr(out));
}

// ---- CUDA graphs ------------------------------------------------------------------------------------

Napi::Value BeginCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  if (ok(env, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture")) c->capturing = true;
  return env.Undefined();
}

// endCapture(ctx) -> graph id. When `discard` (second argument) is true the capture is ended and thrown
// away (after an op failed mid-capture), returning -1.
Napi::Value EndCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[1];
  if (!nums(info, 1, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  bool discard = info.Length() > 1 && info[1].ToBoolean().Value();
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(c->stream, &graph);
  c->capturing = false;
  if (discard) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    return Napi::Number::New(env, -1);
  }
  if (!ok(env, err, "cudaStreamEndCapture")) return env.Undefined();
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (!ok(env, err, "cudaGraphInstantiate")) return env.Undefined();
  c->graphs.push_back(exec);
  return Napi::Number::New(env, static_cast<double>(c->graphs.size() - 1));
}

Napi::Value LaunchGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  size_t i = static_cast<size_t>(a[1]);
  if (a[1] < 0 || i >= c->graphs.size() || !c->graphs[i]) {
    Napi::Error::New(env, "qwen2_cuda: unknown CUDA graph").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ok(env, cudaGraphLaunch(c->graphs[i], c->stream), "cudaGraphLaunch");
  return env.Undefined();
}

Napi::Value DestroyGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[2];
  if (!nums(info, 2, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  size_t i = static_cast<size_t>(a[1]);
  if (a[1] >= 0 && i < c->graphs.size() && c->graphs[i]) {
    cudaStreamSynchronize(c->stream);
    cudaGraphExecDestroy(c->graphs[i]);
    c->graphs[i] = nullptr;
  }
  return env.Undefined();
}

// ---- benchmark --------------------------------------------------------------------------------------

// copyBandwidth(ctx, bytes, iterations) -> bytes moved per second (read + write), by CUDA events.
Napi::Value CopyBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a[3];
  if (!nums(info, 3, a)) return env.Undefined();
  Context* c = ctxOf(env, a[0]);
  if (!c) return env.Undefined();
  size_t bytes = static_cast<size_t>(a[1]) & ~static_cast<size_t>(15);
  int iters = static_cast<int>(a[2]);
  void *src = nullptr, *dst = nullptr;
  if (!deviceAlloc(env, bytes, &src)) return env.Undefined();
  if (!deviceAlloc(env, bytes, &dst)) {
    cudaFree(src);
    return env.Undefined();
  }
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  cudaMemsetAsync(src, 1, bytes, c->stream);
  cudaError_t err = launch_copy_bandwidth(c->stream, src, dst, bytes);  // warm-up
  cudaEventRecord(t0, c->stream);
  for (int i = 0; i < iters && err == cudaSuccess; i++) err = launch_copy_bandwidth(c->stream, src, dst, bytes);
  cudaEventRecord(t1, c->stream);
  if (err == cudaSuccess) err = cudaEventSynchronize(t1);
  float ms = 0;
  cudaEventElapsedTime(&ms, t0, t1);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  cudaFree(src);
  cudaFree(dst);
  if (!ok(env, err, "copyBandwidth")) return env.Undefined();
  return Napi::Number::New(env, 2.0 * bytes * iters / (ms / 1e3));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("destroy", Napi::Function::New(env, Destroy));
  exports.Set("setProgrammaticLaunch", Napi::Function::New(env, SetProgrammaticLaunch));
  exports.Set("malloc", Napi::Function::New(env, Malloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("memInfo", Napi::Function::New(env, MemInfo));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("sync", Napi::Function::New(env, Sync));
  exports.Set("setPassPos", Napi::Function::New(env, SetPassPos));
  exports.Set("embed", Napi::Function::New(env, Embed));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("ropeQK", Napi::Function::New(env, RopeQK));
  exports.Set("writeKV", Napi::Function::New(env, WriteKV));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("argmaxKeep", Napi::Function::New(env, ArgmaxKeep));
  exports.Set("readKept", Napi::Function::New(env, ReadKept));
  exports.Set("sampleKeep", Napi::Function::New(env, SampleKeep));
  exports.Set("beginCapture", Napi::Function::New(env, BeginCapture));
  exports.Set("endCapture", Napi::Function::New(env, EndCapture));
  exports.Set("launchGraph", Napi::Function::New(env, LaunchGraph));
  exports.Set("destroyGraph", Napi::Function::New(env, DestroyGraph));
  exports.Set("copyBandwidth", Napi::Function::New(env, CopyBandwidth));
  return exports;
}

}  // namespace

NODE_API_MODULE(qwen2_cuda, InitModule)
