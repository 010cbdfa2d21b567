"""state_probe: measure a state topic's rate and latency (capture stamp -> this subscriber) and print JSON.

``state_probe --ros-args -p topic:=joint_states -p type:=joint_state -p duration_s:=10.0``

Waits for a publisher to match, discards ``warmup_s`` of messages, then counts messages for ``duration_s`` and
prints one JSON object: ``{"topic", "messages", "rate_hz", "latency_ms": {"p50", "p99", "max"}, ...}``. The
latency is the subscriber's wall clock at the callback minus ``header.stamp`` (the robot's capture time
converted to wall time by the bridge): meaningful on one host, or hosts whose clocks are synchronized.
Used by ``rcs bench ros2``. ``--help`` lists the parameters (without starting ROS); SIGINT or SIGTERM ends the
probe without a result, quietly, with exit code 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import numpy as np

# rclpy and the message packages are imported in main(), after the command line is checked: `--help` works
# without a sourced ROS environment and answers at once.

PARAMETERS: dict[str, tuple[Any, str]] = {
    "topic": ("joint_states", "topic to measure"),
    "type": ("joint_state", "message type: joint_state or odometry"),
    "qos": ("sensor_data", "QoS: sensor_data or reliable (must be compatible with the publisher)"),
    "duration_s": (10.0, "measurement duration (s)"),
    "warmup_s": (1.0, "discarded start (s)"),
    "match_timeout_s": (30.0, "wait this long for a publisher (s)"),
}


def make_probe() -> Any:
    """A ``StateProbe`` node: counts messages and records latencies (see the module docstring)."""
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from rcs_ros2.common import STATE_QOS_PROFILES, declare, from_time

    types: dict[str, type] = {"joint_state": JointState, "odometry": Odometry}

    class StateProbe(Node):
        def __init__(self) -> None:
            super().__init__("rcs_state_probe")
            self.p = declare(self, PARAMETERS)
            self.latency = np.zeros(1 << 20)
            self.n = 0
            self.first: float | None = None
            self.last = 0.0
            self.recording = False
            self.sub = self.create_subscription(
                types[self.p["type"]], self.p["topic"], self._on_msg, STATE_QOS_PROFILES[self.p["qos"]]
            )

        def _on_msg(self, msg: Any) -> None:
            now = time.time()
            if not self.recording:
                return
            if self.first is None:
                self.first = now
            self.last = now
            if self.n < len(self.latency):
                self.latency[self.n] = now - from_time(msg.header.stamp)
            self.n += 1

    return StateProbe()


def parse_command_line(argv: list[str]) -> None:
    """``--help`` (exit 0) and refusal of unknown options (exit 2); ROS arguments (``--ros-args ...``) pass."""
    parser = argparse.ArgumentParser(
        prog="state_probe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure a state topic's rate and latency (capture stamp -> this subscriber); print one JSON "
        "object on stdout.",
        epilog="ROS parameters (--ros-args -p NAME:=VALUE):\n"
        + "\n".join(f"  {name:<16} {text} (default {default})" for name, (default, text) in PARAMETERS.items())
        + "\n\nexample: state_probe --ros-args -p topic:=joint_states -p duration_s:=10.0",
    )
    ours = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    parser.parse_args(ours)


class _Stop:
    """SIGINT/SIGTERM as a flag the loops poll (rclpy's own handlers would raise out of spin_once: a traceback)."""

    def __init__(self) -> None:
        self.signum = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signum = signum

    @property
    def code(self) -> int:
        """Shell convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def main(args: list[str] | None = None) -> int:
    """Console script ``state_probe``: prints the JSON result on stdout (exit 130/143 without it if stopped)."""
    argv = sys.argv[1:] if args is None else args
    parse_command_line(argv)
    stop = _Stop()  # before rclpy is imported: a signal during the import or init exits quietly too
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    if stop.signum:
        return stop.code
    rclpy.init(args=[sys.argv[0] if sys.argv else "state_probe", *argv], signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = make_probe()
        end = time.monotonic() + node.p["match_timeout_s"]
        while node.sub.get_publisher_count() == 0:
            if stop.signum:
                return stop.code
            if time.monotonic() > end:
                sys.stdout.write(json.dumps({"error": f"no publisher on {node.p['topic']}"}) + "\n")
                return 1
            rclpy.spin_once(node, timeout_sec=0.1)
        t_end = time.monotonic() + node.p["warmup_s"]
        while time.monotonic() < t_end and not stop.signum:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.recording = True
        t_end = time.monotonic() + node.p["duration_s"]
        while time.monotonic() < t_end and not stop.signum:
            rclpy.spin_once(node, timeout_sec=0.05)
        if stop.signum:
            return stop.code
        n = min(node.n, len(node.latency))
        lat = node.latency[:n] * 1e3
        span = (node.last - node.first) if node.first is not None else 0.0
        result = {
            "topic": node.p["topic"],
            "messages": node.n,
            "duration_s": node.p["duration_s"],
            "rate_hz": round(node.n / node.p["duration_s"], 1),
            "rate_between_first_and_last_hz": round((node.n - 1) / span, 1) if span > 0 else 0.0,
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 3) if n else None,
                "p99": round(float(np.percentile(lat, 99)), 3) if n else None,
                "max": round(float(lat.max()), 3) if n else None,
            },
        }
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
