#!/usr/bin/env bash
# Set up everything on a fresh Debian/Ubuntu machine: system libraries for headless rendering and video,
# then a Python 3.12 virtual environment in .venv with this repo installed (editable) and its extras.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. System packages: Mesa EGL (offscreen MuJoCo rendering without a GPU) and ffmpeg (video).
apt_pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libglvnd0 ffmpeg)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  log "installing system packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. A Python 3.12 interpreter: on PATH, from pyenv, or from apt (Ubuntu 24.04+).
source scripts/find_python312.sh
if [ ! -x .venv/bin/python ]; then
  py=$(find_python) || {
    log "python3.12 not found; trying apt"
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get install -y -qq python3.12 python3.12-venv >/dev/null || true
    py=$(find_python) || { log "ERROR: need python3.12 (on PATH, in pyenv, or apt's python3.12 + python3.12-venv)"; exit 1; }
  }
  log "creating .venv with $py"
  "$py" -m venv .venv
fi

# 3. The stack itself with its simulation and test extras.
stamp=.venv/.rcs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing rcs-stack[sim,lerobot,teleop,hardware,quadrotor,view,ray,dev] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[sim,lerobot,teleop,hardware,quadrotor,view,ray,dev]"
  touch "$stamp"
fi
# 4. The Franka emulator (franky-sim) in its own venv: it pins a newer mujoco than ours (rcs emulate hw/panda).
bash scripts/setup_franky_sim.sh
log "ready: $(.venv/bin/python --version), $(.venv/bin/rcs --version)"
