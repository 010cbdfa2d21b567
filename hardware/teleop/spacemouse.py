"""3Dconnexion SpaceMouse over hidapi: HID input reports -> TCP twist, buttons -> gripper.

Report formats (3Dconnexion's HID interface, as read by spacenavd and pyspacemouse):

- report 1, 7 bytes: translation x, y, z, each int16 little-endian (older devices: SpaceNavigator, Pro);
- report 1, 13 bytes: translation then rotation, 6 x int16 (newer: SpaceMouse Compact, Wireless, Pro Wireless);
- report 2, 7 bytes: rotation rx, ry, rz, int16 (older devices);
- report 3: button bitmask, little-endian, bit 0 = left button, bit 1 = right button.

Axis values span about +-350 at full deflection. Device axes (seen from the user): x right, y towards the user,
z down, rotations about those axes. Mapped to the robot base frame (x forward, y left, z up) as
``vx = -y, vy = -x, vz = -z`` and likewise for the rotations, scaled to ``linear_speed`` m/s and
``angular_speed`` rad/s at full deflection, with a dead band. Left button closes, right button opens the gripper.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from hardware.teleop.hid import HidTeleop
from rcs.teleop.base import TeleopCommand

#: 3Dconnexion (and the earlier Logitech-made) USB ids.
SPACEMOUSE_IDS: tuple[tuple[int, int], ...] = (
    (0x256F, 0xC635),  # SpaceMouse Compact
    (0x256F, 0xC62E),  # SpaceMouse Wireless (cabled)
    (0x256F, 0xC652),  # Universal Receiver
    (0x256F, 0xC631),  # SpaceMouse Pro Wireless (cabled)
    (0x046D, 0xC626),  # SpaceNavigator
    (0x046D, 0xC62B),  # SpaceMouse Pro
)
FULL_SCALE = 350.0
#: device axis -> (base axis, sign), for translation (and the same for rotation).
AXIS_MAP: tuple[tuple[int, float], ...] = ((1, -1.0), (0, -1.0), (2, -1.0))


class SpaceMouseState:
    """Parses SpaceMouse reports (no I/O). ``axes``: raw (tx, ty, tz, rx, ry, rz); ``buttons`` bitmask."""

    def __init__(self) -> None:
        self.axes = np.zeros(6)
        self.buttons = 0

    def feed(self, report: bytes) -> None:
        if not report:
            return
        rid, body = report[0], report[1:]
        if rid == 1 and len(body) >= 12:
            self.axes[:] = struct.unpack_from("<6h", body)
        elif rid == 1 and len(body) >= 6:
            self.axes[:3] = struct.unpack_from("<3h", body)
        elif rid == 2 and len(body) >= 6:
            self.axes[3:] = struct.unpack_from("<3h", body)
        elif rid == 3 and len(body) >= 1:
            self.buttons = int.from_bytes(body[:2], "little")


def twist_from_axes(axes: np.ndarray, linear_speed: float, angular_speed: float, deadband: float) -> np.ndarray:
    """Base-frame twist (m/s, rad/s) from raw SpaceMouse axes (see the module docstring)."""
    norm = np.clip(np.asarray(axes, dtype=np.float64) / FULL_SCALE, -1.0, 1.0)
    norm[np.abs(norm) < deadband] = 0.0
    twist = np.zeros(6)
    for i, (axis, sign) in enumerate(AXIS_MAP):
        twist[axis] = sign * norm[i] * linear_speed
        twist[3 + axis] = sign * norm[3 + i] * angular_speed
    return twist


class SpaceMouseTeleop(HidTeleop):
    """A SpaceMouse as a teleop device (see the module docstring). Has no episode controls."""

    name = "spacemouse"
    episode_controls = False  # no buttons for START/SAVE: recorded back to back
    ids = SPACEMOUSE_IDS

    def __init__(
        self, path: str | None = None, linear_speed: float = 0.15, angular_speed: float = 0.8, deadband: float = 0.05
    ) -> None:
        super().__init__(path)
        self.linear_speed, self.angular_speed, self.deadband = linear_speed, angular_speed, deadband
        self.state = SpaceMouseState()
        self.gripper = 1.0

    def feed(self, report: bytes) -> None:
        self.state.feed(report)
        if self.state.buttons & 0x1:
            self.gripper = 0.0
        elif self.state.buttons & 0x2:
            self.gripper = 1.0

    def current(self) -> TeleopCommand:
        return TeleopCommand(
            twist=twist_from_axes(self.state.axes, self.linear_speed, self.angular_speed, self.deadband),
            gripper=self.gripper,
        )

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.gripper = 1.0 if float(np.asarray(obs["gripper"]).reshape(-1)[0]) > 0.5 else 0.0

    def describe(self) -> dict[str, Any]:
        return {"teleop": self.name, "linear_speed": self.linear_speed, "angular_speed": self.angular_speed}


def make_spacemouse(
    env: Any = None,
    seed: int | None = None,
    path: str | None = None,
    linear_speed: float = 0.15,
    angular_speed: float = 0.8,
    deadband: float = 0.05,
    **_: Any,
) -> SpaceMouseTeleop:
    """Registry factory ``"spacemouse"``."""
    return SpaceMouseTeleop(path, float(linear_speed), float(angular_speed), float(deadband))
