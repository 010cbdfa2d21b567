"""The arm's own part of an arm env's observation, defined once for every arm task.

Keys (float32, arm base frame): ``joint_positions`` (rad), ``joint_velocities`` (rad/s), ``gripper`` (1,)
normalized width (0 closed, 1 open; 0 on an arm without a gripper, which reads NaN: finite values keep dataset
statistics and teleop actions valid), ``tcp_position`` (m), ``tcp_quaternion`` (w, x, y, z).
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from rcs.spec import ArmSpec
from rcs.types import ArmState


def arm_state_spaces(spec: ArmSpec) -> dict[str, spaces.Box]:
    """Observation spaces of the arm state keys (joint positions bounded by the spec's limits)."""
    f32 = np.float32
    n = spec.dof
    return {
        "joint_positions": spaces.Box(spec.lower.astype(f32), spec.upper.astype(f32), dtype=f32),
        "joint_velocities": spaces.Box(-np.inf, np.inf, (n,), dtype=f32),
        "gripper": spaces.Box(0.0, 1.0, (1,), dtype=f32),
        "tcp_position": spaces.Box(-np.inf, np.inf, (3,), dtype=f32),
        "tcp_quaternion": spaces.Box(-1.0, 1.0, (4,), dtype=f32),
    }


def arm_state_observation(state: ArmState) -> dict[str, np.ndarray]:
    """The arm state keys of one reading."""
    gripper = state.gripper if math.isfinite(state.gripper) else 0.0
    return {
        "joint_positions": state.joint_positions.astype(np.float32),
        "joint_velocities": state.joint_velocities.astype(np.float32),
        "gripper": np.array([gripper], dtype=np.float32),
        "tcp_position": state.tcp_position.astype(np.float32),
        "tcp_quaternion": state.tcp_quaternion.astype(np.float32),
    }
