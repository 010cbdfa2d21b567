"""``rcs demo``'s flight part: the video shows the quadrotor large, and the flight reports its progress."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rcs.envs  # noqa: F401  (registers the env ids)
from rcs.cli import demo

RCS = str(Path(sys.executable).with_name("rcs"))


def _vehicle_pixels(config) -> np.ndarray:
    """Mask of the rendered frame's pixels the vehicle covers: the frame against the same frame with the vehicle's
    geoms made invisible (same state, same camera pose)."""
    env = gym.make("rcs/QuadrotorTrack-v0", config=config, render_mode="rgb_array")
    try:
        u = env.unwrapped
        env.reset(seed=1000)  # in the air at the start of the figure-eight
        with_vehicle = env.render().copy()
        model = u.robot.simulation.model
        body = model.body("crazyflie").id
        geoms = np.flatnonzero(model.geom_bodyid == body)
        model.geom_matid[geoms] = -1
        model.geom_rgba[geoms, 3] = 0.0
        without = env.render().copy()
    finally:
        env.close()
    return np.any(np.abs(with_vehicle.astype(int) - without.astype(int)) > 8, axis=-1)


def test_flight_video_camera_shows_the_vehicle_large():
    """The demo's flight camera follows the vehicle: it covers at least 1 % of the 640x480 frame and spans at
    least a tenth of its width (the fixed overview camera the demo used before showed it as a speck: about 150
    pixels, 0.05 %)."""
    mask = _vehicle_pixels(demo.flight_config(loops=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert mask.sum() >= 0.01 * mask.size, f"the quadrotor covers {mask.sum()} of {mask.size} pixels"
    assert cols.size and cols[-1] - cols[0] + 1 >= 0.1 * mask.shape[1], f"the quadrotor spans columns {cols[[0, -1]]}"


def test_flight_progress_lines_every_two_seconds_of_flight():
    lines: list[str] = []
    calls = []
    policy = demo.FlightProgress(
        lambda obs: calls.append(1) or np.zeros(4), dt=0.01, total_s=24.0, ramp_s=8.0, period_s=8.0, say=lines.append
    )
    obs = {"position": np.array([0.0, 0.0, 1.0]), "target_position": np.array([0.0, 0.003, 1.0])}
    for _ in range(2400):
        policy(obs)
    assert len(calls) == 2400
    assert len(lines) == 11  # t = 2, 4, ..., 22 s
    assert "flight   2.0/24.0 s (speed ramp), position error 3.0 mm" in lines[0]
    assert "(lap 1/2)" in lines[3] and "(lap 2/2)" in lines[-1]


def test_demo_json_keeps_stdout_pure_and_progress_on_stderr(capsys):
    args = argparse.Namespace(json=True)
    demo._progress(args, "  flight 2.0/24.0 s")
    demo._say(args, "not shown")
    out, err = capsys.readouterr()
    assert out == "" and err == "  flight 2.0/24.0 s\n"


@pytest.mark.slow
def test_demo_output_names_files_that_exist_and_reports_flight_progress(tmp_path):
    out = subprocess.run(
        [RCS, "demo", "--episodes", "1", "--loops", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    named = re.findall(r"(\S+\.mp4)", out.stdout)
    assert named, out.stdout
    for path in named:
        assert Path(path.rstrip(",;)")).exists(), f"{path} named in the output does not exist:\n{out.stdout}"
    assert "episode_1000.mp4" not in out.stdout
    assert len(re.findall(r"^  flight .* s \(", out.stdout, re.M)) >= 7, out.stdout
    assert "Svt[" not in out.stdout + out.stderr
    json.dumps(out.stdout)  # printable
