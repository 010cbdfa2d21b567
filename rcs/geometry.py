"""Frames, poses and quaternions.

Conventions (stated once for the whole stack; ROS REP-103):
- SI units everywhere: metres, radians, seconds, kilograms, newtons.
- World frame is ENU-like: x forward, y left, z up. Body frames are FLU (x forward, y left, z up).
- Quaternions are stored as ``(w, x, y, z)`` (scalar first, the MuJoCo order), unit norm.
  A quaternion ``q_a_b`` rotates vectors from frame b into frame a.
- Camera extrinsics use the ROS optical frame: z forward (viewing direction), x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_EPS = 1e-12


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Return ``q / |q|`` with a non-negative scalar part (w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if n < _EPS:
        raise ValueError("quaternion has zero norm")
    q = q / n
    return -q if q[0] < 0 else q


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of two (w, x, y, z) quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (w, x, y, z)."""
    return np.array([q[0], -q[1], -q[2], -q[3]], dtype=np.float64)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a 3x3 rotation matrix."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return quat_normalize(np.array(q))


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation vector (axis * angle, rad)."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-9:
        return quat_normalize(np.array([1.0, 0.5 * v[0], 0.5 * v[1], 0.5 * v[2]]))
    axis = v / angle
    s = np.sin(0.5 * angle)
    return np.array([np.cos(0.5 * angle), axis[0] * s, axis[1] * s, axis[2] * s])


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad, angle in [0, pi]) of a quaternion (w, x, y, z)."""
    q = quat_normalize(q)
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-9:
        return 2.0 * q[1:]
    angle = 2.0 * np.arctan2(s, q[0])
    return q[1:] / s * angle


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest rotation angle (rad) between two orientations."""
    d = abs(float(np.dot(quat_normalize(a), quat_normalize(b))))
    return 2.0 * float(np.arccos(min(1.0, d)))


def quat_from_euler_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) from roll-pitch-yaw (rad), applied as Rz(yaw) Ry(pitch) Rx(roll) (REP-103)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


def quat_to_euler_rpy(q: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (rad) of a quaternion (w, x, y, z), inverse of :func:`quat_from_euler_rpy`."""
    w, x, y, z = q
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


@dataclass(frozen=True)
class Pose:
    """A rigid transform: the pose of a child frame expressed in a parent frame.

    Attributes:
        position: (3,) metres, child origin in the parent frame.
        quaternion: (4,) unit quaternion (w, x, y, z), child orientation in the parent frame.
        frame: name of the parent frame (e.g. ``"world"`` or ``"base"``).
    """

    position: np.ndarray
    quaternion: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    frame: str = "world"

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", np.asarray(self.position, dtype=np.float64).reshape(3))
        object.__setattr__(self, "quaternion", quat_normalize(np.asarray(self.quaternion).reshape(4)))

    def as_matrix(self) -> np.ndarray:
        """4x4 homogeneous transform."""
        t = np.eye(4)
        t[:3, :3] = quat_to_matrix(self.quaternion)
        t[:3, 3] = self.position
        return t

    @classmethod
    def from_matrix(cls, t: np.ndarray, frame: str = "world") -> "Pose":
        """Pose from a 4x4 homogeneous transform."""
        return cls(t[:3, 3].copy(), matrix_to_quat(t[:3, :3]), frame)

    def compose(self, other: "Pose") -> "Pose":
        """``self * other``: ``other`` is expressed in the child frame of ``self``."""
        p = self.position + quat_to_matrix(self.quaternion) @ other.position
        return Pose(p, quat_multiply(self.quaternion, other.quaternion), self.frame)

    def inverse(self) -> "Pose":
        """The inverse transform (parent expressed in child)."""
        qi = quat_conjugate(self.quaternion)
        return Pose(-(quat_to_matrix(qi) @ self.position), qi, "child")
