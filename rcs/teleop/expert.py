"""The scripted pick-cube expert as a teleop "device": simulated demonstrations for ``rcs record``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.experts.pick_cube import Phase, PickCubeExpert
from rcs.teleop.base import PolicyTeleop

#: expert phases executed without noise: the descent onto the cube and the grasp. With noise there, the
#: moment the expert closes the gripper depends on when the perturbed arm happens to settle, which the
#: observation does not show; a policy trained on such data learned to hover over the cube with the gripper open.
QUIET_PHASES = frozenset({Phase.DESCEND, Phase.CLOSE})


class ExpertTeleop(PolicyTeleop):
    """Drives a pick-cube env with :class:`rcs.experts.pick_cube.PickCubeExpert` (Cartesian absolute actions).

    Noise injection (``noise > 0``; DART, Laskey et al. 2017): outside the descent and grasp
    (:data:`QUIET_PHASES`), the executed TCP position target is the expert's plus a slowly varying
    perturbation (per axis an Ornstein-Uhlenbeck process with standard deviation ``noise``
    m and correlation time ``noise_tau`` s, redrawn each episode from the teleop's seed), clipped into the
    action space; the dataset records the expert's own target. The expert plans from its own setpoint and the
    observed cube, so the recorded labels show the way back to its path from the perturbed states a learned
    policy's errors lead to (a missed grasp makes it retry); without noise every demonstration stays on the
    nominal path and a policy that leaves it has never seen a correction.

    Args:
        env: the unwrapped pick-cube env (its scene and control period configure the expert).
        seed: seeds the expert's per-episode variations (speed, hover height, timing) and the noise; None: nominal.
        noise: m, standard deviation of the position perturbation of the executed command (0: none).
        noise_tau: s, its correlation time.
    """

    realtime = False
    name = "expert"

    def __init__(self, env: Any, seed: int | None = None, noise: float = 0.0, noise_tau: float = 0.5) -> None:
        config = env.config
        if (config.control_mode, config.relative) != ("cartesian", False):
            raise ConfigError(
                f"teleop 'expert' produces Cartesian absolute actions; the env has control_mode={config.control_mode!r}, "
                f"relative={config.relative} (use --control-mode cartesian without --relative)"
            )
        noise, noise_tau = _option("noise", noise, 0.0, 0.1), _option("noise_tau", noise_tau, 1e-3, 60.0)
        self.expert = PickCubeExpert(env.scene, env.dt, seed=seed)
        self.seed = seed
        self.noise, self.noise_tau = noise, noise_tau
        self._decay = math.exp(-env.dt / noise_tau)
        self._low, self._high = env.action_space.low, env.action_space.high
        self._rng = np.random.default_rng(None if seed is None else [seed, 1])
        self._offset: np.ndarray = np.zeros(3)

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.expert.reset()
        self._offset = self._rng.normal(0.0, self.noise, 3) if self.noise else np.zeros(3)

    def action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self.expert.command_offset = self._offset  # what the last executed command added to the expert's
        return self.expert(obs)

    def executed(self, action: np.ndarray) -> np.ndarray:
        """``action`` with the position perturbation (see the class docstring); the same without noise."""
        if not self.noise:
            return action
        if self.expert.phase in QUIET_PHASES:
            self._offset = np.zeros(3)
            return action
        step = self._rng.normal(0.0, self.noise * math.sqrt(1.0 - self._decay**2), 3)
        self._offset = self._decay * self._offset + step
        out = np.array(action, dtype=np.float32, copy=True)
        out[:3] += self._offset
        return np.clip(out, self._low, self._high).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "teleop": self.name,
            "expert": "rcs.experts.pick_cube.PickCubeExpert",
            "expert_seed": self.seed,
            "execution_noise_m": self.noise,
            "execution_noise_tau_s": self.noise_tau,
        }


def _option(name: str, value: Any, low: float, high: float) -> float:
    """A numeric teleop option (``--teleop-option NAME=VALUE`` passes strings) within [low, high]."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"teleop option {name}={value!r}: expected a number in [{low}, {high}]") from None
    if not (low <= out <= high) and not (name == "noise" and out == 0.0):
        raise ConfigError(f"teleop option {name}={value!r}: must be in [{low}, {high}]")
    return out


def make_expert(env: Any, seed: int | None = None, noise: Any = 0.0, noise_tau: Any = 0.5, **_: Any) -> ExpertTeleop:
    """Registry factory ``"expert"`` (options ``noise`` m and ``noise_tau`` s, see :class:`ExpertTeleop`)."""
    return ExpertTeleop(env, seed=seed, noise=noise, noise_tau=noise_tau)
