"""Replay a joint log in simulation: from each episode's first measured state, send the logged commands one frame
apart and record where the simulated joints go (:mod:`sim.sysid.joint_log` for the alignment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rcs.registry import make_robot
from sim.sysid.joint_log import JointLog


def replay(log: JointLog, robot: str, robot_config: Mapping[str, Any]) -> list[np.ndarray]:
    """Per episode, (T, n) simulated joint positions (rad): row 0 is the measured start, row ``k`` the state after
    replaying ``commands[k]`` for one frame period."""
    arm = make_robot(robot, **dict(robot_config))
    dt = 1.0 / log.fps
    n = len(log.joint_names)
    out = []
    try:
        with arm:
            for states, commands in zip(log.states, log.commands, strict=True):
                arm.reset(seed=0)
                arm.set_joint_positions(states[0])
                predicted = np.empty_like(states)
                predicted[0] = states[0]
                for k in range(1, len(states)):
                    arm.command_joint_positions(commands[k, :n])
                    arm.command_gripper(float(np.clip(commands[k, n], 0.0, 1.0)))
                    arm.advance(dt)
                    predicted[k] = arm.read().joint_positions
                out.append(predicted)
    finally:
        sim = getattr(arm, "simulation", None)
        if sim is not None:
            sim.close()
    return out


def residuals(log: JointLog, predicted: list[np.ndarray]) -> np.ndarray:
    """Every frame's (after the first) and joint's error, simulated minus measured (rad), flattened."""
    return np.concatenate([(p[1:] - s[1:]).reshape(-1) for p, s in zip(predicted, log.states, strict=True)])


def divergence(log: JointLog, predicted: list[np.ndarray]) -> float:
    """Root-mean-square joint error (rad) of a replay against the log."""
    r = residuals(log, predicted)
    return float(np.sqrt(np.mean(r * r)))
