"""What a policy checkpoint's ``rcs_policy.json`` holds, and how it is derived for a stock lerobot checkpoint.

``rcs train`` writes the manifest next to the weights. A checkpoint from lerobot's own ``lerobot-train`` has none,
but it carries its training config (``train_config.json``), which names the dataset it was trained on; a dataset
recorded by ``rcs record`` holds everything the manifest needs in its metadata: the frame rate
(``meta/info.json`` ``fps``: one frame per env step, so the policy's period is ``1 / fps``) and the names of the
action and state columns (``features.<key>.names``). :func:`derive_manifest` reads them from the local copy of
that dataset (``dataset.root``, else lerobot's ``$HF_LEROBOT_HOME/<repo_id>``); nothing is downloaded. A dataset
that ``rcs record`` wrote with relative actions (``meta/rcs_recording.json``) gets delta names (``delta_x``...,
``delta_<joint>``...): the columns are per-step changes, which the robot side integrates into targets
(:mod:`rcs.control.cartesian`, :mod:`rcs.control.joint_deltas`); executed as targets they would be wrong.

JSON and the standard library only: the light core reads manifests without torch or lerobot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rcs.control.cartesian import DELTA_POSE, ROTATION_VECTOR_POSE, pose_layout_of
from rcs.control.joint_deltas import is_joint_delta_layout, joint_delta_names
from rcs.errors import ConfigError
from rcs.recording.features import ACTION, UNITS, action_unit

MANIFEST_NAME = "rcs_policy.json"
TRAIN_CONFIG_NAME = "train_config.json"


def manifest_fields(
    action_names: Sequence[str],
    feature_names: Mapping[str, Sequence[str]],
    fps: float,
    *,
    policy_type: str,
    checkpoint_id: str,
    language: bool,
) -> dict[str, Any]:
    """A ``rcs_policy.json`` (kind ``lerobot``): period ``1 / fps`` (s), column names and units of the action and
    of each state vector (units as :data:`rcs.recording.features.UNITS`, the robot side builds its expected
    schema with the same), and the text input when the policy reads a language instruction."""
    if not fps > 0:
        raise ConfigError(f"fps={fps!r}: the frame rate must be > 0 Hz")
    names = {ACTION: list(action_names), **{k: list(v) for k, v in feature_names.items()}}
    units = {k: UNITS[k] for k in names if k in UNITS}
    units[ACTION] = action_unit(action_names)
    manifest: dict[str, Any] = {
        "kind": "lerobot",
        "checkpoint_id": checkpoint_id,
        "policy_type": policy_type,
        "policy_dt": 1.0 / fps,
        "names": names,
        "units": units,
    }
    if language:
        manifest["text"] = {"name": "task", "max_bytes": 256}
    return manifest


def lerobot_home() -> Path:
    """lerobot's local dataset folder: ``$HF_LEROBOT_HOME``, else ``$HF_HOME/lerobot``, else
    ``~/.cache/huggingface/lerobot`` (the rule of ``lerobot.utils.constants``, without importing lerobot)."""
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface"))
    return Path(hf_home).expanduser() / "lerobot"


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`ConfigError` naming ``what`` and the path if it is missing, unreadable
    or not an object."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{what}: {path} is unreadable ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a JSON object")
    return data


def training_dataset(directory: Path) -> Path:
    """The local folder of the dataset a lerobot checkpoint was trained on (from its ``train_config.json``)."""
    train = read_json_object(directory / TRAIN_CONFIG_NAME, f"no {MANIFEST_NAME}, and its training config")
    dataset = train.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("repo_id"), str):
        raise ConfigError(f"{directory / TRAIN_CONFIG_NAME}: dataset.repo_id is missing (not a lerobot-train config)")
    root = dataset.get("root")
    path = Path(root).expanduser() if isinstance(root, str) and root else lerobot_home() / dataset["repo_id"]
    if not (path / "meta" / "info.json").is_file():
        raise ConfigError(
            f"no {MANIFEST_NAME}, and the dataset it was trained on ({dataset['repo_id']!r}) is not at {path} "
            f"(train_config.json dataset.root, else $HF_LEROBOT_HOME/<repo_id>): copy the dataset there, or write "
            f"{MANIFEST_NAME} (docs/deploy.md)"
        )
    return path


def _delta_names(names: list[str], directory: Path, dataset: Path) -> list[str]:
    """The names that say a relative recording's action columns are per-step changes (the robot side integrates
    them): ``delta_x ... delta_rz gripper`` for Cartesian, ``delta_<joint>... gripper`` for joint actions."""
    gripper = names[-1:] == ["gripper"]
    if pose_layout_of(names) is ROTATION_VECTOR_POSE:
        return list(DELTA_POSE.names_for(gripper))
    if pose_layout_of(names) is None and not is_joint_delta_layout(names):
        return list(joint_delta_names(names[: len(names) - gripper], gripper))
    raise ConfigError(
        f"policy checkpoint {directory}: dataset {dataset} is marked relative but its action columns {names} are "
        "neither joint nor Cartesian rotation-vector targets"
    )


def derive_manifest(directory: str | Path) -> dict[str, Any]:
    """``rcs_policy.json`` contents for a lerobot checkpoint ``directory`` that has none, from the metadata of
    the dataset it was trained on (see the module docstring). Raises a one-line :class:`ConfigError` saying what
    is missing."""
    directory = Path(directory)
    try:
        dataset = training_dataset(directory)
        info = read_json_object(dataset / "meta" / "info.json", "dataset metadata")
        config = read_json_object(directory / "config.json", "policy config")
    except ConfigError as e:
        raise ConfigError(f"policy checkpoint {directory}: {e}") from None
    features = info.get("features") or {}
    fps = info.get("fps")
    action = features.get(ACTION) or {}
    if not isinstance(fps, int | float) or not fps > 0 or not isinstance(action.get("names"), list):
        raise ConfigError(
            f"policy checkpoint {directory}: dataset {dataset}: meta/info.json needs fps > 0 and "
            f"features.action.names (got fps={fps!r})"
        )
    action_names = list(action["names"])
    recording_file = dataset / "meta" / "rcs_recording.json"
    if recording_file.is_file():
        recording = read_json_object(recording_file, "recording metadata")
        recording = recording.get("recording", recording)
        if recording.get("relative"):
            action_names = _delta_names(action_names, directory, dataset)
    inputs = config.get("input_features") or {}
    vectors = {
        key: features[key]["names"]
        for key, feat in inputs.items()
        if isinstance(feat, dict)
        and feat.get("type") in ("STATE", "ENV")
        and isinstance(features.get(key, {}).get("names"), list)
    }
    return manifest_fields(
        action_names,
        vectors,
        float(fps),
        policy_type=str(config.get("type", "lerobot")),
        checkpoint_id=f"{config.get('type', 'lerobot')}:{directory.name}",
        language=False,  # the loader adds the text input of a policy that reads one (from its config)
    ) | {"derived_from": str(dataset)}
