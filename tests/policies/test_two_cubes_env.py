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


def test_environment_state_holds_both_cubes_in_a_fixed_order():
    """The dataset layout of the two-cube env: pick-cube's entries, then red and blue poses (names and values)."""
    from rcs.recording.features import ENV_STATE, FeatureLayout, observation_to_features

    env = gym.make("rcs/PandaPickTwoCubes-v0")
    try:
        layout = FeatureLayout.for_env(env)
        names = layout.env_state_names()
        assert names[:10] == [
            "cube_x",
            "cube_y",
            "cube_z",
            "cube_qw",
            "cube_qx",
            "cube_qy",
            "cube_qz",
            "target_x",
            "target_y",
            "target_z",
        ]
        assert names[10:] == [
            "red_x",
            "red_y",
            "red_z",
            "red_qw",
            "red_qx",
            "red_qy",
            "red_qz",
            "blue_x",
            "blue_y",
            "blue_z",
            "blue_qw",
            "blue_qx",
            "blue_qy",
            "blue_qz",
        ]
        assert layout.features()[ENV_STATE]["shape"] == (24,)
        for colour in ("red", "blue"):
            obs, _ = env.reset(seed=5, options={"colour": colour})
            vec = observation_to_features(obs, [], layout.env_state)[ENV_STATE]
            assert vec.shape == (24,)
            np.testing.assert_array_equal(vec[10:13], obs["red_cube_position"])
            np.testing.assert_array_equal(vec[17:20], obs["blue_cube_position"])
            np.testing.assert_array_equal(vec[0:3], obs[f"{colour}_cube_position"])
    finally:
        env.close()
