"""Observations that devices return, and the commands they accept.

Every observation carries a monotonic capture timestamp.

``timestamp`` is ``time.monotonic()`` (s) on the host when the reading was captured (for hardware, when the
driver received it; for a simulator, when the state was read). Units and frames follow :mod:`rcs.geometry`.
Arrays are fresh copies owned by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ArmState:
    """State of an arm.

    Attributes:
        timestamp: monotonic capture time (s).
        joint_positions: (n,) rad (m for prismatic joints), in :attr:`ArmSpec.joints` order.
        joint_velocities: (n,) rad/s.
        joint_efforts: (n,) N m, actuator torques.
        gripper: normalized width in [0, 1] (0 closed), ``nan`` if the arm has no gripper.
        tcp_position: (3,) m, tool centre point in the arm's base frame.
        tcp_quaternion: (4,) (w, x, y, z), tool orientation in the base frame.
    """

    timestamp: float
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    joint_efforts: np.ndarray
    gripper: float
    tcp_position: np.ndarray
    tcp_quaternion: np.ndarray


@dataclass(frozen=True, slots=True)
class QuadrotorState:
    """State of a multirotor.

    Attributes:
        timestamp: monotonic capture time (s).
        position: (3,) m, body origin in the world frame (ENU: x forward/east, y left/north, z up).
        quaternion: (4,) (w, x, y, z), body (FLU) orientation in the world frame.
        linear_velocity: (3,) m/s, in the world frame.
        angular_velocity: (3,) rad/s, body rates in the body frame (roll, pitch, yaw rate).
        motor_thrusts: (n,) N, current thrust of each rotor (after motor lag), command order.
        armed: whether the motors may spin.
    """

    timestamp: float
    position: np.ndarray
    quaternion: np.ndarray
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    motor_thrusts: np.ndarray
    armed: bool


@dataclass(frozen=True, slots=True)
class CameraIntrinsics:
    """Pinhole intrinsics (pixels) of an undistorted image."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def matrix(self) -> np.ndarray:
        """3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy: float) -> CameraIntrinsics:
        """Square-pixel pinhole intrinsics from a vertical field of view (rad)."""
        f = 0.5 * height / np.tan(0.5 * fovy)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """One image.

    Attributes:
        timestamp: monotonic capture time (s).
        image: (H, W, 3) uint8 RGB.
        intrinsics: pinhole intrinsics.
        extrinsics: 4x4 pose of the camera optical frame (z forward, x right, y down) in the world frame.
        frame_index: count of frames delivered by this camera since connect.
    """

    timestamp: float
    image: np.ndarray
    intrinsics: CameraIntrinsics
    extrinsics: np.ndarray
    frame_index: int


@dataclass(frozen=True)
class Command:
    """A command for one of a device's command interfaces.

    Attributes:
        mode: the command interface, e.g. ``"joint_positions"`` (arms: joint targets in rad followed by the
            normalized gripper width if the arm has one), ``"position"`` (quadrotors: x, y, z in m, world
            frame, then yaw in rad), ``"thrust_rates"`` (collective thrust N, then body rates rad/s FLU),
            ``"motor_thrusts"`` (normalized per-rotor thrust), or ``"disarm"`` (no values).
        values: (n,) float64 command vector in the mode's layout.
    """

    mode: str
    values: np.ndarray


def command_vector_of_arm(state: ArmState, with_gripper: bool) -> np.ndarray:
    """The ``"joint_positions"`` command vector that holds the arm where ``state`` measured it."""
    q = np.asarray(state.joint_positions, dtype=np.float64)
    if not with_gripper:
        return q.copy()
    g = state.gripper if np.isfinite(state.gripper) else 0.0
    return np.concatenate([q, [float(g)]])
