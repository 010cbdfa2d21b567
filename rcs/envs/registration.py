"""Gymnasium registration of the rcs envs (ids ``rcs/...``).

Called when :mod:`rcs.envs` is imported; safe to call again. Every id takes keyword overrides of its config, e.g.
``gym.make("rcs/PandaPickCube-v0", control_mode="joint", relative=True)``. The pick-cube ids also have a batched
form: ``gym.make_vec(id, num_envs=N, ...)`` (:mod:`rcs.envs.vector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from rcs.errors import ConfigError

if TYPE_CHECKING:
    from rcs.envs.base import RobotEnv

#: ids with a batched form for ``gym.make_vec`` (rcs.envs.vector), by id
VECTOR_ENTRY_POINTS: dict[str, str] = {
    "rcs/PandaPickCube-v0": "rcs.envs.vector:make_pick_cube_vector",
    "rcs/SO101PickCube-v0": "rcs.envs.vector:make_pick_cube_vector",
}

ENVS: dict[str, tuple[str, dict]] = {
    "rcs/PandaPickCube-v0": ("rcs.envs.pick_cube:PickCubeEnv", {"robot": "sim/panda"}),
    "rcs/SO101PickCube-v0": ("rcs.envs.pick_cube:PickCubeEnv", {"robot": "sim/so101"}),
    "rcs/PandaPickTwoCubes-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda"}),
    # one instruction per id, so `rcs record --env ... --task "pick the red cube"` records one task per dataset
    "rcs/PandaPickRedCube-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda", "colour": "red"}),
    "rcs/PandaPickBlueCube-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda", "colour": "blue"}),
    # task-less: any arm, simulated or physical, for teleoperated recording; the caller names it (robot=...)
    "rcs/ArmTeleop-v0": ("rcs.envs.arm_teleop:ArmTeleopEnv", {}),
    "rcs/QuadrotorHover-v0": ("rcs.envs.quadrotor:QuadrotorEnv", {"task": "hover"}),
    "rcs/QuadrotorTrack-v0": ("rcs.envs.quadrotor:QuadrotorEnv", {"task": "track"}),
}


def register_envs() -> None:
    """Register every rcs env id with gymnasium (idempotent)."""
    for env_id, (entry_point, kwargs) in ENVS.items():
        if env_id not in gym.registry:
            # Truncation is the env's own (config.max_episode_steps), so no TimeLimit wrapper is added.
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=VECTOR_ENTRY_POINTS.get(env_id),
                kwargs=kwargs,
                disable_env_checker=True,
            )


def build_env(env_id: str, **overrides: Any) -> RobotEnv:
    """The registered env ``env_id`` built directly from its entry point with its registered keywords and
    ``overrides`` (config fields), without gymnasium's wrappers: ``gym.make`` would turn ``max_episode_steps`` into
    a TimeLimit wrapper instead of the env's own truncation.

    Raises:
        ConfigError: the id has no entry point or its entry point does not build an rcs env (:class:`RobotEnv`).
    """
    from rcs.envs.base import RobotEnv

    spec = gym.spec(env_id)
    if spec.entry_point is None:
        raise ConfigError(f"env {env_id!r} has no entry point")
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    env = creator(**{**spec.kwargs, **overrides})
    if not isinstance(env, RobotEnv):
        env.close()
        raise ConfigError(f"env {env_id!r} builds a {type(env).__name__}, not an rcs env (RobotEnv)")
    return env
