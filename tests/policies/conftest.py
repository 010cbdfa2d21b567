"""Fixtures of the policy tests: a tiny dataset recorded by `rcs record` and a checkpoint trained by `rcs train`.

Both are made once per session with the project's own commands (real subprocesses), kept tiny: 2 expert
episodes of 30 steps with one 32x32 camera, a policy with a handful of training steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RCS = str(Path(sys.executable).with_name("rcs"))
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}

#: a small, fast policy for tests (the defaults are the shipped sizes)
TINY_POLICY = {
    "vision_channels": 8,
    "vision_dim": 16,
    "state_hidden": 32,
    "cond_dim": 32,
    "head_hidden": 32,
    "head_layers": 1,
    "horizon": 4,
    "n_action_steps": 2,
    "image_size": 32,
    "num_inference_steps": 2,
}
TINY = [a for k, v in TINY_POLICY.items() for a in ("--set", f"{k}={v}")]


def rcs(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess:
    """Run the `rcs` command; fail the test with its output if it fails."""
    proc = subprocess.run([RCS, *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"rcs {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def its_base_server(proc: subprocess.Popen, line: str) -> int:
    """The process id of the `rcs serve` child of ``proc`` (a training run's base)."""
    servers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "rcs.cli.main serve"], capture_output=True, text=True)
    pids = [int(p) for p in servers.stdout.split()]
    assert len(pids) == 1, (servers.stdout, line)
    return pids[0]


def train_residual_killing(
    args: list[str], marker: str, env: dict[str, str], victim: Callable[[subprocess.Popen, str], int] = its_base_server
) -> tuple[int, str, str]:
    """Run `rcs train-residual ARGS` and SIGKILL the process ``victim(run, line)`` names as soon as a stderr
    ``line`` contains ``marker`` (by default the run's base server); returns (exit code, stdout, stderr)."""
    import signal

    proc = subprocess.Popen(
        [RCS, "train-residual", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        err = []
        for line in proc.stderr:
            err.append(line)
            if marker in line:
                break
        os.kill(victim(proc, "".join(err)), signal.SIGKILL)
        stdout, rest = proc.communicate(timeout=900)
    finally:
        proc.kill()
    return proc.returncode, stdout, "".join(err) + rest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "pick"
    rcs(
        "record",
        "--robot",
        "sim/panda",
        "--teleop",
        "expert",
        "--episodes",
        "2",
        "--root",
        str(root),
        "--cameras",
        "front",
        "--image-size",
        "32x32",
        "--max-steps",
        "30",
        "--keep",
        "all",
        "--vcodec",
        "h264",
        "--json",
    )
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    rcs(
        "train",
        "--dataset",
        str(tiny_dataset),
        "--output",
        str(run),
        "--steps",
        "4",
        "--save-every",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--joint-targets",
        "--relative",
        "--ignore-entry",
        "tcp_qw",
        "--no-progress",
        *TINY,
    )
    return run


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "last" / "pretrained_model"


@pytest.fixture(scope="session")
def tiny_pose_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny policy that outputs TCP poses (--pose-targets): the robot side converts them with the arm's IK."""
    run = tmp_path_factory.mktemp("runs") / "tiny_pose"
    rcs(
        "train",
        "--dataset",
        str(tiny_dataset),
        "--output",
        str(run),
        "--steps",
        "2",
        "--save-every",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--pose-targets",
        "--ignore-entry",
        "tcp_qw",
        "--no-progress",
        *TINY,
    )
    return run / "checkpoints" / "last" / "pretrained_model"
