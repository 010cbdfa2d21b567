"""Gymnasium registration of the rcs envs (ids ``rcs/...``).

Called when :mod:`rcs.envs` is imported; safe to call again. Every id takes keyword overrides of its config, e.g.
``gym.make("rcs/PandaPickCube-v0", control_mode="joint", relative=True)``.
"""

from __future__ import annotations

import gymnasium as gym

ENVS: dict[str, tuple[str, dict]] = {
    "rcs/PandaPickCube-v0": ("rcs.envs.pick_cube:PickCubeEnv", {"robot": "sim/panda"}),
    "rcs/SO101PickCube-v0": ("rcs.envs.pick_cube:PickCubeEnv", {"robot": "sim/so101"}),
    "rcs/PandaPickTwoCubes-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda"}),
    # one instruction per id, so `rcs record --env ... --task "pick the red cube"` records one task per dataset
    "rcs/PandaPickRedCube-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda", "colour": "red"}),
    "rcs/PandaPickBlueCube-v0": ("rcs.envs.pick_two_cubes:PickTwoCubesEnv", {"robot": "sim/panda", "colour": "blue"}),
    "rcs/QuadrotorHover-v0": ("rcs.envs.quadrotor:QuadrotorEnv", {"task": "hover"}),
    "rcs/QuadrotorTrack-v0": ("rcs.envs.quadrotor:QuadrotorEnv", {"task": "track"}),
}


def register_envs() -> None:
    """Register every rcs env id with gymnasium (idempotent)."""
    for env_id, (entry_point, kwargs) in ENVS.items():
        if env_id not in gym.registry:
            # Truncation is the env's own (config.max_episode_steps), so no TimeLimit wrapper is added.
            gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
