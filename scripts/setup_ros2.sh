#!/usr/bin/env bash
# ROS 2 side of the stack, without a ROS install: a separate venv (.venv-ros2) with the ROS 2 Jazzy rclpy wheels
# and message packages from PyPI, colcon, and the light rcs core (no extras: no torch, no mujoco); then builds
# the colcon workspace ros2_ws/ into ros2_ws/install.
#
# Why a separate venv: the ROS wheels install a .pth hook that re-executes every Python process of their venv
# (to set the library path), which must not touch the main .venv.
# Idempotent: a finished venv is only checked; the workspace is rebuilt only when ros2_ws/src changed.
# Usage: bash scripts/setup_ros2.sh            (prints "ready" and the venv/workspace paths on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-ros2] %s\n' "$*" >&2; }

VENV=.venv-ros2
WS=ros2_ws
# Jazzy LTS (Fast DDS 2.14): rclpy and exactly the message packages the nodes and tests import.
ROS_SPEC=(
  "ros-jazzy-rclpy[fastrtps]==7.1.6"
  "ros-jazzy-std-msgs==5.3.6"
  "ros-jazzy-sensor-msgs==5.3.6"
  "ros-jazzy-geometry-msgs==5.3.6"
  "ros-jazzy-trajectory-msgs==5.3.6"
  "ros-jazzy-nav-msgs==5.3.6"
  "ros-jazzy-diagnostic-msgs==5.3.6"
  "ros-jazzy-std-srvs==5.3.6"
  "ros-jazzy-ament-index-python==1.8.1"
  "colcon-common-extensions==0.3.0"
  "pytest>=8"
)
CHECK="import rclpy, sensor_msgs.msg, geometry_msgs.msg, trajectory_msgs.msg, nav_msgs.msg, diagnostic_msgs.msg, std_srvs.srv, ament_index_python, rcs.remote.client, zmq, msgpack, yaml"

source scripts/side_venv.sh

# 1. The venv with the ROS wheels.
ensure_side_venv "$VENV" ros2 "${ROS_SPEC[@]}"

# 2. The light rcs core (editable, no extras): the nodes talk to the stack through its ZeroMQ interfaces.
core_stamp=$VENV/.rcs-core-installed
if [ ! -f "$core_stamp" ] || [ pyproject.toml -nt "$core_stamp" ]; then
  log "installing the light rcs core (no extras) into $VENV"
  "$VENV/bin/python" -m pip install -q -e .
  touch "$core_stamp"
fi
"$VENV/bin/python" -c "$CHECK" || { log "ERROR: import check failed in $VENV"; exit 1; }
if "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(0 if (u.find_spec('torch') or u.find_spec('mujoco')) else 1)"; then
  log "ERROR: torch or mujoco found in $VENV: the ROS side must need only the light core"; exit 1
fi

# 3. Build the workspace (ament_python packages) with colcon, only when one of its files changed
build_stamp=$WS/install/.rcs-built
# (launch/robots and launch/policies are installed into the package's share/ too)
if [ ! -f "$build_stamp" ] || [ -n "$(find "$WS/src" launch/robots launch/policies -newer "$build_stamp" -print -quit)" ]; then
  log "building $WS with colcon"
  t0=$SECONDS
  (
    cd "$WS"
    PATH="$PWD/../$VENV/bin:$PATH" "../$VENV/bin/colcon" --log-base log build \
      --base-paths src --build-base build --install-base install --event-handlers console_direct- >/dev/null
  )
  touch "$build_stamp"
  log "workspace built in $((SECONDS - t0)) s"
fi
log "ready: $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("rclpy", m.version("ros-jazzy-rclpy"))')), $WS/install"
