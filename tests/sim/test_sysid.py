"""rcs sysid: a joint log of the shifted simulator (reality-a) in, its hidden servo and latency values out; real
MuJoCo replays, real CMA-ES, real LeRobot datasets, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rcs.registry import make_robot
from sim.mujoco.shifts import REALITY_A
from sim.sysid.excite import MARGIN, excitation

RCS = str(Path(sys.executable).with_name("rcs"))


def _rcs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RCS, "sysid", *args], capture_output=True, text=True, timeout=900, check=False)


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_sysid_recovers_the_hidden_servo_and_latency_of_reality_a(tmp_path: Path) -> None:
    log = tmp_path / "log"
    collected = _json(
        _rcs("--collect", str(log), "--shift", "reality-a", "--episodes", "2", "--seconds", "3", "--json")
    )
    assert collected["episodes"] == 2 and collected["shift"] == "reality-a"
    out = tmp_path / "calibrated.json"
    result = _json(_rcs("--log", str(log), "--out", str(out), "--json"))
    assert json.loads(out.read_text()) == result
    hidden = REALITY_A.robot_config
    p = result["parameters"]
    assert p["actuator_gain"]["value"] == pytest.approx(hidden["randomization"]["actuator_gain"][0], rel=0.03), p
    damping = hidden["randomization"]["extra"]["actuator_damping"][0]
    assert p["actuator_damping"]["value"] == pytest.approx(damping, rel=0.03), p
    assert p["actuation_delay_s"]["value"] == pytest.approx(hidden["actuation_delay_s"], abs=0.002), p
    for name in p:
        assert 0 < p[name]["std"] < 0.05 * max(p[name]["value"], 0.01), (name, p[name])
    # the nominal simulator diverges from the log by centiradians, the calibrated one by the encoder noise (2e-4)
    d = result["divergence_rad"]
    assert d["before"] > 0.01 and d["after"] < 3e-4, d
    assert set(result["not_identified"]) == {"friction", "object_mass"}
    calibrated = make_robot("sim/panda", **result["robot_config"])  # the written options build the robot
    calibrated.simulation.close()


def test_sysid_refuses_a_log_of_another_robot_and_a_missing_one(tmp_path: Path) -> None:
    log = tmp_path / "so101"
    _json(_rcs("--collect", str(log), "--robot", "sim/so101", "--episodes", "1", "--seconds", "0.3", "--json"))
    wrong = _rcs("--log", str(log), "--robot", "sim/panda", "--iterations", "1")
    assert wrong.returncode != 0 and "a log of another robot" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    missing = _rcs("--log", str(tmp_path / "nope"), "--iterations", "1")
    assert missing.returncode != 0 and "not a LeRobot dataset" in missing.stderr
    again = _rcs("--collect", str(log), "--episodes", "1")
    assert again.returncode != 0 and "already exists" in again.stderr


def test_excitation_starts_at_home_at_rest_and_stays_inside_the_limits() -> None:
    arm = make_robot("sim/panda")
    spec = arm.spec
    arm.simulation.close()
    q = excitation(spec, 6.0, 100, np.random.default_rng(0))
    assert q.shape == (600, spec.dof)
    np.testing.assert_allclose(q[0], spec.home, atol=1e-12)
    np.testing.assert_allclose(q[1], spec.home, atol=1e-4)  # the ramp starts flat
    assert np.all(q >= spec.lower + MARGIN - 1e-12) and np.all(q <= spec.upper - MARGIN + 1e-12)
    assert np.ptp(q[100:], axis=0).min() > 0.05  # every joint moves
