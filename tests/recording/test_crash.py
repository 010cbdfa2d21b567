"""SIGKILL a real ``rcs record`` process, then load what it saved with lerobot's LeRobotDataset.

Two kinds of kill: at each named point of the commit protocol (deterministic, through the fault-injection
variable of rcs.recording.storage), and at random moments (uniform over a recording). After every kill, every
episode the dataset's metadata lists must load (data and video frames), and none may be lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lerobot")

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

RCS = str(Path(sys.executable).with_name("rcs"))
RECORD = [
    "record",
    "--robot",
    "sim/panda",
    "--teleop",
    "expert",
    "--cameras",
    "front",
    "--image-size",
    "32x48",
    "--max-steps",
    "8",
    "--keep",
    "all",
    "--vcodec",
    "h264",
    "--json",
]


def _record(root: Path, episodes: int, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [RCS, *RECORD, "--episodes", str(episodes), "--root", str(root)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def _saved_lines(root: Path) -> list[dict]:
    p = root / "meta" / "rcs_episodes.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def _load_everything(root: Path) -> int:
    """Load with lerobot and read every frame (parquet rows and decoded video); returns the episode count."""
    ds = LeRobotDataset("local/ds", root=root)
    assert ds.num_frames == sum(int(x) for x in ds.meta.episodes["length"])
    for i in range(ds.num_frames):
        item = ds[i]
        assert item["observation.images.front"].shape == (3, 32, 48)
    lines = _saved_lines(root)
    assert [x["episode_index"] for x in lines] == list(range(ds.num_episodes)), "sidecar and dataset disagree"
    return ds.num_episodes


@pytest.mark.parametrize(
    ("point", "exchange", "before_repair", "after_repair"),
    [
        # the second episode's package was being written (its last frames were still being encoded, in effect):
        # the package is incomplete and deleted, the first episode is intact
        ("packaging", True, 1, 1),
        # from here on the second episode was durable as a package: recovery rolls it forward, whatever step of
        # the commit the kill interrupted, so only the episode still being recorded is lost
        ("packaged", True, 1, 2),
        pytest.param("packaged@0", True, None, 1, marks=pytest.mark.slow),  # first commit: no dataset folder yet
        pytest.param("cloned", True, 1, 2, marks=pytest.mark.slow),
        ("written", True, 1, 2),
        # the commit was durable (marker fsynced) but not swapped in: the folder still loads as it was, and
        # recovery finishes the commit, so the episode being committed is kept
        pytest.param("marked", True, 1, 2, marks=pytest.mark.slow),
        pytest.param("swapped", True, 2, 2, marks=pytest.mark.slow),
        ("between_renames", False, None, 2),  # fallback swap: folder missing for an instant, recovery completes it
        pytest.param("marked", False, 1, 2, marks=pytest.mark.slow),
    ],
)
def test_kill_at_each_commit_point_loses_nothing_saved(tmp_path, point, exchange, before_repair, after_repair):
    root = tmp_path / "ds"
    env = {"RCS_RECORD_KILL_AT": point if "@" in point else f"{point}@1"}
    if not exchange:
        env["RCS_RECORD_NO_EXCHANGE"] = "1"
    proc = _record(root, episodes=4, env=env)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    if before_repair is None:
        assert not root.exists()  # killed between the two renames, or before the first commit
    else:
        # without any repair, lerobot loads the folder as it is
        assert _load_everything(root) == before_repair
    out = subprocess.run(
        [RCS, "dataset", "repair", "--root", str(root), "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["episodes"] == after_repair
    assert _load_everything(root) == after_repair
    assert not (tmp_path / ".ds.rcs" / "staging").exists()
    assert not (tmp_path / ".ds.rcs" / "pending").exists()
    # and recording continues where it stopped
    proc = _record(root, episodes=1)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert _load_everything(root) == after_repair + 1


def _kill_at_random(root: Path, rng: random.Random, lo: float, hi: float) -> None:
    """Start a long recording; once it has saved an episode in this run, SIGKILL it ``uniform(lo, hi)`` s later."""
    before = len(_saved_lines(root))
    proc = _record(root, episodes=1000)
    deadline = time.monotonic() + 180
    while len(_saved_lines(root)) <= before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    time.sleep(rng.uniform(lo, hi))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _random_kills(tmp_path: Path, rounds: int, seed: int) -> list[int]:
    root = tmp_path / "ds"
    rng = random.Random(seed)
    counts = []
    for _ in range(rounds):
        _kill_at_random(root, rng, 0.0, 3.0)
        n = _load_everything(root) if root.exists() else 0
        assert n >= (counts[-1] if counts else 0), "a kill lost an episode saved before it"
        counts.append(n)
    return counts


def test_kill_at_random_moments_keeps_every_saved_episode(tmp_path):
    seed = int(time.time())
    counts = _random_kills(tmp_path, rounds=1, seed=seed)
    assert counts[-1] > 0, f"seed {seed}: no episode survived: {counts}"


@pytest.mark.slow
def test_kill_at_random_moments_many_rounds(tmp_path):
    counts = _random_kills(tmp_path, rounds=12, seed=12345)
    assert counts[-1] > counts[0]
