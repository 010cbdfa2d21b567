"""The two-cube language task: the instruction decides which cube the scripted expert brings to the goal."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rcs.envs  # noqa: F401  (registers the ids)
from rcs.errors import ConfigError
from rcs.experts.pick_cube import PickCubeExpert


@pytest.mark.parametrize("colour", ["red", "blue"])
def test_expert_picks_the_instructed_cube_and_leaves_the_other(colour):
    env = gym.make("rcs/PandaPickTwoCubes-v0")
    u = env.unwrapped
    try:
        obs, info = env.reset(seed=3, options={"colour": colour})
        assert u.instruction == f"pick the {colour} cube"
        other = "blue" if colour == "red" else "red"
        np.testing.assert_array_equal(obs["cube_position"], obs[f"{colour}_cube_position"])
        start_other = obs[f"{other}_cube_position"].copy()
        assert np.linalg.norm(obs["red_cube_position"][:2] - obs["blue_cube_position"][:2]) >= 0.08
        expert = PickCubeExpert(u.scene, u.dt)
        for _ in range(200):
            obs, _, terminated, _, info = env.step(expert(obs))
            if info["is_success"] or terminated:
                break
        assert info["is_success"] and info["instruction"] == u.instruction
        assert not info["wrong_cube_lifted"]
        assert np.linalg.norm(obs[f"{other}_cube_position"] - start_other) < 0.01
    finally:
        env.close()


def test_instruction_is_drawn_from_the_seed_and_checked():
    env = gym.make("rcs/PandaPickTwoCubes-v0")
    try:
        colours = set()
        for seed in range(8):
            env.reset(seed=seed)
            colours.add(env.unwrapped.colour)
        assert colours == {"red", "blue"}
        env.reset(seed=1)
        first = env.unwrapped.colour
        env.reset(seed=1)
        assert env.unwrapped.colour == first
        with pytest.raises(ConfigError, match="colour"):
            env.reset(seed=0, options={"colour": "green"})
    finally:
        env.close()
