# Shell helpers shared by the backends' device-check.sh scripts (sourced, POSIX sh). Each script sets D
# (its build/device folder) and LOG (where logs go) before sourcing this file.

# unxz_to FILE.xz DEST: xz where the machine has it, else Python's lzma.
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" > "$2"
  else python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"; fi
}

# Sets NODE: the machine's Node when it is 20 or newer, else the carried $D/node.xz unpacked to /tmp.
find_node() {
  if command -v node >/dev/null 2>&1 && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    NODE=$(command -v node)
  else
    mkdir -p /tmp/qwen2-node
    unxz_to "$D/node.xz" /tmp/qwen2-node/node
    chmod +x /tmp/qwen2-node/node
    NODE=/tmp/qwen2-node/node
  fi
  echo "== node: $NODE $($NODE --version)"
  echo "== gpu"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1 || echo "nvidia-smi failed"
}

# run_conformance WHAT [NAME [ARGS...]]: runs $D/conformance.mjs ARGS into $LOG/NAME.log (default
# conformance.log), prints what did not pass and sets CONF to its exit status.
run_conformance() {
  what=$1
  name=${2:-conformance}
  [ $# -ge 2 ] && shift 2 || shift $#
  echo "== $name (core's suite on $what)"
  $NODE "$D/conformance.mjs" "$@" > "$LOG/$name.log" 2>&1
  CONF=$?
  grep -v '^✓' "$LOG/$name.log" | head -n 200
  echo "$name exit status: $CONF ($(grep -c '^✓' "$LOG/$name.log") tests passed)"
}
