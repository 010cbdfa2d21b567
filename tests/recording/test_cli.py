"""``rcs record`` as users run it (a real subprocess), then ``rcs dataset info`` / ``rcs replay`` through the same
``main()`` in-process (saves an interpreter start with lerobot's imports per call)."""

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


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from rcs.cli.main import main

    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse and unknown names
        rc = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "pick"
    out = _run(
        "record",
        "--teleop",
        "expert",
        "--episodes",
        "2",
        "--root",
        str(root),
        "--cameras",
        "none",
        "--max-steps",
        "30",
        "--keep",
        "all",
        "--seed",
        "4",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["saved_this_session"] == 2 and summary["episodes_total"] == 2
    assert [r["info"]["seed"] for r in summary["reports"]] == [4, 5]
    return root


def test_dataset_info_reports_episodes_features_stats(dataset, capsys):
    rc, out, err = _main(capsys, "dataset", "info", "--root", str(dataset), "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["episodes"] == 2 and info["episode_lengths"] == [30, 30] and info["fps"] == 20
    assert info["features"]["action"]["names"] == ["x", "y", "z", "rx", "ry", "rz", "gripper"]
    assert len(info["stats"]["observation.state"]["mean"]) == 15
    assert info["recording"]["env_id"] == "rcs/PandaPickCube-v0" and info["recording"]["teleop"] == "expert"
    rc, out, _ = _main(capsys, "dataset", "info", "--root", str(dataset))
    assert rc == 0 and "episodes: 2, frames: 60" in out


def test_replay_reproduces_the_recording(dataset, capsys):
    rc, out, err = _main(capsys, "replay", "--root", str(dataset), "--episode", "1", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["seed"] == 5 and r["frames"] == 30
    assert r["initial_error"]["cube_m"] < 1e-6 and r["initial_error"]["joint_rad"] < 1e-6
    # the simulator is deterministic: the recorded actions reproduce the recorded states (float32 storage)
    assert r["joint_error_rad"]["max"] < 1e-5 and r["tcp_error_m"]["max"] < 1e-5


def test_clear_errors_for_bad_arguments(dataset, tmp_path, capsys):
    rc, _, err = _main(capsys, "replay", "--root", str(dataset), "--episode", "9")
    assert rc == 1 and "episode=9: the dataset has episodes 0..1" in err
    rc, _, err = _main(capsys, "dataset", "info", "--root", str(tmp_path / "nothing"))
    assert rc == 2 and "does not exist (no episode has been saved there)" in err  # an argument error, as argparse's
    (tmp_path / "empty").mkdir()
    rc, _, err = _main(capsys, "dataset", "info", "--root", str(tmp_path / "empty"))
    assert rc == 2 and "is not a LeRobot dataset" in err
    rc, _, err = _main(capsys, "record", "--teleop", "nope", "--root", str(tmp_path / "x"), "--cameras", "none")
    assert rc == 2 and "rcs record: unknown teleop 'nope'; known teleops: expert" in err
    assert not (tmp_path / "x").exists()
    rc, _, err = _main(
        capsys, "record", "--root", str(tmp_path / "y"), "--cameras", "none", "--end-after-success", "nan"
    )
    assert rc == 2 and "--end-after-success=nan: a duration in s, >= 0" in err
    assert not (tmp_path / "y").exists()


def test_episodes_end_after_the_task_succeeded_for_the_given_time(tmp_path):
    """The expert reaches the goal in ~70-120 steps of 200: with --end-after-success 0.5 each saved episode ends
    0.5 s (10 steps at 20 Hz) after the first successful step, and its last 10 frames are all at the goal."""
    import numpy as np
    import pandas as pd

    root = tmp_path / "short"
    out = _run(
        "record",
        "--teleop",
        "expert",
        "--episodes",
        "2",
        "--root",
        str(root),
        "--cameras",
        "none",
        "--seed",
        "4",
        "--end-after-success",
        "0.5",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    frames = pd.concat(pd.read_parquet(f) for f in sorted(root.glob("data/*/*.parquet")))
    for _, ep in frames.groupby("episode_index"):
        env_state = np.stack(ep["observation.environment_state"].to_numpy())
        # the step's success is judged on the observation after it: frame k+1 holds that observation
        at_goal = np.linalg.norm(env_state[:, 0:3] - env_state[:, 7:10], axis=1) < 0.03
        first = int(np.argmax(at_goal))
        assert at_goal.any() and len(ep) < 200
        assert len(ep) == first + 10, (len(ep), first)
        assert at_goal[first:].all()
