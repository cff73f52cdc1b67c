// Node-API entry point of the CUDA backend.
#include <napi.h>
#include "probe.h"

static Napi::Value Probe(const Napi::CallbackInfo& info) {
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

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  return exports;
}

NODE_API_MODULE(qwen2_cuda, Init)
