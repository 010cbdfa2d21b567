"""The robot path in lockstep (rcs/eval/lockstep.py): the chunk a policy returns goes through the same action map,
executor, watchdog and safety filter as under `rcs eval`, one policy period per step, on real MuJoCo physics."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.control.cartesian import ROTATION_6D_POSE
from rcs.envs.registration import build_env, register_envs
from rcs.eval.lockstep import LockstepEpisode

POSE_NAMES = [*ROTATION_6D_POSE.names, "gripper"]


@pytest.fixture
def episode():
    register_envs()
    env = build_env("rcs/PandaPickCube-v0")
    yield LockstepEpisode(env, POSE_NAMES, policy_dt=0.05)
    env.close()


def pose_chunk(obs: dict, offset: np.ndarray, rows: int = 2) -> np.ndarray:
    """The TCP pose of ``obs`` moved by ``offset`` (m), its orientation kept, gripper open; ``rows`` times."""
    q = np.asarray(obs["tcp_quaternion"], dtype=np.float64)
    rot6d = ROTATION_6D_POSE.from_quaternion(q)
    row = np.concatenate([np.asarray(obs["tcp_position"], dtype=np.float64) + offset, rot6d, [1.0]])
    return np.tile(row, (rows, 1))


def test_a_pose_chunk_moves_the_arm_through_ik_executor_and_safety(episode):
    obs = episode.reset(seed=1)
    start = np.asarray(obs["tcp_position"], dtype=np.float64)
    goal = start + np.array([0.0, 0.0, 0.05])
    for _ in range(30):  # 1.5 s of simulated time toward a point 5 cm higher
        result = episode.step(pose_chunk(obs, goal - np.asarray(obs["tcp_position"])))
        assert result.submitted == "submitted"
        obs = result.observation
    assert np.linalg.norm(np.asarray(obs["tcp_position"]) - goal) < 0.01
    assert episode.sim_time == pytest.approx(0.01 + 30 * 0.05)  # the engaging tick, then 5 ticks per step
    assert episode.task.stage.value == "running"


def test_a_non_finite_chunk_is_refused_and_the_arm_holds(episode):
    obs = episode.reset(seed=2)
    chunk = pose_chunk(obs, np.zeros(3))
    chunk[0, 4] = np.nan
    result = episode.step(chunk)
    assert result.submitted == "rejected_action_map"
    held = np.asarray(result.observation["tcp_position"])
    for _ in range(5):
        result = episode.step(chunk)
    assert np.linalg.norm(np.asarray(result.observation["tcp_position"]) - held) < 1e-3
    assert episode.task.stage.value != "running"  # no valid chunk: the watchdog holds the arm


def test_lockstep_needs_a_simulated_robot_and_whole_control_periods():
    from rcs.errors import ConfigError

    register_envs()
    env = build_env("rcs/PandaPickCube-v0")
    try:
        with pytest.raises(ConfigError, match="not a whole number of control periods"):
            LockstepEpisode(env, POSE_NAMES, policy_dt=0.0555)
    finally:
        env.close()


def test_a_late_chunk_arrives_after_its_observation_within_the_period(episode):
    obs = episode.reset(seed=3)
    chunk = pose_chunk(obs, np.array([0.0, 0.0, 0.02]))
    t0 = episode.sim_time
    result = episode.step(chunk, latency_s=0.03)  # 3 control ticks after the observation
    assert result.submitted == "submitted" and episode.sim_time == pytest.approx(t0 + 0.05)
    with pytest.raises(ValueError, match=r"latency_s=0.05 must be in \[0, policy_dt=0.05\)"):
        episode.step(chunk, latency_s=0.05)
