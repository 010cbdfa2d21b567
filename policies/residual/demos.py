"""Demonstrations for the residual's learner: the scripted pick-cube expert's episodes, as residual actions.

Each step the expert (:class:`rcs.experts.pick_cube.PickCubeExpert`, the policy the shipped base was cloned from)
says where the tool should go; its action (``x y z rx ry rz gripper``, base frame, m, rad) is put in the base's
action layout (e.g. the 6D rotation) and the residual that moves the base's action toward it is taken, bounded
like any residual:

    r = clip((normalize(a_expert) - normalize(a_base)) / scale, -1, 1)    (per entry)

The env executes ``base + scale * r``, so the expert is followed only as far as the bound allows; the transitions
of an episode that succeeds go to the demonstration replay, which :class:`policies.residual.td3.Td3` and
:class:`policies.residual.sac.Sac` mix into every batch (``demo_fraction``). Failed episodes are discarded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rcs.control.cartesian import ROTATION_VECTOR_POSE, pose_layout_of
from rcs.errors import ConfigError
from rcs.experts.pick_cube import PickCubeExpert

from .features import ResidualSpace
from .td3 import NStepReplay


def expert_in_layout(action: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The expert's Cartesian-absolute action in the action layout ``names`` (a TCP pose with a gripper).

    Raises:
        ConfigError: ``names`` is not an absolute TCP-pose layout with a gripper.
    """
    layout = pose_layout_of(names)
    if layout is None or layout.relative or names[-1] != "gripper":
        raise ConfigError(f"demonstrations: the base's actions {list(names)} are not an absolute TCP pose + gripper")
    a = np.asarray(action, dtype=np.float64)
    rotation = layout.from_quaternion(ROTATION_VECTOR_POSE.to_quaternions(a[None, 3:6])[0])
    return np.concatenate([a[:3], rotation, a[6:7]])


def residual_toward(space: ResidualSpace, base_action: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The residual (float32, in [-1, 1]) that moves ``base_action`` toward ``target`` (both action units), as far
    as ``space.scale`` allows: the inverse of :meth:`ResidualSpace.compose` where it is not clipped."""
    step = (space.action.normalize(target) - space.action.normalize(base_action)) / space.bounds
    return np.clip(step, -1.0, 1.0).astype(np.float32)


def collect(env: Any, episodes: int, first_seed: int, replay: NStepReplay) -> tuple[int, int]:
    """Run ``episodes`` expert-guided episodes of ``env`` (a :class:`policies.residual.env.ResidualTaskEnv`) from
    seed ``first_seed``; the successful ones go to ``replay``. Returns (episodes kept, environment steps run)."""
    names = tuple(env.episode.action_names)
    kept = steps = 0
    for k in range(episodes):
        obs, _ = env.reset(seed=first_seed + k)
        expert = PickCubeExpert(env.episode.u.scene, env.dt, seed=first_seed + k)
        transitions = []
        while True:
            target = expert_in_layout(expert(env.task_observation), names)
            act = residual_toward(env.space, env.base_action, target)
            next_obs, reward, terminated, truncated, _ = env.step(act)
            transitions.append((obs, act, reward, next_obs, terminated, truncated))
            steps += 1
            obs = next_obs
            if terminated or truncated:
                break
        if reward > 0:
            kept += 1
            for transition in transitions:
                replay.add(*transition)
    return kept, steps
