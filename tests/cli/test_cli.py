"""The ``rcs`` command line, run as users run it (a real subprocess of the installed entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RCS = str(Path(sys.executable).with_name("rcs"))


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([RCS, *args], capture_output=True, text=True, timeout=timeout)


def test_list_shows_every_plugin_kind():
    out = _run("list", "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert {"sim/panda", "sim/so101", "sim/crazyflie"} <= set(found["robots"])
    assert {"loop", "chunks", "sim"} <= set(found["benchmarks"])
    assert "rcs/QuadrotorTrack-v0" in found["envs"]


def test_bench_sim_prints_one_json_object():
    out = _run("bench", "sim", "--json", "--steps", "30", "--rounds", "1")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for case in ("arm", "quadrotor", "reference_gymnasium_pusher_v5"):
        r = result[case]
        assert r["raw_steps_per_s"] > 0 and r["env_steps_per_s"] > 0
        assert abs(r["overhead"] - (r["raw_steps_per_s"] / r["env_physics_steps_per_s"] - 1.0)) < 1e-3


def test_unknown_command_and_benchmark_fail_clearly():
    out = _run("fly")
    assert out.returncode == 2 and "invalid choice: 'fly'" in out.stderr
    out = _run("bench", "nope")
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr and "sim" in out.stderr


def test_demo_runs_end_to_end(tmp_path):
    out = _run("demo", "--episodes", "1", "--loops", "1", "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # The pick-cube part serves the shipped learned checkpoint (no longer the scripted expert, which this test
    # used to run at 100 %): its success rate is a measured result (rcs eval over 50 unseen seeds,
    # docs/benchmarks.md), not something one episode can assert. What must hold: the episode ran through
    # `rcs serve` + the control loop, every chunk was accepted, and an unsuccessful episode ended by timeout,
    # never by a fault.
    pick = result["pick_cube"]
    # a chunk was asked for every replan_steps env steps of the episode (a successful episode can be short)
    assert pick["episodes"] == 1 and pick["policy_latency_ms"]["p50"] > 0
    assert pick["requests"] >= max(1, int(pick["mean_steps"]) // pick["replan_steps"]), pick
    assert pick["chunk_rejections"] == {} and 0.0 <= pick["success_rate"] <= 1.0
    assert set(pick["failures"].values()) <= {"timeout"}, pick["failures"]
    assert result["quadrotor"]["completed"] and result["quadrotor"]["tracking_error_rms_m"] < 0.01
    for video in (tmp_path / "pick_cube.mp4", tmp_path / "quadrotor_figure_eight.mp4"):
        assert video.stat().st_size > 10_000


def test_rcs_errors_are_one_line_not_tracebacks():
    out = subprocess.run([RCS, "serve", "--policy", "/nonexistent/ckpt"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "policy='/nonexistent/ckpt'" in out.stderr
