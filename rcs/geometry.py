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
    """Hamilton product ``a * b`` of (w, x, y, z) quaternions: (4,) each, or batches (..., 4) that broadcast."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (w, x, y, z): (4,) or a batch (..., 4)."""
    return np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The vector ``v`` (..., 3) rotated by the unit quaternion ``q`` (..., 4) (w, x, y, z), batches broadcast:
    ``v' = v + 2 w (u x v) + 2 u x (u x v)`` with ``u`` the quaternion's vector part."""
    q = np.asarray(q, dtype=np.float64)
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return np.asarray(v, dtype=np.float64) + q[..., :1] * t + np.cross(u, t)


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


def tilt_of(quaternion: np.ndarray) -> float:
    """Angle (rad) between the body z axis and world z of a (w, x, y, z) orientation."""
    x, y = float(quaternion[1]), float(quaternion[2])
    return float(np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0)))


def yaw_of(quaternion: np.ndarray) -> float:
    """Yaw (rad) of a (w, x, y, z) orientation (REP-103 roll-pitch-yaw)."""
    return float(quat_to_euler_rpy(np.asarray(quaternion, dtype=np.float64))[2])


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
    def from_matrix(cls, t: np.ndarray, frame: str = "world") -> Pose:
        """Pose from a 4x4 homogeneous transform."""
        return cls(t[:3, 3].copy(), matrix_to_quat(t[:3, :3]), frame)

    def compose(self, other: Pose) -> Pose:
        """``self * other``: ``other`` is expressed in the child frame of ``self``."""
        p = self.position + quat_to_matrix(self.quaternion) @ other.position
        return Pose(p, quat_multiply(self.quaternion, other.quaternion), self.frame)

    def inverse(self) -> Pose:
        """The inverse transform (parent expressed in child)."""
        qi = quat_conjugate(self.quaternion)
        return Pose(-(quat_to_matrix(qi) @ self.position), qi, "child")


#: entry names of a 6D rotation (the first two columns of the rotation matrix, column by column).
ROTATION_6D_NAMES: tuple[str, ...] = ("r11", "r21", "r31", "r12", "r22", "r32")


def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rotation matrices of rotation vectors (axis * angle, rad): (..., 3) -> (..., 3, 3) (Rodrigues)."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1)[..., None, None]
    k = np.zeros((*v.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    small = angle < 1e-9
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def rotation_6d_from_matrix(m: np.ndarray) -> np.ndarray:
    """The continuous 6D representation of rotations (Zhou et al. 2019): (..., 3, 3) -> (..., 6).

    Unlike a rotation vector (which jumps between equivalent values near pi, e.g. a tool pointing down) or a
    quaternion (two signs), it is a continuous function of the orientation, which a regressed policy needs.
    Layout: :data:`ROTATION_6D_NAMES`.
    """
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def matrix_from_rotation_6d(r: np.ndarray) -> np.ndarray:
    """Rotation matrices from (possibly unnormalized) 6D vectors by Gram-Schmidt: (..., 6) -> (..., 3, 3).

    Raises:
        ValueError: a vector whose two columns are (nearly) zero or parallel, or not finite.
    """
    r = np.asarray(r, dtype=np.float64)
    a, b = r[..., :3], r[..., 3:6]
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    if not np.all(np.isfinite(r)) or np.any(na < 1e-6):
        raise ValueError("6D rotation: the first column must be finite and non-zero")
    x = a / na
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(nb < 1e-6):
        raise ValueError("6D rotation: the two columns are parallel")
    y = b / nb
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


# -- aerospace frames (PX4, MAVLink) <-> REP-103 -------------------------------------------------------------
# PX4 states its local world frame as NED (x north, y east, z down) and its body frame as FRD (x forward, y right,
# z down); rcs uses ENU and FLU. The functions below are the only place the stack converts between them.

#: (w, x, y, z) of the rotation ENU <- NED: a half turn about the axis (1, 1, 0) / sqrt(2), whose matrix
#: ``[[0, 1, 0], [1, 0, 0], [0, 0, -1]]`` swaps x and y and flips z. It is its own inverse.
Q_ENU_NED = np.array([0.0, np.sqrt(0.5), np.sqrt(0.5), 0.0])
#: (w, x, y, z) of the rotation FRD <- FLU: a half turn about body x, matrix ``diag(1, -1, -1)``. Its own inverse.
Q_FRD_FLU = np.array([0.0, 1.0, 0.0, 0.0])


def ned_to_enu(v: np.ndarray) -> np.ndarray:
    """A world vector (position m, velocity m/s, ...) from NED to ENU, on the last axis of shape (..., 3):
    ``x_enu = y_ned`` (east), ``y_enu = x_ned`` (north), ``z_enu = -z_ned`` (up)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 1], v[..., 0], -v[..., 2]], axis=-1)


def enu_to_ned(v: np.ndarray) -> np.ndarray:
    """A world vector from ENU to NED (..., 3): ``x_ned = y_enu``, ``y_ned = x_enu``, ``z_ned = -z_enu``. The
    same permutation as :func:`ned_to_enu` (the map is an involution)."""
    return ned_to_enu(v)


def frd_to_flu(v: np.ndarray) -> np.ndarray:
    """A body vector (angular velocity rad/s, force N, ...) from FRD to FLU (..., 3): ``(x, -y, -z)``."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 0], -v[..., 1], -v[..., 2]], axis=-1)


def flu_to_frd(v: np.ndarray) -> np.ndarray:
    """A body vector from FLU to FRD (..., 3): ``(x, -y, -z)`` (an involution, like :func:`frd_to_flu`)."""
    return frd_to_flu(v)


def quat_ned_frd_to_enu_flu(q_ned_frd: np.ndarray) -> np.ndarray:
    """PX4's attitude (w, x, y, z; rotates FRD body vectors into the NED world) as rcs's (w, x, y, z; FLU body
    into the ENU world): ``q_enu_flu = Q_ENU_NED * q_ned_frd * Q_FRD_FLU``.

    Both constant factors are half turns (see :data:`Q_ENU_NED`, :data:`Q_FRD_FLU`). Example: PX4's identity
    (level, nose north) becomes a yaw of +pi/2 about ENU z (nose along +y, north). The result is normalized
    with ``w >= 0``.
    """
    q = quat_normalize(np.asarray(q_ned_frd, dtype=np.float64))
    return quat_normalize(quat_multiply(quat_multiply(Q_ENU_NED, q), Q_FRD_FLU))


def quat_enu_flu_to_ned_frd(q_enu_flu: np.ndarray) -> np.ndarray:
    """rcs's attitude (FLU body in the ENU world, w, x, y, z) as PX4's (FRD body in the NED world):
    ``q_ned_frd = Q_NED_ENU * q_enu_flu * Q_FLU_FRD`` with ``Q_NED_ENU = Q_ENU_NED^-1`` and
    ``Q_FLU_FRD = Q_FRD_FLU^-1``; each half turn is its own inverse up to sign, so the same constants serve.
    Inverse of :func:`quat_ned_frd_to_enu_flu`."""
    q = quat_normalize(np.asarray(q_enu_flu, dtype=np.float64))
    return quat_normalize(quat_multiply(quat_multiply(Q_ENU_NED, q), Q_FRD_FLU))


def wrap_angle(angle: float) -> float:
    """``angle`` (rad) wrapped into [-pi, pi)."""
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


def yaw_ned_to_enu(yaw_ned: float) -> float:
    """PX4 yaw (rad; heading from north, clockwise positive seen from above) as rcs yaw (rad; from east,
    counter-clockwise positive): ``yaw_enu = pi/2 - yaw_ned``, wrapped into [-pi, pi). North (0) is +pi/2,
    east (pi/2) is 0."""
    return wrap_angle(np.pi / 2 - float(yaw_ned))


def yaw_enu_to_ned(yaw_enu: float) -> float:
    """rcs yaw (rad, from east, counter-clockwise) as PX4 yaw (rad, from north, clockwise):
    ``yaw_ned = pi/2 - yaw_enu``, wrapped into [-pi, pi). Inverse of :func:`yaw_ned_to_enu`."""
    return wrap_angle(np.pi / 2 - float(yaw_enu))
