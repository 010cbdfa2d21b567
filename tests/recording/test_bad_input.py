"""Bad input during a recording: a camera that stops delivering, a device unplugged mid-episode, a full disk.

Each gives a clear message, discards the episode in progress (docs/record.md, keep/discard rule) and leaves every
saved episode loadable.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot")

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from rcs.devices import Camera  # noqa: E402
from rcs.recording.session import CameraSet, RecordSession  # noqa: E402
from rcs.teleop.keyboard import INPUT_EVENT, KeyboardTeleop  # noqa: E402
from rcs.types import CameraFrame  # noqa: E402

from .helpers import expert_for, layout_for, make_env, new_recorder, open_cameras, record_episode  # noqa: E402


class _StallingCamera(Camera):
    """A camera driver that, like a stalled USB camera, keeps returning its last frame after ``after`` reads."""

    def __init__(self, inner: Camera, after: int) -> None:
        super().__init__(inner.spec)
        self.inner, self.after, self.reads, self.last = inner, after, 0, None

    def _connect(self) -> None:
        self.inner.connect()

    def _close(self) -> None:
        self.inner.close()

    def _read(self) -> CameraFrame:
        self.reads += 1
        if self.last is None or self.reads <= self.after:
            self.last = self.inner.read()
        return self.last


def test_camera_that_stops_delivering_discards_the_episode_keeps_saved(tmp_path):
    env = make_env(steps=12)
    cams = open_cameras(env, ["front"])
    stalling = _StallingCamera(cams["front"], after=12 + 12 + 5)  # fails 5 frames into the third episode
    stalling.connect()
    layout = layout_for(env, cams)
    rec = new_recorder(tmp_path / "ds", layout)
    session = RecordSession(
        env, expert_for(env), rec, layout, CameraSet({"front": stalling}, max_age=0.2), "t", episodes=5
    )
    stalled = threading.Event()

    def age_the_frame():  # real time passes while the driver returns its stale frame
        while not stalled.is_set():
            time.sleep(0.01)
            if stalling.reads > stalling.after:
                time.sleep(0.3)
                stalled.set()

    watcher = threading.Thread(target=age_the_frame)
    watcher.start()
    orig = stalling._read

    def slow_read():
        frame = orig()
        if stalling.reads > stalling.after:
            stalled.wait(5)
        return frame

    stalling._read = slow_read
    try:
        result = session.run()
    finally:
        stalled.set()
        watcher.join()
        rec.close()
        stalling.close()
        env.close()
    assert result.stopped_by.startswith("device failure: camera 'front' stopped delivering: newest frame is")
    saved = [r for r in result.reports if r.saved]
    assert len(saved) == 2
    assert result.reports[-1].reason.startswith("device failure: camera 'front' stopped delivering")
    assert LeRobotDataset("local/ds", root=tmp_path / "ds").num_episodes == 2


def test_keyboard_unplugged_mid_episode_discards_it_keeps_saved(tmp_path):
    env = make_env(steps=10)
    layout = layout_for(env, {})
    root = tmp_path / "ds"
    with new_recorder(root, layout) as rec:  # one episode saved before the keyboard session
        record_episode(env, expert_for(env), rec, layout, {}, seed=0)
        rec.save_episode().result()
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    kb = KeyboardTeleop(device=str(fifo))
    kb.connect()
    writer = os.open(fifo, os.O_WRONLY)
    os.write(writer, INPUT_EVENT.pack(0, 0, 1, 28, 1) + INPUT_EVENT.pack(0, 0, 1, 28, 0))  # Enter: start

    def unplug():
        time.sleep(0.3)
        os.close(writer)

    rec = new_recorder(root, layout)
    t = threading.Thread(target=unplug)
    t.start()
    try:
        result = RecordSession(env, kb, rec, layout, CameraSet({}), "t", episodes=3).run()
    finally:
        t.join()
        rec.close()
        kb.close()
        env.close()
    assert result.stopped_by.startswith("device failure: teleop 'keyboard': NotConnectedError: keyboard")
    assert result.reports[-1].saved is False and result.reports[-1].frames > 0
    assert LeRobotDataset("local/ds", root=root).num_episodes == 1


@pytest.fixture
def small_disk():
    mnt = Path(f"/tmp/rcs-small-{uuid.uuid4().hex[:8]}")
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs to fill ({out.stderr.strip()}); needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)  # lazy: lerobot may still hold a memory map
    try:
        mnt.rmdir()
    except OSError:
        pass


def test_full_disk_fails_the_episode_clearly_and_keeps_saved(small_disk):
    env = make_env(steps=12)
    cams = open_cameras(env, ["front"], size=(96, 128))
    layout = layout_for(env, cams, size=(96, 128))
    root = small_disk / "ds"
    try:
        with new_recorder(root, layout) as rec:
            record_episode(env, expert_for(env), rec, layout, cams, seed=0)
            assert rec.save_episode().result().saved
            filler = small_disk / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk ...
            try:
                while True:
                    os.write(fd, b"\1" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            os.truncate(filler, filler.stat().st_size - 8192)  # ... but for a few kilobytes: not enough for an episode
            record_episode(env, expert_for(env), rec, layout, cams, seed=1)
            report = rec.save_episode().result()
            assert not report.saved
            assert report.reason.startswith("disk full") and "the 1 saved episodes are intact" in report.reason
            assert rec.fatal == report.reason
        filler.unlink()
        ds = LeRobotDataset("local/ds", root=root)
        assert ds.num_episodes == 1 and ds[0]["observation.images.front"].shape == (3, 96, 128)
        work = small_disk / ".ds.rcs"
        assert not (work / "staging").exists()
        assert not (work / "encoding").exists() or not any((work / "encoding").iterdir())
        assert np.isfinite(ds[ds.num_frames - 1]["observation.state"].numpy()).all()
    finally:
        for c in cams.values():
            c.close()
        env.close()
