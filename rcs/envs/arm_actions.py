"""Arm action modes: joint or Cartesian targets, absolute or relative, each with its space from the spec.

Every mode maps a flat float32 action to arm commands; the last element is always the gripper target
(normalized width, 0 closed, 1 open). Layouts:

- ``joint`` absolute: ``[q_1..q_n (rad), gripper]``, bounds = joint limits.
- ``joint`` relative: ``[dq_1..dq_n (rad), gripper]``, ``|dq_i| <= max_velocity_i * dt``, added to the
  previous joint *target* (not the measured position, so gravity sag does not accumulate).
- ``cartesian`` absolute: ``[x, y, z (m), rx, ry, rz (rotation vector, rad), gripper]`` of the TCP in the
  base frame; position bounds = the scene's TCP workspace box.
- ``cartesian`` relative: ``[dx, dy, dz, drx, dry, drz, gripper]``, ``|dp| <= max_linear_speed * dt``,
  ``|dr| <= max_angular_speed * dt`` (rotation applied in the base frame), added to the previous TCP target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from rcs.devices import Arm
from rcs.geometry import quat_from_rotvec, quat_multiply, quat_to_rotvec
from rcs.spec import TableSceneSpec
from rcs.validation import enforce_bounds


@dataclass(frozen=True)
class ArmActionLimits:
    """Speed bounds of relative modes (SI): per-step deltas are these times the control period."""

    max_linear_speed: float = 0.5  # m/s
    max_angular_speed: float = 2.0  # rad/s


class ArmActionMode(ABC):
    """Base: holds the current target so relative modes integrate it."""

    def __init__(self, arm: Arm, scene: TableSceneSpec, dt: float, limits: ArmActionLimits) -> None:
        self.arm, self.scene, self.dt, self.limits = arm, scene, dt, limits
        self.space = self._make_space()

    @abstractmethod
    def _make_space(self) -> spaces.Box:
        """The action space of this mode (called once, by ``__init__``)."""

    @abstractmethod
    def reset(self) -> None:
        """Re-anchor targets at the arm's current state."""

    @abstractmethod
    def apply(self, action: np.ndarray) -> None:
        """Send the commands for one action (already checked against :attr:`space` by the env)."""

    def _gripper(self, action: np.ndarray) -> None:
        if self.arm.spec.gripper is not None:
            self.arm.command_gripper(float(action[-1]))


def _box(low: np.ndarray, high: np.ndarray) -> spaces.Box:
    return spaces.Box(np.append(low, 0.0).astype(np.float32), np.append(high, 1.0).astype(np.float32), dtype=np.float32)


class JointAbsolute(ArmActionMode):
    def _make_space(self) -> spaces.Box:
        return _box(self.arm.spec.lower, self.arm.spec.upper)

    def reset(self) -> None:
        pass

    def apply(self, action: np.ndarray) -> None:
        self.arm.command_joint_positions(action[:-1])
        self._gripper(action)


class JointRelative(ArmActionMode):
    def _make_space(self) -> spaces.Box:
        step = self.arm.spec.max_velocity * self.dt
        return _box(-step, step)

    def reset(self) -> None:
        self._target = self.arm.read().joint_positions.copy()

    def apply(self, action: np.ndarray) -> None:
        self._target = self.arm.command_joint_positions(self._target + action[:-1])
        self._gripper(action)


class CartesianAbsolute(ArmActionMode):
    def _make_space(self) -> spaces.Box:
        ws = self.scene.workspace
        return _box(np.r_[ws.lower, [-np.pi] * 3], np.r_[ws.upper, [np.pi] * 3])

    def reset(self) -> None:
        pass

    def apply(self, action: np.ndarray) -> None:
        self.arm.command_cartesian_pose(action[:3], quat_from_rotvec(action[3:6]))
        self._gripper(action)


class CartesianRelative(ArmActionMode):
    def _make_space(self) -> spaces.Box:
        dp = self.limits.max_linear_speed * self.dt
        dr = self.limits.max_angular_speed * self.dt
        return _box(np.r_[[-dp] * 3, [-dr] * 3], np.r_[[dp] * 3, [dr] * 3])

    def reset(self) -> None:
        state = self.arm.read()
        self._position = state.tcp_position.copy()
        self._quaternion = state.tcp_quaternion.copy()

    def apply(self, action: np.ndarray) -> None:
        ws = self.scene.workspace
        position = enforce_bounds(
            "cartesian_position",
            self._position + action[:3],
            ws.lower,
            ws.upper,
            self.arm.limit_policy,
            self.arm.clip_report,
            ("x", "y", "z"),
            "m",
        )
        quaternion = quat_multiply(quat_from_rotvec(action[3:6]), self._quaternion)
        self.arm.command_cartesian_pose(position, quaternion)
        self._position, self._quaternion = position, quaternion
        self._gripper(action)


ARM_ACTION_MODES: dict[tuple[str, bool], type[ArmActionMode]] = {
    ("joint", False): JointAbsolute,
    ("joint", True): JointRelative,
    ("cartesian", False): CartesianAbsolute,
    ("cartesian", True): CartesianRelative,
}


def rotvec_of(quaternion: np.ndarray) -> np.ndarray:
    """Rotation vector (rad) of a TCP orientation, as used in Cartesian-absolute actions."""
    return quat_to_rotvec(quaternion)
