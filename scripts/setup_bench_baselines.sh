#!/usr/bin/env bash
# Create the two side venvs for `rcs bench transport` baselines (sim/bench/baselines/: openpi_style.py and
# lerobot_async.py, run by sim/bench/baselines/runner.py), outside git tracking (.venv-bench/ is ignored):
#   .venv-bench/openpi   openpi-client==0.1.2 (pins numpy<2) + websockets: openpi's websocket + msgpack design
#   .venv-bench/lerobot  lerobot[async]==0.6.1 (torch 2.11, ~5 GB, 1-2 min): lerobot's async inference over gRPC
# They conflict (numpy<2 vs numpy 2), hence two venvs. Idempotent: a finished venv is only checked.
# Usage: bash scripts/setup_bench_baselines.sh [openpi|lerobot]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-bench] %s\n' "$*" >&2; }

# Same interpreter search as scripts/setup.sh: on PATH, from pyenv, or a system 3.12.
source scripts/find_python312.sh

# openpi-client 0.1.2 imports typing_extensions without declaring it, so it is listed here.
OPENPI_SPEC=("openpi-client==0.1.2" "websockets==17.4" "typing_extensions")
LEROBOT_SPEC=("lerobot[async]==0.6.1")

make_venv() {  # name, check-import, packages...
  local name=$1 check=$2; shift 2
  local dir=.venv-bench/$name stamp=.venv-bench/$name/.rcs-bench-installed
  local want="$*"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    log "$name: ready ($dir)"; return 0
  fi
  if [ ! -x "$dir/bin/python" ]; then
    local py; py=$(find_python) || { log "ERROR: need python3.12 (on PATH, in pyenv, or /usr/bin)"; exit 1; }
    log "$name: creating $dir with $py"
    mkdir -p .venv-bench
    "$py" -m venv "$dir"
  fi
  local t0=$SECONDS
  log "$name: installing $want"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$dir/bin/python" -m pip install -q "$@"
  "$dir/bin/python" -c "$check"
  printf '%s' "$want" > "$stamp"
  log "$name: installed in $((SECONDS - t0)) s, $(du -sh "$dir" | cut -f1)"
}

which=${1:-all}
if [ "$which" = all ] || [ "$which" = openpi ]; then
  make_venv openpi "import openpi_client.websocket_client_policy, websockets.asyncio.server, msgpack, numpy" "${OPENPI_SPEC[@]}"
fi
if [ "$which" = all ] || [ "$which" = lerobot ]; then
  make_venv lerobot "import grpc, lerobot.transport.services_pb2_grpc, lerobot.async_inference.helpers" "${LEROBOT_SPEC[@]}"
fi
