#!/usr/bin/env node
// The JavaScript cost of recording one decode step, with every GPU call stubbed out: core's graph, the
// backend's ops and fusions, uniform and bind-group bookkeeping, nothing of Dawn's. Runs anywhere (no
// adapter needed) on the built dist, at Qwen2-0.5B shapes (24 layers; weights are never read).
//
//   node scripts/host-cost.mjs [--format f16|q4_0] [--steps 3000]
//
// Dawn's own calls and the GPU come on top: scripts/bench.mjs measures the whole recording on a device.
const { MODELS, modelConfig, option: opt, uploadModel } = await import('./model-shapes.mjs');
const format = opt('format', 'f16');
const steps = Number(opt('steps', 3000));
const { WebGPUBackend } = await import('../dist/index.js');
const core = await import('@qwen2-ts/core');

const nop = () => {};
const pass = { setPipeline: nop, setBindGroup: nop, dispatchWorkgroups: nop, end: nop };
const device = {
  // What Dawn offers on Vulkan (16 storage buffers per stage) and large bindings: every fusion applies.
  limits: { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30, maxStorageBuffersPerShaderStage: 16, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024 },
  queue: { writeBuffer: nop, submit: nop },
  lost: new Promise(() => {}),
  addEventListener: nop,
  pushErrorScope: nop,
  popErrorScope: async () => null,
  createBuffer: (d) => ({ size: d.size, destroy: nop, unmap: nop, getMappedRange: () => new ArrayBuffer(d.size), mapAsync: async () => {} }),
  createBindGroup: () => ({}),
  createBindGroupLayout: () => ({}),
  createShaderModule: () => ({}),
  createComputePipeline: () => ({}),
  createPipelineLayout: () => ({}),
  createCommandEncoder: () => ({ beginComputePass: () => pass, finish: () => ({}), copyBufferToBuffer: nop }),
  destroy: nop,
};
const backend = new WebGPUBackend({ gpu: {}, adapter: {}, device, f16: true, subgroups: true, description: 'device stub' });

// Qwen2-0.5B's shapes; its lm_head is the embedding, as in the checkpoint.
const m = MODELS['0.5b'];
const zeros = (rows, cols) =>
  format === 'q4_0' ? core.quantizeQ4_0(new Float32Array(rows * cols), rows, cols)
  : format === 'f16' ? { format, rows, cols, data: new Uint16Array(rows * cols) }
  : (() => { throw new Error(`--format ${format}: f16 or q4_0`); })();
const weights = await uploadModel(backend, m, zeros);
const config = modelConfig(m);
const model = new core.Qwen2Model(backend, config, weights);
// A context that stays under one attention split (256 keys): the dispatch count of a short chat.
const seq = model.createSequence(256);
const before = backend.recorded.dispatches;
const times = [];
for (let i = 0; i < steps; i++) {
  if (seq.length >= 250) seq.truncate(1);
  const t = performance.now();
  model.forward(seq, [1 + (i % 7)]);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
const median = times[times.length >> 1];
console.log(`host JavaScript per decode step (Qwen2-0.5B shapes, ${format}, device stubbed): median ${(1000 * median).toFixed(0)} us over ${steps} steps, ` +
  `${((backend.recorded.dispatches - before) / steps).toFixed(0)} dispatches per step (${((1000 * median) / ((backend.recorded.dispatches - before) / steps)).toFixed(1)} us each)`);
