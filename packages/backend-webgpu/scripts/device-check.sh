#!/bin/sh
# The WebGPU backend's checks on a lent GPU (an H200 behind the `device` tool), in one go:
#   1. the GPU, its driver and the Vulkan drivers Dawn can find (Dawn runs on Vulkan on Linux)
#   2. core's conformance suite on WebGPU (every op vs the reference backend, then the fixture models),
#      f16 path (shader-f16) and f32 path
#   3. the benchmark: copy bandwidth, then decode and prefill at Qwen2-0.5B and 7B shapes, f16 and q4_0,
#      then 7B at an 8192-token prompt with an f32 and an f16 KV cache (LONG_MODELS, LONG_PROMPT)
#
# Prepare here (no GPU needed):
#   cd /work/main && node_modules/.bin/pnpm --filter @qwen2-ts/backend-webgpu build \
#     && node packages/backend-webgpu/scripts/device-prepare.mjs
# Then run with the device tool from the repository root:
#   command: sh packages/backend-webgpu/scripts/device-check.sh
#   carry:   ["packages/backend-webgpu/build/device"]
# Output lands in $OUT (conformance.log, bench.log) when $OUT is set. MODELS / FORMATS / TOKENS shorten
# the benchmark; SKIP_CONFORMANCE=1 runs only the benchmark.
set -u
cd "$(dirname "$0")/../../.." || exit 1
D=packages/backend-webgpu/build/device
LOG=${OUT:-/tmp}

. scripts/device/common.sh
find_node
[ -f "$D/node_modules/webgpu/dist/linux-x64/dawn.node" ] || unxz_to "$D/dawn.node.xz" "$D/node_modules/webgpu/dist/linux-x64/dawn.node"
echo "== vulkan drivers (ICD files)"
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d 2>/dev/null || echo "no ICD directory"
echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-unset}"
ldconfig -p 2>/dev/null | grep -m1 'libvulkan.so.1' || echo "no libvulkan.so.1 known to ldconfig (Dawn needs the Vulkan loader)"

CONF=0
[ "${SKIP_CONFORMANCE:-0}" = 1 ] || run_conformance WebGPU

echo "== bench"
: > "$LOG/bench.log"
for m in $(echo "${MODELS:-0.5b,7b}" | tr , ' '); do
  for f in $(echo "${FORMATS:-f16,q4_0}" | tr , ' '); do
    echo "-- $m $f" | tee -a "$LOG/bench.log"
    $NODE "$D/bench.mjs" --model "$m" --format "$f" --tokens "${TOKENS:-64}" --prompt "${PROMPT:-128}" 2>&1 | tee -a "$LOG/bench.log"
  done
done
# Long contexts, where decode reads the KV cache as much as the weights: f32 against f16 storage.
for m in $(echo "${LONG_MODELS:-7b}" | tr , ' '); do
  for kv in f32 f16; do
    echo "-- $m f16 weights, ${LONG_PROMPT:-8192}-token prompt, $kv KV cache" | tee -a "$LOG/bench.log"
    $NODE "$D/bench.mjs" --model "$m" --format f16 --tokens 32 --prompt "${LONG_PROMPT:-8192}" --kv-cache "$kv" 2>&1 | tee -a "$LOG/bench.log"
  done
done
exit $CONF
