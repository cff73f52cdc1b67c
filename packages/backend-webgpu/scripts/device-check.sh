#!/bin/sh
# The WebGPU backend's checks on a lent GPU (an H200 behind the `device` tool), in one go:
#   1. the GPU, its driver and the Vulkan drivers Dawn can find (Dawn runs on Vulkan on Linux)
#   2. core's conformance suite on WebGPU (every op vs the reference backend, then the fixture models),
#      f16 path (shader-f16) and f32 path
#   3. the benchmark: copy bandwidth, then decode and prefill at Qwen2-0.5B and 7B shapes, f16 and q4_0
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

unxz_to() { # unxz_to FILE.xz DEST
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" > "$2"
  else python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"; fi
}

NODE=""
if command -v node >/dev/null 2>&1 && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  NODE=$(command -v node)
else
  mkdir -p /tmp/qwen2-node
  unxz_to "$D/node.xz" /tmp/qwen2-node/node
  chmod +x /tmp/qwen2-node/node
  NODE=/tmp/qwen2-node/node
fi
[ -f "$D/node_modules/webgpu/dist/linux-x64/dawn.node" ] || unxz_to "$D/dawn.node.xz" "$D/node_modules/webgpu/dist/linux-x64/dawn.node"
echo "== node: $NODE $($NODE --version)"
echo "== gpu"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1 || echo "nvidia-smi failed"
echo "== vulkan drivers (ICD files)"
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d 2>/dev/null || echo "no ICD directory"
echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-unset}"
ldconfig -p 2>/dev/null | grep -m1 'libvulkan.so.1' || echo "no libvulkan.so.1 known to ldconfig (Dawn needs the Vulkan loader)"

CONF=0
if [ "${SKIP_CONFORMANCE:-0}" != 1 ]; then
  echo "== conformance (core's suite on WebGPU)"
  $NODE "$D/conformance.mjs" > "$LOG/conformance.log" 2>&1
  CONF=$?
  grep -v '^✓' "$LOG/conformance.log" | head -n 200
  echo "conformance exit status: $CONF ($(grep -c '^✓' "$LOG/conformance.log") tests passed)"
fi

echo "== bench"
: > "$LOG/bench.log"
for m in $(echo "${MODELS:-0.5b,7b}" | tr , ' '); do
  for f in $(echo "${FORMATS:-f16,q4_0}" | tr , ' '); do
    echo "-- $m $f" | tee -a "$LOG/bench.log"
    $NODE "$D/bench.mjs" --model "$m" --format "$f" --tokens "${TOKENS:-64}" --prompt "${PROMPT:-128}" 2>&1 | tee -a "$LOG/bench.log"
  done
done
exit $CONF
