"""Shared helpers of the recording tests: a short expert recording through the real env, cameras and writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gymnasium.envs.registration import load_env_creator

import rcs.envs  # noqa: F401  (registers the env ids)
from rcs.recording.features import FeatureLayout, frame_features
from rcs.recording.session import CameraSet, state_time
from rcs.recording.video import VideoOptions
from rcs.recording.writer import Recorder
from rcs.registry import make_camera
from rcs.teleop.expert import ExpertTeleop

TASK = "pick the cube and bring it to the target"


def make_env(steps: int):
    import gymnasium as gym

    spec = gym.spec("rcs/PandaPickCube-v0")
    return load_env_creator(spec.entry_point)(**{**spec.kwargs, "max_episode_steps": steps})


def open_cameras(env, names, size=(48, 64)):
    q = env.robot.simulation.model.vis.quality
    q.shadowsize, q.offsamples = 0, 0
    cams = {}
    for n in names:
        cam = make_camera("sim/mujoco", robot=env.robot, name=n, width=size[1], height=size[0])
        cam.connect()
        cams[n] = cam
    return cams


def layout_for(env, cams, size=(48, 64)) -> FeatureLayout:
    return FeatureLayout.for_env(env, tuple((n, *size) for n in cams))


def record_episode(env, expert, recorder: Recorder, layout: FeatureLayout, cams: dict, seed: int) -> list[dict]:
    """One expert episode into ``recorder`` (not yet saved); returns the frames handed to it."""
    obs, _ = env.reset(seed=seed)
    expert.reset(obs)
    recorder.start_episode(TASK, seed=seed)
    frames, done = [], False
    camset = CameraSet(cams)
    while not done:
        images, times = camset.read()
        action = expert.action(obs)
        frame = frame_features(layout, {**obs, **images}, action, [state_time(env, obs), *times])
        recorder.add_frame(frame)
        frames.append({k: np.array(v, copy=True) for k, v in frame.items()})
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return frames


def new_recorder(root: Path, layout: FeatureLayout, fps: int = 20, backend: str = "thread", **kw) -> Recorder:
    return Recorder(
        root,
        fps=fps,
        features=layout.features(),
        robot_type="panda",
        recording={
            "env_id": "rcs/PandaPickCube-v0",
            "control_mode": "cartesian",
            "relative": False,
            "control_rate_hz": 20.0,
        },
        video=VideoOptions(vcodec="h264", backend=backend),
        **kw,
    )


def expert_for(env) -> ExpertTeleop:
    return ExpertTeleop(env, seed=0)


def files(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` (and its work area)."""
    out = {}
    for base in (root, root.parent / f".{root.name}.rcs"):
        if base.exists():
            for p in sorted(base.rglob("*")):
                if p.is_file() and p.name != "lock":
                    out[str(p.relative_to(root.parent))] = p.stat().st_size
    return out
