"""Setpoints as the firmware decodes them: legacy RPYT (port 3), generic commander (port 7), high-level commander
(port 8). Units and signs are the firmware's wire conventions, converted here once to the emulator's:
world ENU (m, m/s), standard roll/pitch/yaw (rad; pitch positive nose down, the rotation about body +y),
body rates FLU (rad/s), yaw rate positive counter-clockwise seen from above.

Firmware conventions reproduced (``crtp_commander_rpyt.c``, ``crtp_commander_generic.c``,
``crtp_commander_high_level.c``):

- RPYT ``<fffH`` roll, pitch, yaw rate (deg, deg, deg/s), thrust 0..65535. The firmware's pitch is the legacy
  one (positive nose up; cflib's ``send_setpoint`` sends ``-pitch``) and its yaw rate is inverted
  (``attitudeRate.yaw = -values->yaw``). A thrust below ``MIN_THRUST`` (1000) is 0. With
  ``flightmode.stabModeRoll/Pitch`` = 0 (RATE) roll and pitch are rates (deg/s); the legacy pitch rate is
  ``-gyro.y``, so after cflib's negation the caller's pitch rate is the body y rate.
- generic ``TYPE_STOP`` (motors off), ``TYPE_VELOCITY_WORLD`` ``<ffff`` vx, vy, vz (m/s), yaw rate (deg/s, inverted
  as above), ``TYPE_POSITION`` ``<ffff`` x, y, z (m), yaw (deg), ``TYPE_FULL_STATE`` (position mm, velocity mm/s,
  acceleration mm/s^2 as int16, compressed quaternion, rates mrad/s). Other types (hover, z-distance, manual) are
  not emulated and are ignored.
- high level: ``TAKEOFF_2``/``LAND_2`` ``<Bff?f`` (group mask, height m, yaw rad, use current yaw, duration s),
  ``GO_TO``/``GO_TO_2`` (relative, [linear,] x, y, z m, yaw rad, duration s), ``STOP``. The firmware plans
  7th-order polynomials; the emulator uses the 7th-order rest-to-rest polynomial (zero velocity, acceleration
  and jerk at both ends), which is what the firmware plans from hover.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

MIN_THRUST = 1000
"""Legacy thrust values below this are 0 (motors off), as in the firmware."""

# generic commander types
TYPE_STOP, TYPE_FULL_STATE, TYPE_POSITION, TYPE_VELOCITY_WORLD = 0, 6, 7, 8
META_NOTIFY_SETPOINT_STOP = 0
# high-level commander commands
HL_STOP, HL_GO_TO, HL_TAKEOFF_2, HL_LAND_2, HL_GO_TO_2 = 3, 4, 7, 8, 12


@dataclass(frozen=True)
class Attitude:
    """Legacy setpoint: roll, pitch (rad, standard) or body rates (rad/s) when ``rate_mode``; yaw rate (rad/s,
    CCW); ``thrust`` in 0..1 of full thrust."""

    roll: float
    pitch: float
    yaw_rate: float
    thrust: float
    rate_mode: bool


@dataclass(frozen=True)
class Velocity:
    """World velocity (m/s) and yaw rate (rad/s, CCW)."""

    velocity: np.ndarray
    yaw_rate: float


@dataclass(frozen=True)
class Position:
    """World position (m) and yaw (rad)."""

    position: np.ndarray
    yaw: float


@dataclass(frozen=True)
class Stop:
    """Motors off."""


Setpoint = Attitude | Velocity | Position | Stop


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def decode_rpyt(data: bytes, rate_roll: bool, rate_pitch: bool) -> Attitude | None:
    """A legacy RPYT setpoint (``None`` if malformed or not finite: the emulator ignores those)."""
    roll, pitch, yaw_rate, thrust = struct.unpack("<fffH", data[:14])
    if not _finite(roll, pitch, yaw_rate):
        return None
    # firmware pitch/pitch rate is the legacy one (nose up positive): standard = -wire
    return Attitude(
        roll=math.radians(roll),
        pitch=-math.radians(pitch),
        yaw_rate=-math.radians(yaw_rate),
        thrust=0.0 if thrust < MIN_THRUST else thrust / 65535.0,
        rate_mode=rate_roll and rate_pitch,
    )


def quat_decompress(comp: int) -> np.ndarray:
    """The firmware's ``quatdecompress``: (x, y, z, w) from the 32-bit compressed quaternion."""
    small_max = 1.0 / math.sqrt(2.0)
    mask = (1 << 9) - 1
    largest = comp >> 30
    q = [0.0] * 4
    total = 0.0
    for i in range(3, -1, -1):
        if i != largest:
            mag, neg = comp & mask, (comp >> 9) & 1
            comp >>= 10
            q[i] = small_max * mag / mask * (-1.0 if neg else 1.0)
            total += q[i] * q[i]
    q[largest] = math.sqrt(max(1.0 - total, 0.0))
    return np.array(q)


def decode_generic(data: bytes) -> Setpoint | None:
    """A generic-commander setpoint, or ``None`` for types the emulator does not implement / bad values."""
    kind = data[0]
    if kind == TYPE_STOP:
        return Stop()
    if kind == TYPE_POSITION:
        x, y, z, yaw = struct.unpack("<ffff", data[1:17])
        return Position(np.array([x, y, z]), math.radians(yaw)) if _finite(x, y, z, yaw) else None
    if kind == TYPE_VELOCITY_WORLD:
        vx, vy, vz, yaw_rate = struct.unpack("<ffff", data[1:17])
        if not _finite(vx, vy, vz, yaw_rate):
            return None
        return Velocity(np.array([vx, vy, vz]), -math.radians(yaw_rate))
    if kind == TYPE_FULL_STATE:
        values = struct.unpack("<hhhhhhhhhIhhh", data[1:29])
        x, y, z, w = quat_decompress(values[9])
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return Position(np.array(values[0:3], dtype=float) / 1000.0, yaw)
    return None


@dataclass
class Trajectory:
    """A rest-to-rest 7th-order polynomial from ``start`` to ``goal`` (m, world; yaw rad) over ``duration`` s,
    starting at firmware time ``t0``; ``linear`` interpolates linearly instead. ``landing`` marks a land command
    (the motors stop when it ends)."""

    start: np.ndarray
    goal: np.ndarray
    yaw0: float
    yaw1: float
    t0: float
    duration: float
    linear: bool = False
    landing: bool = False

    def sample(self, t: float) -> tuple[np.ndarray, float]:
        """Position (m) and yaw (rad) at firmware time ``t``."""
        tau = min(max((t - self.t0) / self.duration, 0.0), 1.0) if self.duration > 0 else 1.0
        s = tau if self.linear else tau**4 * (35 - 84 * tau + 70 * tau**2 - 20 * tau**3)
        dyaw = math.remainder(self.yaw1 - self.yaw0, 2 * math.pi)
        return self.start + s * (self.goal - self.start), self.yaw0 + s * dyaw

    def finished(self, t: float) -> bool:
        return t >= self.t0 + self.duration


@dataclass(frozen=True)
class HighLevel:
    """A decoded high-level command: ``kind`` (``"takeoff"``, ``"land"``, ``"go_to"``, ``"stop"``), target
    (m; for takeoff/land only z is meaningful), yaw (rad, ``None``: keep the current yaw), duration (s),
    relative, linear."""

    kind: str
    target: np.ndarray
    yaw: float | None
    duration: float
    relative: bool = False
    linear: bool = False


def decode_high_level(data: bytes) -> HighLevel | None:
    """A high-level command, or ``None`` (unimplemented command or bad values)."""
    cmd = data[0]
    if cmd == HL_STOP:
        return HighLevel("stop", np.zeros(3), None, 0.0)
    if cmd in (HL_TAKEOFF_2, HL_LAND_2):
        _, height, yaw, use_current, duration = struct.unpack("<Bff?f", data[1:15])
        if not _finite(height, yaw, duration) or duration < 0:
            return None
        kind = "takeoff" if cmd == HL_TAKEOFF_2 else "land"
        return HighLevel(kind, np.array([0.0, 0.0, height]), None if use_current else yaw, duration)
    if cmd in (HL_GO_TO, HL_GO_TO_2):
        if cmd == HL_GO_TO:
            _, relative, x, y, z, yaw, duration = struct.unpack("<BBfffff", data[1:23])
            linear = 0
        else:
            _, relative, linear, x, y, z, yaw, duration = struct.unpack("<BBBfffff", data[1:24])
        if not _finite(x, y, z, yaw, duration) or duration < 0:
            return None
        return HighLevel("go_to", np.array([x, y, z]), yaw, duration, bool(relative), bool(linear))
    return None
