#!/usr/bin/env bash
# Franka emulator side of the stack: a separate venv (.venv-franky-sim) with franky-sim, a MuJoCo-backed server
# that speaks libfranka's network protocol (robot on TCP/UDP port 1337, gripper on 1338 of a loopback address).
#
# Why a separate venv: franky-sim pulls its own mujoco (4.x) and numpy, while the main .venv pins mujoco 3.12;
# and the emulator runs as its own process anyway, as a real robot is its own machine. The emulator launcher
# (hardware/emulators/franka.py) starts it from this venv; nothing of the stack is installed here.
# Idempotent: a finished venv (stamp matches the spec) is only checked.
# Usage: bash scripts/setup_franky_sim.sh       (prints "ready" and the venv path on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-franky-sim] %s\n' "$*" >&2; }

VENV=.venv-franky-sim
SPEC=("franky-sim==1.0.4")
CHECK="import franky_sim, franky_sim.mujoco_simulator, mujoco, numpy, pinocchio"

source scripts/side_venv.sh

ensure_side_venv "$VENV" franky-sim "${SPEC[@]}"
# keep the venv out of git without touching the repo's .gitignore
[ -f "$VENV/.gitignore" ] || printf '*\n' > "$VENV/.gitignore"
"$VENV/bin/python" -c "$CHECK" || { log "ERROR: import check failed in $VENV"; exit 1; }
log "ready: $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("franky-sim", m.version("franky-sim"), "mujoco", m.version("mujoco"))'))"
