"""The batched pick-cube on Isaac Lab (gym.make_vec, sim.isaac.pick_cube_vector): 4 envs in one world, run in
.venv-isaac; its spaces are compared here with the one-env MuJoCo task's."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

import rcs.envs  # noqa: F401  (registers the ids)
from tests.isaac.conftest import run_isaac

HOME_JOINT1 = 0.0  # rad: the Panda's home joint1 (sim.mujoco.arm.PANDA)


def test_batched_isaac_pick_cube_is_the_one_env_task_in_every_env(isaac_venv: Path) -> None:
    r = run_isaac(isaac_venv, "vector_env", {})
    assert r["type"] == "IsaacPickCubeVectorEnv"
    one = gym.make("rcs/PandaPickCube-v0", control_mode="joint")
    try:
        for key, box in one.observation_space.spaces.items():
            got = r["single_observation_space"][key]
            assert got["shape"] == list(box.shape) and got["dtype"] == str(box.dtype), key
            assert np.array_equal(got["low"], box.low) and np.array_equal(got["high"], box.high), key
        assert set(r["single_observation_space"]) == set(one.observation_space.spaces)
        a = one.action_space
        assert r["single_action_space"]["shape"] == list(a.shape)
        assert np.array_equal(r["single_action_space"]["low"], a.low)
        assert np.array_equal(r["single_action_space"]["high"], a.high)
    finally:
        one.close()
    # a seed gives the same episode starts; every env gets its own draw
    assert r["reset_repeats"] and r["distinct_cubes"] == 4 and r["obs_in_space"]
    # success is judged per env against its own goal (env origins subtracted): only env 2's cube was put there
    assert r["success_after_placing"] == [False, False, True, False], r["success_after_placing"]
    assert r["reward"][2] > 0.5 > max(r["reward"][i] for i in (0, 1, 3))
    # each env follows its own action: env 1's joint1 turned towards +0.4 rad, the others stayed at home
    assert r["joint1"][1] > HOME_JOINT1 + 0.1 and abs(r["joint1"][0] - HOME_JOINT1) < 0.01
    assert r["others_from_home"] < 0.02
    # the TCP from Isaac's body poses is MuJoCo's forward kinematics of the same joints
    assert r["tcp_error"] < 1e-5 and r["tcp_angle"] < 1e-4, (r["tcp_error"], r["tcp_angle"])
    # restarting one env leaves the others where they were, with their controls
    assert r["restart_others_jump"] < 1e-6 and r["restart_others_ctrl"] == 0.0
    assert abs(r["restarted_joint1"] - HOME_JOINT1) < 1e-6
    # truncation at max_episode_steps, same-step autoreset: final observation kept, new episode returned
    assert r["truncated_before"] == [False] * 4 and r["truncated_at_horizon"] == [True] * 4
    assert r["final_mask"] == [True] * 4
    assert r["final_joint1"][1] > HOME_JOINT1 + 0.05  # env 1's last observation, before the restart
    assert {"is_success", "cube_to_target", "tcp_to_cube", "clipped_actions"} <= set(r["final_info_keys"])
    assert r["restarted_from_home"] < 1e-3 and r["new_targets_differ"]
    # bad input: one line naming the field and the limit
    e = r["errors"]
    assert e["shape"].startswith("actions.shape=(3, 8) violates shape (4, 8)"), e["shape"]
    assert e["nan"].startswith("actions[0].joint4=nan violates a finite value"), e["nan"]
    assert "control_mode='cartesian'" in e["cartesian"] and "joint actions only" in e["cartesian"]
    assert "num_envs=0" in e["num_envs_zero"]
    assert r["clipped_counts"] == [1, 0, 0, 0]


def test_make_vec_of_a_robot_without_a_batched_form_is_one_env_per_copy() -> None:
    """sim/panda has no batched form: gym.make_vec gives SyncVectorEnv copies of the one-env task."""
    envs = gym.make_vec("rcs/PandaPickCube-v0", num_envs=2, control_mode="joint")
    try:
        assert isinstance(envs, gym.vector.SyncVectorEnv)
        obs, _ = envs.reset(seed=1)
        assert obs["cube_position"].shape == (2, 3)
        assert not np.array_equal(obs["cube_position"][0], obs["cube_position"][1])
        obs, reward, *_ = envs.step(
            np.tile(envs.single_action_space.sample() * 0 + envs.single_action_space.low, (2, 1))
        )
        assert reward.shape == (2,)
    finally:
        envs.close()
