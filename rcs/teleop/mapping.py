"""Map :class:`~rcs.teleop.base.TeleopCommand` onto the action of an arm env's action mode.

The mapper keeps a TCP setpoint (position m, quaternion wxyz, base frame) and a gripper target. Twists integrate
the setpoint over the control period (clipped to the scene's workspace box); absolute joint targets (leader arms)
replace it through forward kinematics. Each action mode then reads the setpoint its own way:

- ``cartesian`` absolute: ``[p, rotvec(q), g]``.
- ``cartesian`` relative: the change of the setpoint since the previous action, clipped to the action space.
- ``joint`` absolute: IK of the setpoint (or the leader's joints directly).
- ``joint`` relative: the change of that joint target since the previous action, clipped to the action space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rcs.geometry import quat_conjugate, quat_from_rotvec, quat_multiply, quat_normalize, quat_to_rotvec
from rcs.teleop.base import TeleopCommand


class ActionMapper:
    """Turns device commands into env actions for one pick-cube-style arm env.

    Args:
        env: the (unwrapped) env: needs ``arm`` (an :class:`rcs.devices.Arm`), ``scene`` (workspace box), ``dt``,
            ``config.control_mode``, ``config.relative`` and ``action_space``.
    """

    def __init__(self, env: Any) -> None:
        self.arm = env.arm
        self.workspace = env.scene.workspace
        self.dt = float(env.dt)
        self.mode = (env.config.control_mode, bool(env.config.relative))
        if self.mode not in _MODES:
            raise ValueError(
                f"control_mode={self.mode[0]!r} relative={self.mode[1]}: no teleop mapping for this action mode"
            )
        self.low = env.action_space.low.astype(np.float64)
        self.high = env.action_space.high.astype(np.float64)
        self.position: np.ndarray = np.zeros(3)
        self.quaternion: np.ndarray = np.array([1.0, 0.0, 0.0, 0.0])
        self.gripper = 1.0
        self.joints = np.zeros(self.arm.spec.dof)
        self._last_joints = self.joints.copy()

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        """Anchor the setpoint at the observed TCP pose, joints and gripper."""
        self.position = np.asarray(obs["tcp_position"], dtype=np.float64).copy()
        self.quaternion = quat_normalize(np.asarray(obs["tcp_quaternion"], dtype=np.float64))
        self.gripper = float(np.asarray(obs["gripper"]).reshape(-1)[0])
        self.joints = np.asarray(obs["joint_positions"], dtype=np.float64).copy()
        self._last_joints = self.joints.copy()
        self._last_position, self._last_quaternion = self.position.copy(), self.quaternion.copy()

    def action(self, cmd: TeleopCommand) -> np.ndarray:
        """The env action (float32) for ``cmd``, after updating the setpoint."""
        if cmd.joint_positions is not None:
            q = np.asarray(cmd.joint_positions, dtype=np.float64)
            if q.shape != (self.arm.spec.dof,):
                raise ValueError(
                    f"joint_positions: expected ({self.arm.spec.dof},) for {self.arm.spec.joint_names}, got {q.shape}"
                )
            self.joints = np.clip(q, self.arm.spec.lower, self.arm.spec.upper)
            self.position, self.quaternion = self.arm.kinematics.forward(self.joints)
            self._joints_from_leader = True
        else:
            self._joints_from_leader = False
            if cmd.twist is not None:
                twist = np.asarray(cmd.twist, dtype=np.float64)
                if twist.shape != (6,) or not np.isfinite(twist).all():
                    raise ValueError(f"twist: expected 6 finite values (m/s, rad/s), got {twist}")
                self.position = self.workspace.clip(self.position + twist[:3] * self.dt)
                self.quaternion = quat_normalize(quat_multiply(quat_from_rotvec(twist[3:] * self.dt), self.quaternion))
        if cmd.gripper is not None:
            self.gripper = float(cmd.gripper)
        self.gripper = float(np.clip(self.gripper + cmd.gripper_velocity * self.dt, 0.0, 1.0))
        body = _MODES[self.mode](self)
        return np.clip(np.append(body, self.gripper), self.low, self.high).astype(np.float32)

    # -- per mode ---------------------------------------------------------------------------------------
    def _cartesian_absolute(self) -> np.ndarray:
        return np.r_[self.position, quat_to_rotvec(self.quaternion)]

    def _cartesian_relative(self) -> np.ndarray:
        dp = np.clip(self.position - self._last_position, self.low[:3], self.high[:3])
        dr = np.clip(
            quat_to_rotvec(quat_multiply(self.quaternion, quat_conjugate(self._last_quaternion))),
            self.low[3:6],
            self.high[3:6],
        )
        self._last_position = self._last_position + dp
        self._last_quaternion = quat_normalize(quat_multiply(quat_from_rotvec(dr), self._last_quaternion))
        self.position, self.quaternion = self._last_position.copy(), self._last_quaternion.copy()
        return np.r_[dp, dr]

    def _ik(self) -> np.ndarray:
        if not self._joints_from_leader:
            self.joints = self.arm.kinematics.inverse(self.position, self.quaternion, self.joints).joint_positions
        return self.joints

    def _joint_absolute(self) -> np.ndarray:
        return self._ik()

    def _joint_relative(self) -> np.ndarray:
        target = self._ik()
        n = self.arm.spec.dof
        dq = np.clip(target - self._last_joints, self.low[:n], self.high[:n])
        self._last_joints = self._last_joints + dq
        return dq


_MODES: dict[tuple[str, bool], Callable[[ActionMapper], np.ndarray]] = {
    ("cartesian", False): ActionMapper._cartesian_absolute,
    ("cartesian", True): ActionMapper._cartesian_relative,
    ("joint", False): ActionMapper._joint_absolute,
    ("joint", True): ActionMapper._joint_relative,
}
