"""Record in simulation with the real writer -> load with lerobot's LeRobotDataset -> values match.

Also: discard and re-record leave no trace, appending continues the dataset, and a dataset from another
format version is refused without touching it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("lerobot")

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from rcs.recording.features import ACTION, CAPTURE_TIME, ENV_STATE, IMAGE_PREFIX, STATE  # noqa: E402
from rcs.recording.writer import IncompatibleDatasetError  # noqa: E402

from .helpers import TASK, expert_for, files, layout_for, make_env, new_recorder, open_cameras, record_episode  # noqa: E402


@pytest.fixture
def env():
    e = make_env(steps=25)
    yield e
    e.close()


def test_state_only_round_trip_values_counts_timestamps(tmp_path, env):
    root = tmp_path / "ds"
    layout = layout_for(env, {})
    expert = expert_for(env)
    recorded = []
    with new_recorder(root, layout) as rec:
        for seed in (3, 4):
            recorded.append(record_episode(env, expert, rec, layout, {}, seed))
            rec.save_episode(seed=seed).result()
    ds = LeRobotDataset("local/ds", root=root)
    assert ds.num_episodes == 2 and ds.num_frames == sum(len(e) for e in recorded) == 50
    assert ds.fps == 20
    names = ds.meta.features[STATE]["names"]
    assert names[:7] == list(env.arm.spec.joint_names) and names[7:] == [
        "gripper",
        "tcp_x",
        "tcp_y",
        "tcp_z",
        "tcp_qw",
        "tcp_qx",
        "tcp_qy",
        "tcp_qz",
    ]
    assert ds.meta.features[ACTION]["names"] == ["x", "y", "z", "rx", "ry", "rz", "gripper"]
    i = 0
    for ep, frames in enumerate(recorded):
        capture = []
        for k, frame in enumerate(frames):
            item = ds[i]
            assert int(item["episode_index"]) == ep and int(item["frame_index"]) == k
            assert float(item["timestamp"]) == pytest.approx(k / 20)
            for key in (STATE, ENV_STATE, ACTION):
                np.testing.assert_array_equal(item[key].numpy(), frame[key])
            assert item["task"] == TASK
            capture.append(float(item[CAPTURE_TIME]))
            i += 1
        assert np.all(np.diff(capture) > 0), "measured capture times must increase within an episode"
    lines = [json.loads(x) for x in (root / "meta" / "rcs_episodes.jsonl").read_text().splitlines()]
    assert [x["seed"] for x in lines] == [3, 4]
    # capture times are stored relative to the episode's first capture, whose monotonic time is in the sidecar
    for line, frames in zip(lines, recorded, strict=True):
        assert line["capture_time_origin"] == pytest.approx(frames[0][CAPTURE_TIME][0], abs=1e-9)
    assert json.loads((root / "meta" / "rcs_recording.json").read_text())["control_mode"] == "cartesian"


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_cameras_round_trip_video_frames(tmp_path, env, backend):
    root = tmp_path / "cams"
    cams = open_cameras(env, ["front", "wrist"])
    layout = layout_for(env, cams)
    try:
        with new_recorder(root, layout, backend=backend) as rec:
            frames = record_episode(env, expert_for(env), rec, layout, cams, seed=7)
            report = rec.save_episode().result()
        assert report.saved, report.reason
        ds = LeRobotDataset("local/cams", root=root)
        assert ds.num_frames == len(frames)
        for k in (0, len(frames) // 2, len(frames) - 1):
            item = ds[k]
            for name in ("front", "wrist"):
                decoded = item[IMAGE_PREFIX + name].numpy().transpose(1, 2, 0) * 255.0
                original = frames[k][IMAGE_PREFIX + name].astype(np.float64)
                assert decoded.shape == original.shape == (48, 64, 3)
                # lossy H.264: close on average, and far closer than a different frame of the other camera
                err = np.abs(decoded - original).mean()
                other = "wrist" if name == "front" else "front"
                assert err < 8.0, f"{name} frame {k}: mean abs error {err:.1f} levels"
                assert err < np.abs(decoded - frames[k][IMAGE_PREFIX + other]).mean()
            t = item[CAPTURE_TIME].numpy()  # s since the episode's first capture
            assert t.shape == (3,) and np.all(t >= 0) and (k > 0 or t.min() == 0.0)
    finally:
        for c in cams.values():
            c.close()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_discard_and_rerecord_leave_no_trace(tmp_path, env, backend):
    root = tmp_path / "ds"
    cams = open_cameras(env, ["front"])
    layout = layout_for(env, cams)
    expert = expert_for(env)
    try:
        with new_recorder(root, layout, backend=backend) as rec:
            record_episode(env, expert, rec, layout, cams, seed=1)
            rec.save_episode().result()
            before = files(root)
            record_episode(env, expert, rec, layout, cams, seed=2)
            rec.discard_episode("operator")  # discard
            assert files(root) == before
            record_episode(env, expert, rec, layout, cams, seed=2)
            rec.discard_episode("re-record requested")  # re-record: discard, then the same scene again
            assert files(root) == before
            again = record_episode(env, expert, rec, layout, cams, seed=2)
            rec.save_episode().result()
        ds = LeRobotDataset("local/ds", root=root)
        assert ds.num_episodes == 2 and list(ds.meta.episodes["episode_index"]) == [0, 1]
        assert ds.meta.episodes[1]["length"] == len(again)
        np.testing.assert_array_equal(ds[ds.meta.episodes[1]["dataset_from_index"]][STATE].numpy(), again[0][STATE])
    finally:
        for c in cams.values():
            c.close()


def test_append_session_continues_the_dataset(tmp_path, env):
    root = tmp_path / "ds"
    layout = layout_for(env, {})
    for session, seed in enumerate((10, 11)):
        with new_recorder(root, layout) as rec:
            assert rec.episodes_saved == session
            record_episode(env, expert_for(env), rec, layout, {}, seed)
            assert rec.save_episode().result().saved
    ds = LeRobotDataset("local/ds", root=root)
    assert ds.num_episodes == 2 and ds.num_frames == 50
    assert list(ds.hf_dataset["index"]) == list(range(50))


def test_other_format_version_is_refused_and_untouched(tmp_path, env):
    root = tmp_path / "ds"
    layout = layout_for(env, {})
    with new_recorder(root, layout) as rec:
        record_episode(env, expert_for(env), rec, layout, {}, 0)
        rec.save_episode().result()
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    before = files(root)
    with pytest.raises(IncompatibleDatasetError, match=r"codebase_version='v2.1'.*v3.0"):
        new_recorder(root, layout)
    assert files(root) == before


def test_mismatched_features_and_bad_frames_are_named(tmp_path, env):
    root = tmp_path / "ds"
    layout = layout_for(env, {})
    with new_recorder(root, layout) as rec:
        record_episode(env, expert_for(env), rec, layout, {}, 0)
        rec.save_episode().result()
        rec.start_episode(TASK)
        obs, _ = env.reset(seed=0)
        from rcs.recording.features import frame_features

        frame = frame_features(layout, obs, np.zeros(7, np.float32), [1.0])
        frame[STATE] = frame[STATE].copy()
        frame[STATE][2] = np.nan
        with pytest.raises(ValueError, match="observation.state: non-finite"):
            rec.add_frame(frame)
        with pytest.raises(ValueError, match=r"missing features \['action'\]"):
            rec.add_frame({k: v for k, v in frame.items() if k != ACTION})
        rec.discard_episode()
    cams = open_cameras(env, ["front"])
    try:
        with pytest.raises(IncompatibleDatasetError, match="observation.images.front"):
            new_recorder(root, layout_for(env, cams))
    finally:
        for c in cams.values():
            c.close()
    with pytest.raises(IncompatibleDatasetError, match="fps=20 in the dataset"):
        new_recorder(root, layout, fps=30)


def test_second_recorder_on_the_same_folder_is_refused(tmp_path, env):
    from rcs.recording.storage import DatasetLockedError

    layout = layout_for(env, {})
    with new_recorder(tmp_path / "ds", layout):
        with pytest.raises(DatasetLockedError, match="is being written by another process"):
            new_recorder(tmp_path / "ds", layout)
