"""Run a policy in an env for one episode: the loop shared by the demo, evaluation and data collection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

Policy = Callable[[dict], np.ndarray]


@dataclass
class EpisodeResult:
    """What one episode produced.

    Attributes:
        success: ``info["is_success"]`` at the last step.
        steps: env steps taken.
        infos: the info dict of every step.
        frames: rendered frames (every ``render_every``-th step) when rendering was asked for.
    """

    success: bool
    steps: int
    infos: list[dict] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int | None = None,
    render_every: int = 0,
    reset_policy: Callable[[], None] | None = None,
) -> EpisodeResult:
    """Reset with ``seed``, act with ``policy(obs)`` until terminated or truncated.

    ``render_every=k > 0`` keeps ``env.render()`` of every k-th step (the env needs ``render_mode="rgb_array"``).
    """
    obs, info = env.reset(seed=seed)
    if reset_policy is not None:
        reset_policy()
    result = EpisodeResult(success=False, steps=0)
    if render_every:
        result.frames.append(_frame(env))
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        result.steps += 1
        result.infos.append(info)
        if render_every and result.steps % render_every == 0:
            result.frames.append(_frame(env))
        done = terminated or truncated
    result.success = bool(info.get("is_success", False))
    return result


def _frame(env: gym.Env) -> np.ndarray:
    """``env.render()`` as an RGB array; anything else means the env was not made with ``render_mode="rgb_array"``."""
    frame = env.render()
    if not isinstance(frame, np.ndarray):
        raise ValueError(
            f"render_every needs an env made with render_mode='rgb_array' (env.render() gave {type(frame).__name__})"
        )
    return frame
