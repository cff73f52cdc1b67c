// Per-device state of the addon: the stream every op is enqueued on, the pass position read by graph
// replays, growable scratch buffers and the instantiated CUDA graphs.
#pragma once
#include <cuda_runtime.h>
#include <string>
#include <vector>

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
};

struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  int* pass_pos = nullptr;           // start position of the current pass, on the device
  DeviceBuffer attention_scratch;    // flash-decoding partial results
  DeviceBuffer attention_counters;   // flash-decoding merge counters, zero between launches
  DeviceBuffer sample_scratch;       // the sampler's (sample_scratch_bytes)
  DeviceBuffer gemm_scratch;         // x in 16-bit parts for the prefill GEMM
  DeviceBuffer history;              // sampling history ids and counts
  DeviceBuffer tokens;               // ids of the latest argmaxKeep or sampleKeep, which the next pass may embed
  // The readback of those ids: kTokenSlots slots of token_rows ids in pinned host memory (so the copy
  // is asynchronous), each with the event that marks its copy done.
  static constexpr int kTokenSlots = 4;
  int* token_host = nullptr;
  int token_rows = 0;
  cudaEvent_t token_events[kTokenSlots] = {};
  // Pinned staging of each slot's sampling history upload: history_host_ints ints per slot.
  int* history_host = nullptr;
  size_t history_host_ints = 0;
  std::vector<DeviceBuffer> retired; // outgrown buffers a captured graph may still reference
  std::vector<cudaGraphExec_t> graphs;
  bool capturing = false;
  int compute_major = 0;
  bool programmatic_launch = false;  // asked for and supported (compute capability 9.0 or later)
};
