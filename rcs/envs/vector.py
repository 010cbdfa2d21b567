"""Batched forms of the rcs envs for ``gym.make_vec``.

``gym.make_vec("rcs/PandaPickCube-v0", num_envs=N, robot=...)`` comes here (the ids' ``vector_entry_point``). A
robot whose simulator steps many scenes in one call registers a batched env under the entry-point group
``rcs.vector_envs`` as ``"<task>@<robot>"`` (``"pick_cube@isaac/panda" = "sim.isaac.pick_cube_vector:..."``); it
is used when the robot is named. Every other robot gets ``N`` independent one-env copies in gymnasium's
:class:`~gymnasium.vector.SyncVectorEnv` (what ``vectorization_mode="sync"`` gives too).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rcs.registry import vector_envs


def make_pick_cube_vector(num_envs: int = 1, **config: Any) -> gym.vector.VectorEnv:
    """``num_envs`` pick-cube envs (:class:`rcs.envs.pick_cube.PickCubeEnv` config fields as keywords): the robot's
    batched form where one is registered (``pick_cube@<robot>``), else a SyncVectorEnv of one-env copies."""
    name = f"pick_cube@{config.get('robot', '')}"
    if name in vector_envs.names():
        return vector_envs.make(name, num_envs=num_envs, **config)
    from rcs.envs.pick_cube import PickCubeEnv

    return gym.vector.SyncVectorEnv([lambda: PickCubeEnv(**config) for _ in range(num_envs)])
