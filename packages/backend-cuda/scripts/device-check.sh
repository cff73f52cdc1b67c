#!/bin/sh
# The CUDA backend's checks on a lent GPU (an H200 behind the `device` tool), in one go:
#   1. the GPU and driver (nvidia-smi)
#   2. core's conformance suite on CUDA (every op vs the reference backend, then the fixture models)
#   3. the benchmark: copy-kernel bandwidth, then decode (programmatic dependent launch off and on) and
#      prefill at Qwen2-0.5B and 7B shapes
#   4. the suite again with programmatic dependent launch, on the ops and one fixture model in bf16 and
#      q4_0 (its decode steps replay CUDA graphs), which is what that launch mode can change
#
# Prepare here (no GPU needed):
#   cd /work/main && node_modules/.bin/pnpm --filter @qwen2-ts/backend-cuda build \
#     && node packages/backend-cuda/scripts/device-prepare.mjs
# Then run with the device tool from the repository root:
#   command: sh packages/backend-cuda/scripts/device-check.sh
#   carry:   ["packages/backend-cuda/build/Release", "packages/backend-cuda/build/device"]
# Output lands in $OUT (conformance.log, bench.log, conformance-pdl.log) when $OUT is set. Set STEPS / MODELS / FORMATS to
# shorten the benchmark.
set -u
cd "$(dirname "$0")/../../.." || exit 1
D=packages/backend-cuda/build/device
LOG=${OUT:-/tmp}
export QWEN2_CUDA_ADDON="$PWD/packages/backend-cuda/build/Release/qwen2_cuda.node"

. scripts/device/common.sh
find_node
run_conformance CUDA

echo "== bench"
$NODE "$D/bench.mjs" --models "${MODELS:-0.5B,7B}" --formats "${FORMATS:-bf16,q4_0}" --steps "${STEPS:-128}" 2>&1 | tee "$LOG/bench.log"
FIRST=$CONF
run_conformance "CUDA with programmatic dependent launch" conformance-pdl --pdl --models tiny-bf16-untied --formats bf16,q4_0
exit $FIRST
