"""``rcs robot`` and ``rcs up`` as real processes: ready line, clean SIGINT/SIGTERM stop, errors named."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rcs.loopback import free_endpoint
from rcs.remote.client import RobotClient

REPO = Path(__file__).resolve().parents[2]
RCS = [sys.executable, "-m", "rcs.cli.main"]


def wait_line(proc: subprocess.Popen, needle: str, timeout: float = 120.0) -> list[str]:
    lines: list[str] = []
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"no {needle!r} within {timeout} s:\n{''.join(lines)[-3000:]}")


@pytest.mark.parametrize("composition", sorted(p.name for p in (REPO / "launch").glob("*.yaml")))
def test_every_composition_parses(composition: str) -> None:
    out = subprocess.run(
        [*RCS, "up", str(REPO / "launch" / composition), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "rcs " in out.stdout


def start_robot_stack(tmp_path: Path) -> tuple[subprocess.Popen, str, str]:
    """``rcs up`` of a one-process stack (the simulated SO-101's robot server): the process, the state and command
    endpoints."""
    state, command = free_endpoint(), free_endpoint()
    comp = tmp_path / "stack.yaml"
    comp.write_text(f"""description: test stack
processes:
  - name: robot
    rcs: [robot, --config, {REPO / "launch" / "robots" / "sim_so101.yaml"}, --state-endpoint, "{state}",
          --command-endpoint, "{command}"]
    ready: '"ready": true'
""")
    proc = subprocess.Popen([*RCS, "up", str(comp)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, state, command


def test_rcs_up_starts_the_stack_and_stops_it_on_sigint(tmp_path: Path) -> None:
    proc, state, command = start_robot_stack(tmp_path)
    try:
        wait_line(proc, '"ready": true')
        with RobotClient(command, state) as client:
            assert client.describe()["name"] == "sim/so101"
            assert client.wait_for(b"state").tensors["joint_positions"].shape == (5,)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "[robot] INFO rcs.remote.server: robot server stopped" in out


def test_a_killed_rcs_up_stops_its_stack(tmp_path: Path) -> None:
    """SIGKILL cannot be handled: the kernel sends each child SIGTERM (``rcs.child_process``), and the robot server
    stops; nothing of the stack is left running."""
    from tests.processes import child_pids, ended, signal_state

    proc, _, _ = start_robot_stack(tmp_path)
    children: list[int] = []
    try:
        wait_line(proc, '"ready": true')
        children = child_pids(proc.pid)
        assert len(children) == 1, children
        proc.kill()
        proc.communicate(timeout=30)
        assert ended(children[0], timeout_s=30.0), (
            f"the robot server outlived the killed rcs up: {signal_state(children[0])}"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in children:
            if not ended(pid, timeout_s=0.0):
                os.kill(pid, signal.SIGKILL)


def test_rcs_up_reports_a_child_that_fails(tmp_path: Path) -> None:
    comp = tmp_path / "stack.yaml"
    comp.write_text("processes:\n  - {name: robot, rcs: [robot, --config, /nonexistent.yaml], ready: ready}\n")
    out = subprocess.run([*RCS, "up", str(comp)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert "does not exist" in out.stdout and "robot exited with code" in out.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("processes: []\n", "non-empty list"),
        ("processes:\n  - {rcs: [rm, -rf, /]}\n", "one of ["),
        ("processes:\n  - {rcs: [robot], colour: red}\n", "unknown key(s) ['colour']"),
        ("services: {}\n", "unknown key(s) ['services']"),
    ],
)
def test_bad_compositions_are_named(tmp_path: Path, text: str, needle: str) -> None:
    comp = tmp_path / "bad.yaml"
    comp.write_text(text)
    out = subprocess.run([*RCS, "up", str(comp), "--dry-run"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and needle in out.stderr


def test_rcs_robot_sigterm_and_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot: sim/panda\nrate: 500\n")
    out = subprocess.run([*RCS, "robot", "--config", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "unknown key(s) rate" in out.stderr
    same = free_endpoint()
    out = subprocess.run(
        [*RCS, "robot", "--robot", "sim/so101", "--state-endpoint", same, "--command-endpoint", same],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0 and "command_endpoint=" in out.stderr and "cannot bind" in out.stderr
    out = subprocess.run(
        [*RCS, "robot", "--robot", "sim/nope"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode != 0 and "unknown robot 'sim/nope'" in out.stderr
    state, command = free_endpoint(), free_endpoint()
    proc = subprocess.Popen(
        [
            *RCS,
            "robot",
            "--robot",
            "sim/so101",
            "--rate",
            "30",
            "--state-endpoint",
            state,
            "--command-endpoint",
            command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_line(proc, '"ready": true')
        proc.send_signal(signal.SIGTERM)
        out_text, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "robot server stopped" in out_text


def test_clients_import_only_the_light_core() -> None:
    """The ROS nodes use these modules from a venv without MuJoCo or torch."""
    code = (
        "import sys, rcs.remote.client, rcs.remote.wire, rcs.remote.commands, rcs.remote.config, "
        "rcs.serving.client; heavy = sorted(m for m in ('mujoco', 'torch', 'lerobot', 'rclpy', 'sim') "
        "if m in sys.modules); print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def _ports_free(*ports: int) -> bool:
    for p in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def test_policy_deployment_composition_runs_as_shipped() -> None:
    """launch/policy_deployment.yaml exactly as shipped (fixed ports 5555, 5600, 5601)."""
    if not _ports_free(5555, 5600, 5601):
        pytest.skip("ports 5555/5600/5601 of the shipped composition are in use on this machine")
    proc = subprocess.Popen(
        [*RCS, "up", str(REPO / "launch" / "policy_deployment.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # the two children's lines interleave in any order: the policy's "session" line can precede the robot's
        # ready line, so what wait_line read is part of the output checked below
        before = "".join(wait_line(proc, '"ready": true'))
        with RobotClient("tcp://127.0.0.1:5601", "tcp://127.0.0.1:5600", topics=(b"status",)) as client:
            end = time.monotonic() + 30
            status = client.wait_for(b"status").meta
            while status["stage"] != "running" and time.monotonic() < end:
                status = client.wait_for(b"status").meta
        assert status["stage"] == "running" and status["engaged"], status  # the served policy drives the loop
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        out = before + out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "session" in out and "robot server stopped" in out and "policy server stopped" in out
