"""`rcs eval --robot isaac/panda`: the shipped checkpoint served from the main venv (lerobot), the episodes run in
.venv-isaac (no lerobot), over ZeroMQ; plus the option's bad input and the pacing a slow simulator needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rcs.control.loop import ControlLoop, ScaledPacer
from rcs.loopback import free_endpoint
from tests.isaac.conftest import REPO

RCS = str(Path(sys.executable).with_name("rcs"))
CHECKPOINT = REPO / "policies" / "checkpoints" / "pick_cube_rcs_diffusion"


def _one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_an_unknown_robot_is_one_line_listing_the_known_robots(tmp_path: Path) -> None:
    out = subprocess.run(
        [RCS, "eval", "--policy", str(CHECKPOINT), "--robot", "nope/arm", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # (isaac/panda is listed too where the editable install has its entry point: .venv-isaac, a fresh .venv)
    _one_line_error(out, "--robot", "nope/arm", "unknown robot; known robots:", "sim/panda")
    assert not (tmp_path / "server.log").exists()  # refused before a server was started


def test_a_realtime_factor_above_one_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [RCS, "eval", "--policy", str(CHECKPOINT), "--realtime-factor", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(out, "--realtime-factor", "<= 1")


class _SlowSim:
    """A simulated robot whose physics runs at a quarter of real time (as Isaac Lab does on one CPU core)."""

    def __init__(self) -> None:
        self.sim_time = 0.0
        self.advances: list[float] = []

    def advance(self, dt: float) -> None:
        time.sleep(4.0 * dt)
        self.advances.append(dt)
        self.sim_time += dt

    def reset(self, seed: int | None = None) -> None:
        self.sim_time = 0.0


class _Task:
    def read(self, tick: int) -> int:
        return tick

    def compute(self, tick: int, state: int) -> int:
        return tick

    def write(self, tick: int, command: int) -> None:
        pass


def test_scaled_pacing_advances_a_slow_simulator_one_period_per_tick() -> None:
    """Paced in real time, a simulator slower than real time is advanced by ever more periods per tick (the
    skipped deadlines); paced at a factor it can keep up with, or even one it cannot, by one period each."""
    rate = 100.0
    for factor in (0.5, 0.1):
        sim = _SlowSim()
        stats = ControlLoop(_Task(), rate, robot=sim, rt=None, pacer=ScaledPacer(factor), log_every_s=0).run(ticks=12)
        assert stats.missed_ticks == 0
        assert np.allclose(sim.advances, 1.0 / rate), sim.advances
    sim = _SlowSim()
    ControlLoop(_Task(), rate, robot=sim, rt=None, log_every_s=0).run(ticks=4)  # grows 4x per tick
    assert max(sim.advances) > 2.5 / rate, sim.advances  # the default pacer bursts: why --realtime-factor exists


@pytest.fixture
def served_checkpoint(tmp_path: Path):
    """The shipped checkpoint served by the main venv's `rcs serve` (lerobot lives there only)."""
    endpoint = free_endpoint()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [RCS, "serve", "--policy", str(CHECKPOINT), "--bind", endpoint],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_eval_of_the_shipped_checkpoint_on_isaac_through_a_served_policy(
    isaac_venv: Path, served_checkpoint: str, tmp_path: Path
) -> None:
    out = subprocess.run(
        [
            str(isaac_venv.with_name("rcs")),
            *f"eval --policy {CHECKPOINT} --endpoint {served_checkpoint} --robot isaac/panda --episodes 1".split(),
            *f"--seed 10000 --realtime-factor 0.15 --videos 0 --out {tmp_path / 'eval'} --json".split(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["robot"] == "isaac/panda" and summary["episodes"] == 1 and summary["realtime_factor"] == 0.15
    assert summary["requests"] > 5  # the served policy drove the episode, chunk after chunk
    reason = summary["failures"].get("10000", "success")
    assert reason in ("success", "timeout") or reason.startswith("terminated"), reason  # never "no valid chunk"
    detail = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert detail["per_episode"]["10000"]["missed_ticks"] == 0  # one period of physics per tick
    check = subprocess.run(
        [str(isaac_venv), "-c", "import importlib.util as u; print(u.find_spec('lerobot') is None)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "True"  # the episodes ran where lerobot is not even installed
