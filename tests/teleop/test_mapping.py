"""ActionMapper: one device command drives every arm action mode of the real pick-cube env the same way."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator

import rcs.envs  # noqa: F401
from rcs.teleop.base import TeleopCommand
from rcs.teleop.mapping import ActionMapper


def _env(mode: str, relative: bool):
    import gymnasium as gym

    spec = gym.spec("rcs/PandaPickCube-v0")
    return load_env_creator(spec.entry_point)(**{**spec.kwargs, "control_mode": mode, "relative": relative})


@pytest.mark.parametrize(
    ("mode", "relative"), [("cartesian", False), ("cartesian", True), ("joint", False), ("joint", True)]
)
def test_twist_moves_the_tcp_in_every_action_mode(mode, relative):
    env = _env(mode, relative)
    try:
        obs, _ = env.reset(seed=0)
        mapper = ActionMapper(env)
        mapper.reset(obs)
        start = obs["tcp_position"].astype(np.float64)
        steps = 20  # 1 s at 20 Hz
        for _ in range(steps):
            action = mapper.action(TeleopCommand(twist=np.array([0.05, 0.0, 0.03, 0.0, 0.0, 0.0]), gripper=0.5))
            assert env.action_space.contains(action), (mode, relative, action)
            obs, *_ = env.step(action)
        moved = obs["tcp_position"] - start
        # 5 cm forward, 3 cm up commanded over one second (the servo lags a little behind the setpoint)
        assert moved[0] == pytest.approx(0.05, abs=0.012) and moved[2] == pytest.approx(0.03, abs=0.012), moved
        assert abs(moved[1]) < 0.01
        assert action[-1] == pytest.approx(0.5)
    finally:
        env.close()


def test_joint_targets_from_a_leader_and_bad_commands():
    env = _env("joint", False)
    try:
        obs, _ = env.reset(seed=0)
        mapper = ActionMapper(env)
        mapper.reset(obs)
        q = np.asarray(env.arm.spec.home) + 0.1
        action = mapper.action(TeleopCommand(joint_positions=q, gripper=1.0))
        assert action[:-1] == pytest.approx(q, abs=1e-6)
        with pytest.raises(ValueError, match=r"joint_positions: expected \(7,\)"):
            mapper.action(TeleopCommand(joint_positions=q[:6]))
        with pytest.raises(ValueError, match="twist: expected 6 finite values"):
            mapper.action(TeleopCommand(twist=np.array([np.nan, 0, 0, 0, 0, 0])))
    finally:
        env.close()


def test_workspace_box_bounds_the_setpoint():
    env = _env("cartesian", False)
    try:
        obs, _ = env.reset(seed=0)
        mapper = ActionMapper(env)
        mapper.reset(obs)
        for _ in range(200):  # 10 s upward at 0.5 m/s: far beyond the box
            action = mapper.action(TeleopCommand(twist=np.array([0.0, 0.0, 0.5, 0.0, 0.0, 0.0])))
        assert action[2] == pytest.approx(env.scene.workspace.upper[2])
    finally:
        env.close()
