"""What a checkpoint consumes and produces (read from its JSON files, no torch) and the schema the robot requires."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcs.control.cartesian import pose_layout_of
from rcs.control.joint_deltas import is_joint_delta_layout, joint_delta_names
from rcs.errors import ConfigError
from rcs.recording.features import ACTION, IMAGE_PREFIX, UNITS, FeatureLayout, action_unit
from rcs.serving.policy import read_manifest, replan_steps_of
from rcs.serving.protocol import Schema, TensorSpec, text_spec


@dataclass(frozen=True)
class PolicyInputs:
    """What a checkpoint consumes and produces, read from its files (no torch needed).

    Attributes:
        vectors: vector observation features it reads (``observation.state``, ``observation.environment_state``).
        cameras: (camera name, height, width) of each image input ``observation.images.<camera>``.
        chunk_size: actions per chunk.
        text: name of the text observation (the instruction) if it takes one, else ``None``.
        text_max_bytes: size of the text tensor.
        replan_steps: policy-rate actions the robot executes from each chunk before it asks for the next
            (lerobot's ``n_action_steps``: the open-loop horizon the policy was trained and tuned for; 1 asks
            every policy period).
        action_names: the checkpoint's action entry names (``rcs_policy.json``); a TCP-pose layout
            (:func:`rcs.control.cartesian.pose_layout_of`) is converted to joint targets on the robot side
            with the arm's IK, anything else must be the robot's joint order (+ gripper). Empty: joint order.
    """

    vectors: tuple[str, ...]
    cameras: tuple[tuple[str, int, int], ...]
    chunk_size: int
    text: str | None = None
    text_max_bytes: int = 256
    replan_steps: int = 1
    action_names: tuple[str, ...] = ()

    @property
    def pose_actions(self) -> bool:
        """Whether the policy outputs TCP poses or joint deltas (converted to joint targets on the robot side)."""
        return pose_layout_of(self.action_names) is not None or is_joint_delta_layout(self.action_names)


def read_policy_inputs(directory: Path) -> PolicyInputs:
    """:class:`PolicyInputs` from a checkpoint's ``config.json`` and ``rcs_policy.json`` (JSON only)."""
    try:
        cfg = json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"--policy {directory}: no config.json (not a lerobot checkpoint directory)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--policy {directory}/config.json: unreadable ({e})") from None
    _, manifest = read_manifest(directory)
    features = cfg.get("input_features") or {}
    vectors = tuple(k for k, f in features.items() if f.get("type") in ("STATE", "ENV"))
    cameras = []
    for key, f in features.items():
        if f.get("type") == "VISUAL":
            c, h, w = f["shape"]
            cameras.append((key.split(".")[-1], int(h), int(w)))
    chunk = cfg.get("horizon") or cfg.get("chunk_size") or cfg.get("n_action_steps")
    if not isinstance(chunk, int):
        raise ConfigError(f"--policy {directory}/config.json: no chunk length (horizon / chunk_size)")
    text = manifest.get("text") if isinstance(manifest.get("text"), dict) else None
    replan = replan_steps_of(directory, chunk)
    raw_names = manifest.get("names")
    names: dict[str, Any] = raw_names if isinstance(raw_names, dict) else {}
    action_names = names.get("action") or cfg.get("action_names") or ()
    return PolicyInputs(
        vectors,
        tuple(cameras),
        chunk,
        text["name"] if text else None,
        int(text.get("max_bytes", 256)) if text else 256,
        replan,
        tuple(map(str, action_names)),
    )


def expected_schema(env: Any, inputs: PolicyInputs, names: Sequence[str]) -> Schema:
    """The schema the robot side requires, from the robot and env alone (joint names, cameras, rate).

    ``names`` are the executor's command names (joint order + gripper); a server whose schema differs
    (other joint order, other feature sizes, other rate) is refused before any motion. A policy that outputs
    TCP poses (``inputs.pose_actions``) must declare the pose layout instead (+ gripper when ``names`` has one),
    one that outputs joint deltas the ``delta_<joint>`` names in the robot's joint order.
    """
    u = env.unwrapped
    layout = FeatureLayout.for_env(u)
    entry_names = {"observation.state": layout.state_names(), "observation.environment_state": layout.env_state_names()}
    return required_schema(inputs, {k: entry_names[k] for k in inputs.vectors}, names, float(u.dt))


def required_schema(
    inputs: PolicyInputs, vectors: Mapping[str, Sequence[str]], names: Sequence[str], policy_dt: float
) -> Schema:
    """The schema a robot requires of a policy: its vector inputs with these entry names (``vectors``, in the
    order of ``inputs.vectors``), its cameras, its text input, and actions in the robot's command ``names``
    (joint order + gripper), or the pose or joint-delta layout the checkpoint declares, every ``policy_dt`` s."""
    observation = [TensorSpec(k, (len(vectors[k]),), "float32", UNITS[k], tuple(vectors[k])) for k in inputs.vectors]
    observation += [TensorSpec(IMAGE_PREFIX + name, (h, w, 3), "uint8", "px") for name, h, w in inputs.cameras]
    if inputs.text:
        observation.append(text_spec(inputs.text, inputs.text_max_bytes))
    has_gripper = tuple(names[-1:]) == ("gripper",)
    pose = pose_layout_of(inputs.action_names)
    if pose is not None:
        names = pose.names_for(has_gripper)
    elif is_joint_delta_layout(inputs.action_names):
        names = joint_delta_names(names[: len(names) - has_gripper], has_gripper)
    action = TensorSpec(ACTION, (inputs.chunk_size, len(names)), "float32", action_unit(names), tuple(names))
    return Schema(tuple(observation), action, float(policy_dt))


def checkpoint_schema(directory: Path, names: Sequence[str]) -> Schema:
    """The schema a robot with command ``names`` (joint order + gripper) requires of the lerobot checkpoint in
    ``directory``, from the checkpoint's files alone: its inputs (``config.json``), the entry names of its vector
    inputs and its period ``policy_dt`` (s) from its manifest (``rcs_policy.json``, or derived from its training
    dataset's metadata)."""
    inputs = read_policy_inputs(directory)
    _, manifest = read_manifest(directory)
    try:
        vectors = vector_names(manifest, inputs)
    except ConfigError as e:
        raise ConfigError(f"policy checkpoint {directory}: {e}") from None
    policy_dt = manifest.get("policy_dt")
    if isinstance(policy_dt, bool) or not isinstance(policy_dt, int | float) or not policy_dt > 0:
        raise ConfigError(f"policy checkpoint {directory}: policy_dt={policy_dt!r} must be > 0 s")
    return required_schema(inputs, vectors, names, float(policy_dt))


def vector_names(manifest: Mapping[str, Any], inputs: PolicyInputs) -> dict[str, list[str]]:
    """The entry names of each vector input of a checkpoint (``inputs.vectors``), from its manifest's ``names``."""
    raw = manifest.get("names")
    named: dict[str, Any] = raw if isinstance(raw, dict) else {}
    missing = [k for k in inputs.vectors if not isinstance(named.get(k), list)]
    if missing:
        raise ConfigError(f"its manifest names no entries for {missing}")
    return {k: [str(n) for n in named[k]] for k in inputs.vectors}
