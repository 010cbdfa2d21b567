"""The one conversion between env observations and LeRobotDataset features (docs/record.md, FEATURES.md).

Light: numpy and the core's own light modules only. The recorder, the training code, evaluation and serving
all build their feature dicts here (units included: :data:`UNITS`, :func:`action_unit`), so a policy sees
exactly the layout it was trained on.

Layout for the pick-cube envs (:mod:`rcs.envs.pick_cube`), all float32 unless stated:

- ``observation.state``: joint_positions (n, rad) + gripper (1, normalized width) + tcp_position (3, m, base
  frame) + tcp_quaternion (4, w x y z). Names: the spec's joint names, ``gripper``, ``tcp_x`` .. ``tcp_qz``.
- ``observation.environment_state``: cube_position (3, m) + cube_quaternion (4, w x y z) + target_position
  (3, m), world frame (:data:`ENV_STATE_LAYOUT`). An env with more objects declares its own layout as
  ``environment_state_layout`` (e.g. the two-cube env appends both cubes' poses); :meth:`FeatureLayout.for_env`
  picks it up. An env without objects (the task-less arm env, :mod:`rcs.envs.arm_teleop`) declares an empty
  layout, and its datasets have no ``observation.environment_state`` at all (lerobot cannot store a 0-wide
  vector feature).
- ``observation.images.<camera>``: video, (H, W, 3) uint8 RGB, from the obs key ``image_<camera>``.
- ``action``: float32, the env action exactly as commanded; names = the env's action labels.
- ``capture_time``: float64 (1 + number of cameras,), names ``["state", <camera>...]``: when the state and each
  camera image were captured, in s since the episode's first state capture on the host monotonic clock
  (``time.monotonic()``); that origin is stored per episode in ``meta/rcs_episodes.jsonl``
  (``capture_time_origin``). Relative, because lerobot's reader hands float64 columns out as float32, which
  would round absolute monotonic times (hours of uptime) to milliseconds. lerobot's own
  ``timestamp`` column stays ``frame_index / fps``. The key does not start with ``observation``/``action``,
  so lerobot's policies ignore it.
- ``state_stream`` (optional, when the state is sampled faster than the dataset's frame rate, e.g. 500 Hz state
  with 30 fps cameras): float32 (K, len(observation.state)) = every state sample captured since the previous
  frame, oldest first; ``state_stream_time`` float64 (K,) their capture times (monotonic s);
  ``state_stream_count`` int64 (1,) how many of the K slots are real. Unused slots repeat the last real sample
  (so statistics stay finite); read only the first ``state_stream_count`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcs.control.cartesian import pose_layout_of
from rcs.control.joint_deltas import JOINT_DELTA_UNIT, is_joint_delta_layout

STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"
CAPTURE_TIME = "capture_time"
STATE_STREAM = "state_stream"
STATE_STREAM_TIME = "state_stream_time"
STATE_STREAM_COUNT = "state_stream_count"
#: float64 time features the recorder stores relative to the episode's first capture (see the module docstring).
TIME_KEYS = (CAPTURE_TIME, STATE_STREAM_TIME)

#: env obs keys concatenated into ``observation.state``: (key, entry names or None for the joint names).
STATE_LAYOUT: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("joint_positions", None),
    ("gripper", ("gripper",)),
    ("tcp_position", ("tcp_x", "tcp_y", "tcp_z")),
    ("tcp_quaternion", ("tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz")),
)
#: env obs keys concatenated into ``observation.environment_state``.
ENV_STATE_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cube_position", ("cube_x", "cube_y", "cube_z")),
    ("cube_quaternion", ("cube_qw", "cube_qx", "cube_qy", "cube_qz")),
    ("target_position", ("target_x", "target_y", "target_z")),
)
#: obs key prefix of camera images in the gymnasium envs (``image_<camera>``).
OBS_IMAGE_PREFIX = "image_"
#: unit strings of the served tensors: the policy side writes them into its manifest, the robot side builds its
#: expected schema with the same (docs/protocol.md: units are compared as strings).
UNITS: dict[str, str] = {ACTION: "rad", STATE: "", ENV_STATE: ""}


def action_unit(names: Sequence[str]) -> str:
    """Unit string of an action tensor with these entry names: joint targets (rad), joint deltas (rad/step) or a
    TCP pose (its layout's)."""
    layout = pose_layout_of(names)
    if layout is not None:
        return layout.unit
    return JOINT_DELTA_UNIT if is_joint_delta_layout(names) else UNITS[ACTION]


@dataclass(frozen=True)
class FeatureLayout:
    """What a pick-cube dataset holds: joint names, action labels, cameras (name -> (height, width)), the
    environment-state layout.

    Built once per recording (or per policy) from the env (:meth:`for_env`); everything else derives from it.
    """

    joint_names: tuple[str, ...]
    action_names: tuple[str, ...]
    cameras: tuple[tuple[str, int, int], ...] = ()
    capture_time: bool = True
    state_stream: int = 0
    env_state: tuple[tuple[str, tuple[str, ...]], ...] = ENV_STATE_LAYOUT

    @classmethod
    def for_env(cls, env: Any, cameras: Sequence[tuple[str, int, int]] = (), **kwargs: Any) -> FeatureLayout:
        """The layout of a pick-cube-style env (unwrapped or not): its arm's joint names, its action labels, its
        ``environment_state_layout`` (default :data:`ENV_STATE_LAYOUT`), plus ``cameras``."""
        u = getattr(env, "unwrapped", env)
        return cls(
            tuple(u.arm.spec.joint_names),
            tuple(u._action_labels()),
            tuple(cameras),
            env_state=tuple(getattr(u, "environment_state_layout", ENV_STATE_LAYOUT)),
            **kwargs,
        )

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c[0] for c in self.cameras)

    def state_names(self) -> list[str]:
        names: list[str] = []
        for _key, entries in STATE_LAYOUT:
            names.extend(self.joint_names if entries is None else entries)
        return names

    def env_state_names(self) -> list[str]:
        return [n for _, entries in self.env_state for n in entries]

    def features(self) -> dict[str, dict]:
        """The lerobot ``features`` dict (dtype, shape, names) for ``LeRobotDataset.create``."""
        out: dict[str, dict] = {STATE: _vector(self.state_names())}
        if self.env_state:
            out[ENV_STATE] = _vector(self.env_state_names())
        out[ACTION] = _vector(list(self.action_names))
        for name, height, width in self.cameras:
            out[IMAGE_PREFIX + name] = {
                "dtype": "video",
                "shape": (int(height), int(width), 3),
                "names": ["height", "width", "channels"],
            }
        if self.capture_time:
            out[CAPTURE_TIME] = {
                "dtype": "float64",
                "shape": (1 + len(self.cameras),),
                "names": ["state", *self.camera_names],
            }
        if self.state_stream:
            k = int(self.state_stream)
            out[STATE_STREAM] = {
                "dtype": "float32",
                "shape": (k, len(self.state_names())),
                "names": ["sample", "state"],
            }
            out[STATE_STREAM_TIME] = {"dtype": "float64", "shape": (k,), "names": None}
            out[STATE_STREAM_COUNT] = {"dtype": "int64", "shape": (1,), "names": None}
        return out


def _vector(names: list[str]) -> dict:
    return {"dtype": "float32", "shape": (len(names),), "names": list(names)}


def _concat(obs: Mapping[str, np.ndarray], layout: Sequence[tuple[str, object]]) -> np.ndarray:
    missing = [key for key, _ in layout if key not in obs]
    if missing:
        raise KeyError(f"observation lacks {missing}; it has {sorted(obs)}")
    return np.concatenate([np.asarray(obs[key], dtype=np.float32).reshape(-1) for key, _ in layout])


def observation_to_features(
    obs: Mapping[str, np.ndarray],
    camera_names: Sequence[str] | None = None,
    env_state: Sequence[tuple[str, tuple[str, ...]]] = ENV_STATE_LAYOUT,
) -> dict[str, np.ndarray]:
    """Env observation dict -> ``{observation.state, observation.environment_state, observation.images.*}``.

    ``camera_names=None`` takes every ``image_<camera>`` key present. Images are passed through (H, W, 3) uint8.
    ``env_state`` is the environment-state layout (:attr:`FeatureLayout.env_state`); an empty one gives no
    ``observation.environment_state``.
    """
    out = {STATE: _concat(obs, STATE_LAYOUT)}
    if env_state:
        out[ENV_STATE] = _concat(obs, env_state)
    names = (
        camera_names
        if camera_names is not None
        else [k[len(OBS_IMAGE_PREFIX) :] for k in obs if k.startswith(OBS_IMAGE_PREFIX)]
    )
    for name in names:
        image = np.asarray(obs[OBS_IMAGE_PREFIX + name])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image_{name}: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
        out[IMAGE_PREFIX + name] = image
    return out


def frame_features(
    layout: FeatureLayout,
    obs: Mapping[str, np.ndarray],
    action: np.ndarray,
    capture_times: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """One dataset frame (without ``task``): observation features + ``action`` (+ ``capture_time``)."""
    frame = observation_to_features(obs, layout.camera_names, layout.env_state)
    a = np.asarray(action, dtype=np.float32).reshape(-1)
    if a.shape != (len(layout.action_names),):
        raise ValueError(
            f"action: expected shape ({len(layout.action_names)},) for {layout.action_names}, got {a.shape}"
        )
    frame[ACTION] = a
    if layout.capture_time:
        if capture_times is None or len(capture_times) != 1 + len(layout.cameras):
            raise ValueError(
                f"capture_time: expected {1 + len(layout.cameras)} values (state + cameras), got {capture_times}"
            )
        frame[CAPTURE_TIME] = np.asarray(capture_times, dtype=np.float64)
    return frame


def pack_state_stream(
    layout: FeatureLayout, states: Sequence[np.ndarray], times: Sequence[float]
) -> dict[str, np.ndarray]:
    """The ``state_stream*`` features of one frame from the state vectors (``observation.state`` layout) sampled
    since the previous frame. More than K samples keeps the newest K (the count says K)."""
    k = int(layout.state_stream)
    if not states:
        raise ValueError("state_stream: at least one state sample per frame is required")
    states, times = list(states)[-k:], list(times)[-k:]
    n = len(states)
    block = np.empty((k, len(states[0])), dtype=np.float32)
    block[:n] = np.asarray(states, dtype=np.float32)
    block[n:] = block[n - 1]
    t = np.empty(k, dtype=np.float64)
    t[:n] = times
    t[n:] = t[n - 1]
    return {STATE_STREAM: block, STATE_STREAM_TIME: t, STATE_STREAM_COUNT: np.array([n], dtype=np.int64)}


def features_to_observation(frame: Mapping[str, np.ndarray], layout: FeatureLayout) -> dict[str, np.ndarray]:
    """Inverse of :func:`observation_to_features` for the state parts (used by replay and tests)."""
    obs: dict[str, np.ndarray] = {}
    i = 0
    state = np.asarray(frame[STATE], dtype=np.float32).reshape(-1)
    for key, entries in STATE_LAYOUT:
        n = len(layout.joint_names) if entries is None else len(entries)
        obs[key] = state[i : i + n]
        i += n
    env_state = np.asarray(frame[ENV_STATE], dtype=np.float32).reshape(-1) if layout.env_state else np.zeros(0)
    i = 0
    for key, entries in layout.env_state:
        obs[key] = env_state[i : i + len(entries)]
        i += len(entries)
    for name in layout.camera_names:
        if IMAGE_PREFIX + name in frame:
            obs[OBS_IMAGE_PREFIX + name] = np.asarray(frame[IMAGE_PREFIX + name])
    return obs
