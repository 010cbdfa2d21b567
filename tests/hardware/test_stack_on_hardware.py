"""The stack on a physical robot driver, exactly as on a simulated one: ``rcs robot`` with the shipped config
(``launch/robots/hw_so101.yaml``, only the port changed) and a served policy, against the emulated SO-101 bus.

Everything is a real process: the emulator (its MuJoCo physics is the arm), ``rcs robot`` (driver, control loop,
watchdog, safety filter), ``rcs serve`` (the policy), talking over a pseudo-terminal and ZeroMQ sockets.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rcs.registry import start_emulator
from rcs.remote.client import RobotClient
from tests.remote.helpers import free_endpoints
from tests.remote.processes import RCS, start_ready, terminate

REPO = Path(__file__).resolve().parents[2]
ARM = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator("hw/so101")
    yield emu
    emu.close()


def _options(emulator) -> list[str]:
    out: list[str] = []
    for key, value in emulator.robot_config.items():
        out += ["--robot-option", f"{key}={value}"]
    return out


def _settle(emulator, target: np.ndarray, joints: slice, tol: float, timeout: float = 20.0) -> np.ndarray:
    """Poll the emulator's physics until the joints are within ``tol`` rad of ``target`` (or time out)."""
    end = time.monotonic() + timeout
    q = np.asarray(emulator.joint_positions(), dtype=float)
    while time.monotonic() < end and np.abs(q[joints] - target[joints]).max() > tol:
        time.sleep(0.1)
        q = np.asarray(emulator.joint_positions(), dtype=float)
    return q


def test_rcs_robot_runs_the_physical_arm_from_its_shipped_config(emulator) -> None:
    state, command = free_endpoints()
    proc = start_ready(
        [
            *RCS,
            "robot",
            "--config",
            str(REPO / "launch" / "robots" / "hw_so101.yaml"),
            *_options(emulator),
            "--state-endpoint",
            state,
            "--command-endpoint",
            command,
        ]
    )
    try:
        with RobotClient(command, state) as client:
            assert client.describe()["name"] == "hw/so101"
            q = client.wait_for(b"state").tensors["joint_positions"]
            truth = np.asarray(emulator.joint_positions(), dtype=float)
            assert np.abs(q - truth[:5]).max() < 0.02  # the published state is the physics' state
            goal = q.copy()
            goal[0] += 0.3 if q[0] < 0 else -0.3
            reply = client.trajectory(ARM, np.array([goal]), np.array([2.0]))
            assert reply.ok, reply
            reached = _settle(emulator, goal, slice(0, 1), 0.02)
            assert abs(reached[0] - goal[0]) < 0.02, (reached[0], goal[0])
            over = goal.copy()
            over[1] = 3.0  # beyond shoulder_lift's limit: refused before it reaches the bus
            assert client.trajectory(ARM, np.array([over]), np.array([3.0])).code == "position_limit"
    finally:
        err = terminate(proc)
    assert proc.returncode == 0, err[-3000:]


def _drive_with_served_policy(emulator, tmp_path: Path, pose: list[float]) -> str:
    """Run ``rcs serve`` (a constant policy holding ``pose``: 5 arm joints + gripper, rad) and ``rcs robot`` with
    the shipped config plus a policy section until the emulated arm reaches the pose; returns the robot's stderr."""
    names = [*ARM, "gripper"]
    manifest = {
        "kind": "constant",
        "checkpoint_id": "so101-test-pose",
        "schema": {
            "observation": [
                {"name": "observation.state", "dtype": "float32", "shape": [6], "unit": "rad", "names": names}
            ],
            "action": {"name": "action", "dtype": "float32", "shape": [10, 6], "unit": "rad", "names": names},
            "chunk_size": 10,
            "policy_dt": 0.05,
        },
        "value": pose,
    }
    (tmp_path / "policy.json").write_text(json.dumps(manifest))
    policy_endpoint = free_endpoints()[0]
    state, command = free_endpoints()
    config = tmp_path / "robot.yaml"
    base = (REPO / "launch" / "robots" / "hw_so101.yaml").read_text()
    config.write_text(base + f"policy: {{endpoint: '{policy_endpoint}', manifest: policy.json, budget_s: 0.5}}\n")
    # rcs serve prints no ready line; ZeroMQ connects whenever it binds, and the robot arms after the handshake
    server = subprocess.Popen(
        [*RCS, "serve", "--policy", str(tmp_path / "policy.json"), "--bind", policy_endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    robot = None
    try:
        robot = start_ready(
            [*RCS, "robot", "--config", str(config), *_options(emulator), "--state-endpoint", state]
            + ["--command-endpoint", command]
        )
        target = np.array(pose[:5])
        reached = _settle(emulator, target, slice(0, 5), 0.03, timeout=30.0)
        assert np.abs(reached[:5] - target).max() < 0.03, (reached.round(3).tolist(), pose)
    finally:
        errs = [terminate(p) for p in (robot, server) if p is not None]
    assert robot.returncode == 0 and server.returncode == 0, [e[-2000:] for e in errs]
    return errs[0]


def test_a_served_policy_drives_the_physical_arm(emulator, tmp_path: Path) -> None:
    """``rcs serve`` + ``rcs robot`` with a policy section: the control loop takes the policy's chunks through the
    same PolicyLink, watchdog and safety filter as in simulation, and the emulated arm goes where the policy says."""
    q = np.asarray(emulator.joint_positions(), dtype=float)
    _drive_with_served_policy(emulator, tmp_path, [float(np.clip(q[0] + 0.25, -1.0, 1.0)), -0.2, 0.3, 1.3, 0.0, 0.5])


def test_an_arm_left_past_a_joint_limit_is_brought_back_and_driven(emulator, tmp_path: Path) -> None:
    """An arm can come to rest past a joint limit (a limp arm falls onto its end stops; here a hand pushes the
    wrist past its limit, with the TCP above the workspace box, and lets go once the driver's servos hold it).
    The safety filter must bring the command back inside the joint limit (the driver refuses a position past
    it) rather than hold the measured pose, and the policy then drives the arm."""
    spec_upper = 1.65806  # wrist_flex's limit (rad): the spec = the emulator's joint range
    emulator.move_by_hand([0.5, -0.8, -1.55, spec_upper + 0.05, 1.75, 0.5], duration=1.0, until_torque=True)
    assert emulator.joint_positions()[3] > spec_upper  # the hand pushed it past the limit
    err = _drive_with_served_policy(emulator, tmp_path, [0.25, -0.2, 0.3, 1.3, 0.0, 0.5])
    assert "device rejected" not in err, err[-2000:]


def test_rcs_robot_stops_with_one_line_when_the_bus_dies() -> None:
    """The arm's bus dies mid-run (the emulator process is killed: a pulled USB cable): the control loop stops,
    ``rcs robot`` closes everything and exits non-zero with one line naming the robot and the link."""
    emu = start_emulator("hw/so101")
    state, command = free_endpoints()
    proc = start_ready(
        [*RCS, "robot", "--config", str(REPO / "launch" / "robots" / "hw_so101.yaml"), *_options(emu)]
        + ["--state-endpoint", state, "--command-endpoint", command]
    )
    try:
        with RobotClient(command, state) as client:
            client.wait_for(b"state")
            emu.kill()
            proc.wait(timeout=30)
    finally:
        err = terminate(proc)
        emu.close()
    assert proc.returncode not in (0, None)
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("rcs robot: ") and "hw/so101" in last and emu.robot_config["port"] in last, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
