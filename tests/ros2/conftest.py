"""ROS 2 tests: real rclpy nodes from the PyPI wheels, in their own venv, as separate processes.

Once per session ``scripts/setup_ros2.sh`` creates ``.venv-ros2`` (ROS 2 Jazzy wheels, colcon, the light rcs
core) and builds ``ros2_ws`` (idempotent: seconds when already done), so a fresh machine's test command
installs what it needs. Every process gets one DDS domain per session and loopback-only discovery.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rcs.loopback import free_endpoint, free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "ros2_ws" / "install"
SHARE = INSTALL / "rcs_ros2" / "share" / "rcs_ros2"
ROS_PYTHON = REPO / ".venv-ros2" / "bin" / "python"
CHECKS = Path(__file__).resolve().parent / "ros_checks.py"


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Set up the ROS venv and workspace, and return the environment of its ``setup.bash``."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup_ros2.sh")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, f"scripts/setup_ros2.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = subprocess.run(
        ["bash", "-c", f"source {INSTALL / 'setup.bash'} && env -0"], check=True, capture_output=True
    ).stdout.decode()
    env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
    env.update(
        ROS_DOMAIN_ID=str(1 + os.getpid() % 99),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    env.pop("PYTHONPATH_PREPEND", None)
    return env


class Proc:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._f = open(self.log, "w")  # noqa: SIM115 kept open for the child's lifetime, closed in stop()
        self.p = subprocess.Popen(cmd, stdout=self._f, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def text(self) -> str:
        if not self._f.closed:
            self._f.flush()
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while needle not in self.text():
            if self.p.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.p.returncode}) before '{needle}':\n{self.text()[-3000:]}"
                )
            if time.monotonic() > end:
                raise AssertionError(f"{self.name}: no '{needle}' within {timeout} s:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError(f"{self.name} ignored {signal.Signals(sig).name} for {timeout} s") from None
        self._f.close()
        return int(self.p.returncode)


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[Any]:
    """Start processes with ``procs(name, cmd, env)``; all are stopped at teardown (reverse order)."""
    started: list[Proc] = []

    def start(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, cmd, tmp_path, env)
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        if p.p.poll() is None:
            try:
                p.stop()
            except AssertionError:
                pass


class Stack:
    """Starts the processes of one test: robot servers, rcs serve, installed ROS nodes, the test node."""

    def __init__(self, procs: Any, env: dict[str, str]) -> None:
        self.procs = procs
        self.env = env

    free_port = staticmethod(free_port)

    def robot(self, config: str, name: str = "robot") -> tuple[Proc, str, str]:
        """``rcs robot`` (main venv) with a launch/robots config, on free ports; waits for its ready line."""
        state, command = free_endpoint(), free_endpoint()
        p = self.procs(
            name,
            [
                sys.executable,
                "-m",
                "rcs.cli.main",
                "robot",
                "--config",
                str(REPO / "launch" / "robots" / config),
                "--state-endpoint",
                state,
                "--command-endpoint",
                command,
            ],
        )
        p.wait_for('"ready": true', timeout=120)
        return p, state, command

    def rcs(self, name: str, args: list[str]) -> Proc:
        """Any rcs subcommand in the main venv."""
        return self.procs(name, [sys.executable, "-m", "rcs.cli.main", *args])

    def node(
        self,
        executable: str,
        params_file: str,
        overrides: dict[str, Any],
        name: str | None = None,
        prefix: Sequence[str] = (),
    ) -> Proc:
        """An installed rcs_ros2 console script with an installed parameter file plus ``-p`` overrides (``prefix``:
        a command it runs under, e.g. ``setpriv ...``)."""
        cmd = [
            *prefix,
            str(INSTALL / "rcs_ros2" / "lib" / "rcs_ros2" / executable),
            "--ros-args",
            "--params-file",
            str(SHARE / "config" / params_file),
        ]
        for k, v in overrides.items():
            cmd += ["-p", f"{k}:={v}"]
        return self.procs(name or executable, cmd, self.env)

    def checks(self, scenario: str, args: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
        """Run the independent rclpy test node (tests/ros2/ros_checks.py) and return its result."""
        done = subprocess.run(
            [str(ROS_PYTHON), str(CHECKS), scenario, json.dumps(args or {})],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        assert lines, f"ros_checks {scenario} printed nothing:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        out = json.loads(lines[-1])
        assert out["ok"], f"ros_checks {scenario}: {out.get('error')}\n{done.stderr[-3000:]}"
        return out["result"]


@pytest.fixture()
def stack(procs: Any, ros_env: dict[str, str]) -> Stack:
    """Process starter for one test (see :class:`Stack`)."""
    return Stack(procs, ros_env)
