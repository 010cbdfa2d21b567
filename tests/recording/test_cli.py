"""``rcs record`` / ``rcs dataset info`` / ``rcs replay`` as users run them (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lerobot")

RCS = str(Path(sys.executable).with_name("rcs"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RCS, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "pick"
    out = _run("record", "--teleop", "expert", "--episodes", "2", "--root", str(root), "--cameras", "none",
               "--max-steps", "30", "--keep", "all", "--seed", "4", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["saved_this_session"] == 2 and summary["episodes_total"] == 2
    assert [r["info"]["seed"] for r in summary["reports"]] == [4, 5]
    return root


def test_dataset_info_reports_episodes_features_stats(dataset):
    out = _run("dataset", "info", "--root", str(dataset), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["episodes"] == 2 and info["episode_lengths"] == [30, 30] and info["fps"] == 20
    assert info["features"]["action"]["names"] == ["x", "y", "z", "rx", "ry", "rz", "gripper"]
    assert len(info["stats"]["observation.state"]["mean"]) == 15
    assert info["recording"]["env_id"] == "rcs/PandaPickCube-v0" and info["recording"]["teleop"] == "expert"
    text = _run("dataset", "info", "--root", str(dataset))
    assert "episodes: 2, frames: 60" in text.stdout


def test_replay_reproduces_the_recording(dataset):
    out = _run("replay", "--root", str(dataset), "--episode", "1", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["seed"] == 5 and r["frames"] == 30
    assert r["initial_error"]["cube_m"] < 1e-6 and r["initial_error"]["joint_rad"] < 1e-6
    # the simulator is deterministic: the recorded actions reproduce the recorded states (float32 storage)
    assert r["joint_error_rad"]["max"] < 1e-5 and r["tcp_error_m"]["max"] < 1e-5


def test_clear_errors_for_bad_arguments(dataset, tmp_path):
    out = _run("replay", "--root", str(dataset), "--episode", "9")
    assert out.returncode == 1 and "episode=9: the dataset has episodes 0..1" in out.stderr
    out = _run("dataset", "info", "--root", str(tmp_path / "nothing"))
    assert out.returncode == 1 and "is not a LeRobot dataset" in out.stderr
    out = _run("record", "--teleop", "nope", "--root", str(tmp_path / "x"), "--cameras", "none")
    assert out.returncode != 0 and "unknown teleop 'nope'; known teleops: expert" in out.stderr
    assert not (tmp_path / "x").exists()
