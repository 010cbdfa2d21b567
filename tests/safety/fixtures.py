"""Test robots shared by the safety and executor tests: a 2-link planar arm and a small quadrotor."""

from __future__ import annotations

import math

import numpy as np

from rcs.spec import ArmSpec, JointSpec, QuadrotorSpec, WorkspaceBox

#: The planar arm's workspace box in its base frame (m): the TCP starts inside it.
PLANAR_BOX = WorkspaceBox((0.3, -1.0, 0.2), (0.8, 1.0, 0.6), frame="base")


def planar_fk(q: np.ndarray) -> np.ndarray:
    """TCP of a 2-link planar arm (0.4 m + 0.3 m) in the x-z plane at height 0.3 m, base frame (m); joints
    beyond the second are ignored. Its Lipschitz bound is (0.7, 0.3) m/rad."""
    a = q[0]
    b = q[0] + (q[1] if len(q) > 1 else 0.0)
    return np.array([0.4 * math.cos(a) + 0.3 * math.cos(b), 0.0, 0.3 + 0.4 * math.sin(a) + 0.3 * math.sin(b)])


def planar_arm(accel: float = 30.0, vel: float = 3.0, start: tuple[float, float] = (0.0, 0.5)) -> ArmSpec:
    """The planar arm's spec: joints a, b in [-3, 3] rad, ``vel`` rad/s, ``accel`` rad/s^2, home ``start``."""
    joints = (JointSpec("a", -3, 3, vel, 1, accel), JointSpec("b", -3, 3, vel, 1, accel))
    return ArmSpec("planar", joints, None, "base", "tcp", 100, start)


#: A 30 g quadrotor in X configuration (Crazyflie-like numbers, SI units).
QUAD = QuadrotorSpec(
    "quad",
    0.03,
    (1e-5, 1e-5, 2e-5),
    ((0.03, -0.03), (-0.03, -0.03), (-0.03, 0.03), (0.03, 0.03)),
    (1, -1, 1, -1),
    0.15,
    0.02,
    0.02,
    (10.0, 10.0, 5.0),
    100.0,
)
#: Its geofence (world frame, m).
FENCE = WorkspaceBox((-2.0, -2.0, 0.0), (2.0, 2.0, 3.0))
