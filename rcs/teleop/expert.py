"""The scripted pick-cube expert as a teleop "device": simulated demonstrations for ``rcs record``."""

from __future__ import annotations

from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.experts.pick_cube import PickCubeExpert
from rcs.teleop.base import PolicyTeleop


class ExpertTeleop(PolicyTeleop):
    """Drives a pick-cube env with :class:`rcs.experts.pick_cube.PickCubeExpert` (Cartesian absolute actions).

    Args:
        env: the unwrapped pick-cube env (its scene and control period configure the expert).
        seed: seeds the expert's per-episode variations (speed, hover height, timing); None: nominal.
    """

    realtime = False
    name = "expert"

    def __init__(self, env: Any, seed: int | None = None) -> None:
        config = env.config
        if (config.control_mode, config.relative) != ("cartesian", False):
            raise ConfigError(
                f"teleop 'expert' produces Cartesian absolute actions; the env has control_mode={config.control_mode!r}, "
                f"relative={config.relative} (use --control-mode cartesian without --relative)"
            )
        self.expert = PickCubeExpert(env.scene, env.dt, seed=seed)
        self.seed = seed

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.expert.reset()

    def action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert(obs)

    def describe(self) -> dict[str, Any]:
        return {"teleop": self.name, "expert": "rcs.experts.pick_cube.PickCubeExpert", "expert_seed": self.seed}


def make_expert(env: Any, seed: int | None = None, **_: Any) -> ExpertTeleop:
    """Registry factory ``"expert"``."""
    return ExpertTeleop(env, seed=seed)
