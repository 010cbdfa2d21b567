"""Keyboard episode controls end to end: key bytes on a real pty drive a real recording session (sim Panda,
real-time pacing, real writer) through start, jog, save, re-record, discard and quit."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("lerobot")

from gymnasium.envs.registration import load_env_creator  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

import rcs.envs  # noqa: E402,F401
from rcs.recording.features import ACTION, FeatureLayout  # noqa: E402
from rcs.recording.session import CameraSet, RecordSession  # noqa: E402
from rcs.recording.writer import Recorder  # noqa: E402
from rcs.teleop.keyboard import KeyboardTeleop  # noqa: E402


def test_keyboard_controls_start_save_rerecord_discard_quit(tmp_path):
    import gymnasium as gym

    spec = gym.spec("rcs/PandaPickCube-v0")
    env = load_env_creator(spec.entry_point)(**{**spec.kwargs, "max_episode_steps": 1000})
    master, slave = os.openpty()
    kb = KeyboardTeleop(tty=os.ttyname(slave), hold_s=0.15)
    layout = FeatureLayout.for_env(env)
    root = tmp_path / "ds"
    rec = Recorder(root, fps=20, features=layout.features(), recording={"env_id": "rcs/PandaPickCube-v0"})
    script = [  # (seconds after start, bytes typed)
        (0.4, b"\r"),  # start episode (seed 5)
        *[(0.5 + 0.1 * i, b"w") for i in range(6)],  # jog +x, with terminal auto-repeat every 0.1 s
        (1.4, b"\r"),  # stop and save
        (1.8, b"\r"),
        (2.2, b"\x7f"),  # start, re-record (same scene, seed 6)
        (2.6, b"\r"),
        (3.0, b"\x1b[3~"),  # start, discard (next scene, seed 7)
        (3.4, b"\r"),
        (3.8, b"\x1b"),  # start, quit
    ]

    def typist() -> None:
        t0 = time.monotonic()
        for at, data in script:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            os.write(master, data)

    try:
        with kb:
            session = RecordSession(env, kb, rec, layout, CameraSet({}), "move forward", episodes=5, first_seed=5)
            thread = threading.Thread(target=typist)
            thread.start()
            result = session.run()
            thread.join()
        rec.close()
    finally:
        env.close()
        os.close(master)
        os.close(slave)
    assert result.stopped_by == "quit"
    outcomes = [(r.saved, r.reason, r.info.get("seed")) for r in result.reports]
    assert outcomes == [
        (True, "", 5),
        (False, "re-record requested", 6),
        (False, "discarded by the operator", 6),
        (False, "quit during the episode", 7),
    ]
    ds = LeRobotDataset("local/ds", root=root)
    assert ds.num_episodes == 1
    x = np.asarray(ds.hf_dataset.with_format("numpy")[ACTION])[:, 0]
    assert 0.04 < x[-1] - x[0] < 0.1, f"+x jog of ~0.6-0.75 s at 0.1 m/s expected, got {x[-1] - x[0]:.3f} m"
    assert 10 <= ds.num_frames <= 24  # about one second at 20 Hz
    lines = [json.loads(s) for s in (root / "meta" / "rcs_episodes.jsonl").read_text().splitlines()]
    assert [x["seed"] for x in lines] == [5]
