"""A LeRobotDataset loaded once into memory as training tensors for ``rcs_diffusion``.

CPU training cannot afford decoding video per sample, so every video file is decoded once (PyAV, in order)
and its frames resized to the policy's ``image_size`` and kept as uint8. Vector features stay float32.
Per frame ``t`` the training target is the action chunk ``t .. t + horizon - 1`` (padded with the last
action past the episode end and flagged in ``action_is_pad``); see ``RcsDiffusionConfig.action_target``.

Which dataset features are read: ``observation.state``, ``observation.environment_state``,
``observation.images.<camera>``, ``action`` and the ``task`` text. Any other ``observation.*`` feature is
an error (name it in ``ignore`` to skip it), so a dataset with unexpected content is refused, not half-used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lerobot.configs.types import FeatureType, PolicyFeature

from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
from rcs.geometry import ROTATION_6D_NAMES, rotation_6d_from_matrix, rotvec_to_matrix

log = logging.getLogger(__name__)

STATE, ENV, ACTION = "observation.state", "observation.environment_state", "action"
IMAGE_PREFIX = "observation.images."
#: entries of a Cartesian-absolute arm action before the gripper (``rcs.envs.arm_actions``).
CARTESIAN_ACTION_NAMES = ("x", "y", "z", "rx", "ry", "rz")
#: Extra per-frame columns that carry metadata, not policy inputs (e.g. the recorder's measured capture time).
METADATA_SUFFIXES = ("capture_time", "timestamp", "time")


class DatasetFeatureError(ValueError):
    """The dataset's features are not what the policy can read (names the feature and what was expected)."""


@dataclass
class DemoData:
    """Training tensors of a dataset.

    Attributes:
        vectors: feature -> (N, d) float32 (``observation.state``, ``observation.environment_state``).
        images: feature -> (N, 3, S, S) uint8, resized to the policy's ``image_size``.
        actions: (N, horizon, D) float32 target chunk per frame.
        action_is_pad: (N, horizon) bool, True past the episode end.
        task_index: (N,) int64 into :attr:`tasks`.
        tasks: the task strings.
        episode_index: (N,) int64.
        input_features, output_features: lerobot features for the policy config.
        stats: lerobot normalization stats per feature (mean, std, min, max; images per channel).
        action_names: names of the action columns.
        feature_names: names of each vector feature's entries.
        fps: dataset frame rate (Hz).
        frame_actions: (N, D) per-frame action targets (unchunked; the action stats are computed from them).
    """

    vectors: dict[str, torch.Tensor]
    images: dict[str, torch.Tensor]
    actions: torch.Tensor
    action_is_pad: torch.Tensor
    task_index: torch.Tensor
    tasks: list[str]
    episode_index: torch.Tensor
    input_features: dict[str, PolicyFeature]
    output_features: dict[str, PolicyFeature]
    stats: dict[str, dict[str, torch.Tensor]]
    action_names: list[str]
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    fps: float = 20.0
    frame_actions: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def batch(self, index: torch.Tensor) -> dict[str, Any]:
        """A raw (unnormalized) training batch in lerobot's layout: images float in [0, 1], (B, 3, S, S)."""
        out: dict[str, Any] = {k: v[index] for k, v in self.vectors.items()}
        for k, v in self.images.items():
            out[k] = v[index].float() / 255.0
        out[ACTION] = self.actions[index]
        out["action_is_pad"] = self.action_is_pad[index]
        out["task"] = [self.tasks[i] for i in self.task_index[index].tolist()]
        return out


def _vector_feature(name: str, info: dict[str, Any]) -> None:
    if info["dtype"] not in ("float32", "float64") or len(info["shape"]) != 1:
        raise DatasetFeatureError(
            f"dataset feature {name!r}: dtype={info['dtype']} shape={tuple(info['shape'])}; "
            "expected a 1-D float32 vector"
        )


def select_features(features: dict[str, dict[str, Any]], ignore: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(vector input names, image input names) of a dataset; refuses unexpected observation features."""
    vectors, images = [], []
    for name, info in features.items():
        if name in ignore or not name.startswith("observation."):
            continue
        if name in (STATE, ENV):
            _vector_feature(name, info)
            vectors.append(name)
        elif name.startswith(IMAGE_PREFIX):
            shape = tuple(info["shape"])
            if info["dtype"] not in ("video", "image") or len(shape) != 3 or 3 not in (shape[0], shape[-1]):
                raise DatasetFeatureError(
                    f"dataset feature {name!r}: dtype={info['dtype']} shape={shape}; "
                    "expected an RGB video/image (H, W, 3)"
                )
            images.append(name)
        elif name.rsplit(".", 1)[-1].endswith(METADATA_SUFFIXES):
            continue
        else:
            raise DatasetFeatureError(
                f"dataset feature {name!r} ({info['dtype']}, shape {tuple(info['shape'])}) is not an input "
                f"rcs_diffusion knows ({STATE}, {ENV}, {IMAGE_PREFIX}<camera>); pass it in ignore to skip it"
            )
    if ACTION not in features:
        raise DatasetFeatureError(f"dataset has no {ACTION!r} feature (has {sorted(features)})")
    _vector_feature(ACTION, features[ACTION])
    if not vectors and not images:
        raise DatasetFeatureError(f"dataset has no observation inputs (features: {sorted(features)})")
    return vectors, images


def _decode_video(path: Path, size: int) -> torch.Tensor:
    """Every frame of an mp4 as (F, 3, size, size) uint8 (resized like the policy does at inference)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
    video = torch.stack(frames).permute(0, 3, 1, 2)
    out = []
    for chunk in video.split(512):
        x = chunk.float() / 255.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append((x * 255.0).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _vector_column(table: Any, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    values = np.array(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)  # a writable copy
    return values.reshape(len(column), -1)


#: smallest (max - min) and std used for normalization: entries that barely vary in the demonstrations (a
#: quaternion component that is ~0, a coordinate at rest) would otherwise be scaled up by 1e3-1e16 and turn
#: sensor noise at run time into inputs far outside anything seen in training.
MIN_RANGE = 0.1
MIN_STD = 0.05


def _stats(x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.double()
    lo, hi = x.min(0).values, x.max(0).values
    widen = (MIN_RANGE - (hi - lo)).clamp_min(0.0) / 2
    return {
        "mean": x.mean(0).float(),
        "std": x.std(0).clamp_min(MIN_STD).float(),
        "min": (lo - widen).float(),
        "max": (hi + widen).float(),
        "count": torch.tensor([x.shape[0]]),
    }


def action_stats(
    config: RcsDiffusionConfig, chunks: torch.Tensor, state: torch.Tensor | None, action_names: list[str]
) -> dict[str, torch.Tensor]:
    """Stats of the actions the model is trained on: every step of every chunk, relative to the state when
    ``config.relative_actions`` (as lerobot's RelativeActionsProcessorStep will present them)."""
    if config.relative_actions:
        if state is None:
            raise DatasetFeatureError(f"relative_actions needs {STATE!r} (the reference the offsets are taken from)")
        d = chunks.shape[-1]
        if state.shape[1] < d:
            raise DatasetFeatureError(f"relative_actions: {STATE} has {state.shape[1]} entries, the action {d}")
        mask = torch.tensor([n not in config.relative_exclude for n in action_names], dtype=chunks.dtype)
        chunks = chunks - state[:, None, :d] * mask
    return _stats(chunks.reshape(-1, chunks.shape[-1]))


def _image_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    sample = images[:: max(1, len(images) // 4000)].float() / 255.0  # per-channel stats from <= ~4000 frames
    flat = sample.permute(1, 0, 2, 3).reshape(3, -1).double()
    shape = (3, 1, 1)
    return {
        "mean": flat.mean(1).float().reshape(shape),
        "std": flat.std(1).float().reshape(shape),
        "min": flat.min(1).values.float().reshape(shape),
        "max": flat.max(1).values.float().reshape(shape),
        "count": torch.tensor([sample.shape[0]]),
    }


def _action_targets(
    config: RcsDiffusionConfig, names: dict[str, list[str]], state: np.ndarray | None, action: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Per-frame (unchunked) action targets and their names (see ``RcsDiffusionConfig.action_target``)."""
    action_names = names.get(ACTION) or [f"action_{i}" for i in range(action.shape[1])]
    if config.action_target == "dataset_action":
        return action, list(action_names)
    if config.action_target == "tcp_pose_6d":
        return _tcp_pose_6d(action, list(action_names))
    state_names = names.get(STATE)
    if state is None or not state_names:
        raise DatasetFeatureError(f"action_target='joint_state_lookahead' needs {STATE!r} with per-entry names")
    if "gripper" not in state_names or "gripper" not in action_names:
        raise DatasetFeatureError(
            f"action_target='joint_state_lookahead' needs a 'gripper' entry in {STATE} names "
            f"{state_names} and in action names {action_names}"
        )
    joints = state_names[: state_names.index("gripper")]
    if not joints:
        raise DatasetFeatureError(f"{STATE} names {state_names}: no joint entries before 'gripper'")
    return np.concatenate([state[:, : len(joints)], action[:, [action_names.index("gripper")]]], axis=1), [
        *joints,
        "gripper",
    ]


def _tcp_pose_6d(action: np.ndarray, action_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Cartesian-absolute actions ``x y z rx ry rz gripper`` -> ``x y z`` + 6D rotation + ``gripper``."""
    if action_names[: len(CARTESIAN_ACTION_NAMES)] != list(CARTESIAN_ACTION_NAMES) or len(action_names) != 7:
        raise DatasetFeatureError(
            f"action_target='tcp_pose_6d' needs a Cartesian-absolute action "
            f"{list(CARTESIAN_ACTION_NAMES)} + ['gripper'], the dataset's is {action_names}"
        )
    r6 = rotation_6d_from_matrix(rotvec_to_matrix(action[:, 3:6]))
    out = np.concatenate([action[:, :3], r6, action[:, 6:7]], axis=1).astype(np.float32)
    return out, [*CARTESIAN_ACTION_NAMES[:3], *ROTATION_6D_NAMES, "gripper"]


def load_demos(
    roots: str | Path | Sequence[str | Path],
    config: RcsDiffusionConfig,
    repo_id: str | None = None,
    ignore: tuple[str, ...] = (),
) -> DemoData:
    """Load one LeRobotDataset, or several with the same features (concatenated), for ``config``.

    ``roots`` may also be one string of comma-separated folders. Normalization stats cover all of them.

    Raises:
        DatasetFeatureError: unexpected, missing or (between datasets) differing features.
        FileNotFoundError: a root holds no dataset.
    """
    if isinstance(roots, (str, Path)):
        roots = [r for r in str(roots).split(",") if r]
    parts = [_load_one(r, config, repo_id, ignore) for r in roots]
    if not parts:
        raise FileNotFoundError("no dataset given")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for root, d in zip(roots[1:], parts[1:], strict=True):
        for what in ("input_features", "output_features", "action_names", "feature_names", "fps"):
            if getattr(d, what) != getattr(first, what):
                raise DatasetFeatureError(
                    f"dataset {root}: {what} {getattr(d, what)} differs from {roots[0]}: {getattr(first, what)}"
                )
    tasks = sorted({t for d in parts for t in d.tasks})
    task_index = torch.cat([torch.tensor([tasks.index(d.tasks[i]) for i in d.task_index.tolist()]) for d in parts])
    episodes, offset = [], 0
    for d in parts:
        episodes.append(d.episode_index + offset)
        offset += int(d.episode_index.max()) + 1
    vectors = {k: torch.cat([d.vectors[k] for d in parts]) for k in first.vectors}
    images = {k: torch.cat([d.images[k] for d in parts]) for k in first.images}
    frame_actions = torch.cat([d.frame_actions for d in parts])
    stats = {k: _stats(v) for k, v in vectors.items()}
    stats.update({k: _image_stats(v) for k, v in images.items()})
    actions = torch.cat([d.actions for d in parts])
    stats[ACTION] = action_stats(config, actions, vectors.get(STATE), first.action_names)
    return DemoData(
        vectors=vectors,
        images=images,
        actions=torch.cat([d.actions for d in parts]),
        action_is_pad=torch.cat([d.action_is_pad for d in parts]),
        task_index=task_index,
        tasks=tasks,
        episode_index=torch.cat(episodes),
        input_features=first.input_features,
        output_features=first.output_features,
        stats=stats,
        action_names=first.action_names,
        feature_names=first.feature_names,
        fps=first.fps,
        frame_actions=frame_actions,
    )


def _load_one(
    root: str | Path, config: RcsDiffusionConfig, repo_id: str | None = None, ignore: tuple[str, ...] = ()
) -> DemoData:
    """Load the LeRobotDataset at ``root`` into :class:`DemoData` for ``config``.

    Raises:
        DatasetFeatureError: unexpected or missing features (see the module docstring).
        FileNotFoundError: ``root`` holds no dataset.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"dataset {root}: no meta/info.json (not a LeRobotDataset v3 root)")
    ds = LeRobotDataset(repo_id or f"local/{root.name}", root=root)
    meta = ds.meta
    features = meta.features
    vector_keys, image_keys = select_features(features, ignore)
    names = {k: list(features[k].get("names") or []) for k in [*vector_keys, ACTION]}
    table = ds.hf_dataset.data  # pyarrow table: read whole columns, not rows
    columns = {k: _vector_column(table, k) for k in [*vector_keys, ACTION]}
    episode = table.column("episode_index").to_numpy().astype(np.int64)
    frame = table.column("frame_index").to_numpy().astype(np.int64)
    task_index = table.column("task_index").to_numpy().astype(np.int64)
    tasks_df = meta.tasks
    tasks = [""] * (int(tasks_df["task_index"].max()) + 1)
    for text, row in tasks_df.iterrows():
        tasks[int(row["task_index"])] = str(text)
    n = len(episode)
    if n == 0:
        raise DatasetFeatureError(f"dataset {root} has no frames")

    targets, action_names = _action_targets(config, names, columns.get(STATE), columns[ACTION])
    # chunk indices: frame t -> t + h (+ lookahead for the joint part), clamped to the episode's last frame
    starts = np.zeros(n, dtype=np.int64)
    ends = np.zeros(n, dtype=np.int64)
    for ep in np.unique(episode):
        idx = np.flatnonzero(episode == ep)
        if np.any(np.diff(idx) != 1) or np.any(frame[idx] != np.arange(len(idx))):
            raise DatasetFeatureError(f"episode {ep}: frames are not stored contiguously in order")
        starts[idx], ends[idx] = idx[0], idx[-1]
    h = np.arange(config.horizon)
    raw = np.arange(n)[:, None] + h[None, :]
    pad = raw > ends[:, None]
    take = np.minimum(raw, ends[:, None])
    chunks = targets[take]
    if config.action_target == "joint_state_lookahead":
        ahead = np.minimum(take + config.action_lookahead, ends[:, None])
        nj = len(action_names) - 1
        chunks[..., :nj] = targets[ahead][..., :nj]

    images: dict[str, torch.Tensor] = {}
    for key in image_keys:
        per_file: dict[Path, torch.Tensor] = {}
        out = torch.zeros((n, 3, config.image_size, config.image_size), dtype=torch.uint8)
        for ep in np.unique(episode):
            path = root / meta.get_video_file_path(int(ep), key)
            if path not in per_file:
                per_file[path] = _decode_video(path, config.image_size)
            video = per_file[path]
            ep_meta = meta.episodes[int(ep)]
            first = int(round(float(ep_meta[f"videos/{key}/from_timestamp"]) * meta.fps))
            idx = np.flatnonzero(episode == ep)
            rows = first + frame[idx]
            if rows.max() >= len(video):
                raise DatasetFeatureError(
                    f"{key}: episode {ep} needs video frame {rows.max()} but {path.name} has {len(video)} frames"
                )
            out[torch.from_numpy(idx)] = video[torch.from_numpy(rows)]
        images[key] = out
        log.info("decoded %s: %d frames at %dx%d", key, n, config.image_size, config.image_size)

    input_features: dict[str, PolicyFeature] = {}
    stats: dict[str, dict[str, torch.Tensor]] = {}
    vectors = {k: torch.from_numpy(columns[k]) for k in vector_keys}
    for k in vector_keys:
        input_features[k] = PolicyFeature(FeatureType.STATE if k == STATE else FeatureType.ENV, (columns[k].shape[1],))
        stats[k] = _stats(vectors[k])
    for k in image_keys:
        shape = tuple(features[k]["shape"])
        chw = shape if shape[0] == 3 else (shape[2], shape[0], shape[1])
        input_features[k] = PolicyFeature(FeatureType.VISUAL, chw)
        stats[k] = _image_stats(images[k])
    output_features = {ACTION: PolicyFeature(FeatureType.ACTION, (targets.shape[1],))}
    state = vectors.get(STATE)
    stats[ACTION] = action_stats(config, torch.from_numpy(np.ascontiguousarray(chunks)), state, action_names)
    return DemoData(
        vectors=vectors,
        images=images,
        actions=torch.from_numpy(np.ascontiguousarray(chunks)),
        action_is_pad=torch.from_numpy(pad),
        task_index=torch.from_numpy(task_index),
        tasks=tasks,
        episode_index=torch.from_numpy(episode),
        input_features=input_features,
        output_features=output_features,
        stats=stats,
        action_names=action_names,
        feature_names={k: names[k] for k in vector_keys},
        fps=float(meta.fps),
        frame_actions=torch.from_numpy(np.ascontiguousarray(targets)),
    )
