"""``rcs bench ros2``: robot state from the simulated robot through ZeroMQ to a ROS 2 subscriber process.

Three processes: ``rcs robot`` (this venv: the simulated Panda's control loop publishing every tick),
``robot_bridge`` and ``state_probe`` (the ROS 2 venv ``.venv-ros2``, built by ``scripts/setup_ros2.sh``, which
this benchmark runs first; it is idempotent). The probe subscribes to ``joint_states`` with the sensor-data
QoS and reports the rate it received and the latency from the robot's capture time (``header.stamp``) to its
callback. Prints ``{"joint_states_hz", "latency_ms": {"p50", "p99", "max"}, ...}``; targets: >= 500 Hz
sustained, p99 <= 2 ms. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rcs.loopback import free_endpoint
from rcs.remote.client import RobotClient
from rcs.remote.wire import TOPIC_STATUS

REPO = Path(__file__).resolve().parents[2]
ROS_VENV = REPO / ".venv-ros2"
WS_INSTALL = REPO / "ros2_ws" / "install"
TARGET_HZ = 500.0
TARGET_P99_MS = 2.0

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", default="sim/panda", help="registered arm (default sim/panda)")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="control loop = state rate (Hz, default 1000: the Panda's spec rate)"
    )
    parser.add_argument("--physics-dt", type=float, default=0.001, help="physics step (s), at most 1/rate")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds (default 2)")
    parser.add_argument(
        "--ros-rt-priority",
        type=int,
        default=50,
        help="SCHED_FIFO priority of the bridge's state thread and of the probe process, as a "
        "real-time ROS consumer would run (default 50; 0: default scheduler)",
    )
    parser.add_argument("--no-realtime", action="store_true", help="robot loop without SCHED_FIFO")


def ros_env(domain_id: int) -> dict[str, str]:
    """The environment of ``source ros2_ws/install/setup.bash`` with an isolated, loopback-only DDS domain."""
    script = f"source {WS_INSTALL / 'setup.bash'} && env -0"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True).stdout.decode()
    env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
    env["PATH"] = f"{ROS_VENV / 'bin'}:{env.get('PATH', '')}"
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


def setup_ros2() -> None:
    """Run scripts/setup_ros2.sh (creates .venv-ros2 and builds the workspace on first use)."""
    subprocess.run(["bash", str(REPO / "scripts" / "setup_ros2.sh")], check=True, stdout=sys.stderr)


def node_command(name: str) -> list[str]:
    """The installed console script of the rcs_ros2 package."""
    return [str(WS_INSTALL / "rcs_ros2" / "lib" / "rcs_ros2" / name)]


def wait_ready(proc: subprocess.Popen, timeout_s: float) -> dict[str, Any]:
    """The JSON ready line of ``rcs robot``."""
    end = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("{") and '"ready"' in line:
            return json.loads(line)
    raise RuntimeError(f"rcs robot not ready within {timeout_s} s (exit code {proc.poll()})")


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT, then SIGKILL after ``timeout_s``; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def run(args: argparse.Namespace) -> dict[str, Any]:
    setup_ros2()
    state, command = free_endpoint(), free_endpoint()
    domain = 100 + os.getpid() % 100
    env = ros_env(domain)
    robot_cmd = [
        sys.executable,
        "-m",
        "rcs.cli.main",
        "robot",
        "--robot",
        args.robot,
        "--rate",
        str(args.rate),
        "--state-endpoint",
        state,
        "--command-endpoint",
        command,
    ]
    if args.no_realtime:
        robot_cmd.append("--no-realtime")
    cfg = REPO / "outputs" / f"bench_ros2_robot_{os.getpid()}.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps({"robot": args.robot, "robot_config": {"physics_dt": args.physics_dt}, "cameras": []}))
    robot_cmd += ["--config", str(cfg)]
    procs: list[subprocess.Popen] = []
    try:
        robot = subprocess.Popen(robot_cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        procs.append(robot)
        wait_ready(robot, 120.0)
        log.info("robot server up (%s at %.0f Hz)", args.robot, args.rate)
        bridge = subprocess.Popen(
            node_command("robot_bridge")
            + [
                "--ros-args",
                "-p",
                f"state_endpoint:={state}",
                "-p",
                f"command_endpoint:={command}",
                "-p",
                "publish_cameras:=false",
                "-p",
                "publish_tcp_pose:=false",
                "-p",
                f"realtime_priority:={args.ros_rt_priority}",
                "--log-level",
                "warn",
            ],
            env=env,
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        procs.append(bridge)
        chrt = ["chrt", "-f", str(args.ros_rt_priority)] if args.ros_rt_priority > 0 else []
        probe = subprocess.run(
            chrt
            + node_command("state_probe")
            + [
                "--ros-args",
                "-p",
                "topic:=joint_states",
                "-p",
                f"duration_s:={args.duration}",
                "-p",
                f"warmup_s:={args.warmup}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=args.duration + args.warmup + 120,
            check=False,
        )
        lines = [ln for ln in probe.stdout.splitlines() if ln.startswith("{")]
        if probe.returncode != 0 or not lines:
            raise RuntimeError(f"state_probe failed ({probe.returncode}): {probe.stdout[-500:]} {probe.stderr[-1500:]}")
        res = json.loads(lines[-1])
        with RobotClient(command, state, topics=(TOPIC_STATUS,)) as client:  # where missing states went
            status = client.wait_for(TOPIC_STATUS, timeout_s=10.0).meta
    finally:
        for p in reversed(procs):
            stop(p)
        cfg.unlink(missing_ok=True)
    lat = res["latency_ms"]
    return {
        "joint_states_hz": res["rate_hz"],
        "latency_ms": {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"]},
        "messages": res["messages"],
        "duration_s": args.duration,
        "robot": args.robot,
        "loop_rate_hz": args.rate,
        "ros_rt_priority": args.ros_rt_priority,
        "robot_loop": {
            k: status["loop"][k]
            for k in ("achieved_rate_hz", "missed_ticks", "overruns", "lateness_us", "rt_scheduling")
        },
        "path": "rcs robot (sim, ControlLoop) -> ZeroMQ PUB/SUB tcp loopback -> robot_bridge -> "
        "Fast DDS (sensor-data QoS) -> state_probe subscriber (separate processes)",
        "targets": {"joint_states_hz": f">= {TARGET_HZ}", "latency_p99_ms": f"<= {TARGET_P99_MS}"},
        "met": {"joint_states_hz": res["rate_hz"] >= TARGET_HZ, "latency_p99_ms": lat["p99"] <= TARGET_P99_MS},
        "cpus": os.cpu_count(),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
    }
