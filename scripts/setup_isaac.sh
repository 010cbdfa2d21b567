#!/usr/bin/env bash
# Isaac Lab 3 side of the stack (the "isaac/panda" robot): a separate venv (.venv-isaac) with isaaclab 3.0.0
# (kit-less: Newton physics on warp, no Isaac Sim; it brings a CUDA build of torch 2.11, newton, warp-lang,
# mujoco 3.12), mujoco-usd-converter 0.6.1 (our MJCF -> USD), and this repo editable with its `sim` extra only
# (mink for the Panda's IK, imageio for videos; no lerobot).
#
# Why a separate venv: Isaac Lab is about 7.8 GB and pins torch/transformers/numpy versions of its own; the main
# .venv stays light. Installing takes about 6 minutes the first time; afterwards this script checks in seconds.
# Usage: bash scripts/setup_isaac.sh        (prints "ready" and the venv path on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-isaac] %s\n' "$*" >&2; }

VENV=.venv-isaac
ISAAC_SPEC=("isaaclab==3.0.0" "mujoco-usd-converter==0.6.1")
# This repo with the light core's dependencies and the `sim` extra (mujoco pinned to the version Isaac Lab pins,
# mink, imageio for videos): read from pyproject.toml, not repeated here. Plus the test runner.
REPO_SPEC=(-e ".[sim]")
TEST_SPEC=("pytest>=8" "pytest-timeout>=2.3")
CHECK="import isaaclab, isaaclab_newton, newton, warp, mujoco_usd_converter, mujoco, mink, imageio, zmq, msgpack, yaml, rcs, sim.isaac.arm"

source scripts/side_venv.sh

# 1. The venv with Isaac Lab and the converter (about 6 min and 8 GB the first time).
ensure_side_venv "$VENV" isaac "${ISAAC_SPEC[@]}"

# 2. This repo, editable, with the sim extra only (no lerobot: it would move torch).
core_stamp=$VENV/.rcs-core-installed
if [ ! -f "$core_stamp" ] || [ pyproject.toml -nt "$core_stamp" ] || [ "$0" -nt "$core_stamp" ]; then
  log "installing rcs (editable, with its sim extra) and ${TEST_SPEC[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q "${REPO_SPEC[@]}" "${TEST_SPEC[@]}"
  touch "$core_stamp"
fi
"$VENV/bin/python" -c "$CHECK" 2>/dev/null || { log "ERROR: import check failed in $VENV: $VENV/bin/python -c '$CHECK'"; exit 1; }
log "ready: $VENV (isaaclab $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("isaaclab"))'))"
