"""``state_probe`` (the ROS 2 console script of ``rcs bench ros2``): ``--help`` and signals (issue 14, item 10).

These run in the main venv, which has no ROS: ``--help`` must not need it, and the signal test runs the real
``state_probe.py`` against a stand-in of the few rclpy calls it makes. The stand-in behaves as rclpy does by
default (``rclpy.init`` installs SIGINT/SIGTERM handlers that shut the context down, after which ``spin_once``
raises ``ExternalShutdownException``), which is what printed a traceback when the probe was killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ros2_ws" / "src" / "rcs_ros2"

STUBS = {
    "rclpy/__init__.py": """
import signal, time
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
_down = []
def init(args=None, signal_handler_options=None):
    if signal_handler_options is not SignalHandlerOptions.NO:  # rclpy's default: handlers that shut down
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: _down.append(1))
def spin_once(node, timeout_sec=None):
    time.sleep(timeout_sec or 0.0)
    if _down:
        raise ExternalShutdownException()
def try_shutdown():
    pass
""",
    "rclpy/executors.py": "class ExternalShutdownException(Exception):\n    pass\n",
    "rclpy/signals.py": "import enum\nclass SignalHandlerOptions(enum.Enum):\n    NO = 0\n    ALL = 3\n",
    "rclpy/node.py": """
import os
class _Sub:
    def get_publisher_count(self):
        return 0
class Node:
    def __init__(self, name):
        pass
    def create_subscription(self, *args):
        open(os.environ["PROBE_READY"], "w").close()  # the probe is now waiting for a publisher
        return _Sub()
    def destroy_node(self):
        pass
""",
    "nav_msgs/__init__.py": "",
    "nav_msgs/msg.py": "class Odometry:\n    pass\n",
    "sensor_msgs/__init__.py": "",
    "sensor_msgs/msg.py": "class JointState:\n    pass\n",
    "rcs_ros2/__init__.py": "",
    "rcs_ros2/common.py": """
STATE_QOS_PROFILES = {"sensor_data": None, "reliable": None}
def declare(node, params):
    return {name: default for name, (default, _) in params.items()}
def from_time(stamp):
    return 0.0
""",
}


def test_help_prints_the_parameters_without_ros_or_running_the_probe() -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE)}
    out = subprocess.run(
        [sys.executable, "-m", "rcs_ros2.state_probe", "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    for name in ("topic", "duration_s", "match_timeout_s", "--ros-args"):
        assert name in out.stdout
    assert "latency_ms" not in out.stdout and '"error"' not in out.stdout  # no probe ran


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_probe_quietly(tmp_path: Path, sig: int, code: int) -> None:
    for rel, text in STUBS.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    shutil.copy(PACKAGE / "rcs_ros2" / "state_probe.py", tmp_path / "rcs_ros2" / "state_probe.py")
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PROBE_READY": str(ready)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rcs_ros2.state_probe", "--ros-args", "-p", "topic:=x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        end = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "the probe did not start"
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr and stderr.strip() == "", stderr
    assert proc.returncode == code and stdout == ""
