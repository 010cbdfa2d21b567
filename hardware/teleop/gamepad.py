"""Gamepad over hidapi: Sony DualShock 4 USB input report 0x01 -> TCP twist, gripper, episode controls.

Report 0x01 (USB, 64 bytes; layout as documented by the Linux hid-sony/hid-playstation drivers):

====  ==========================================================================================
byte  content
====  ==========================================================================================
0     report id 0x01
1-4   left stick x, left stick y, right stick x, right stick y (0..255, 128 centre, y down)
5     low nibble: d-pad hat (0 up, 1 up-right, ... 7 up-left, 8 released); bits 4-7: square, cross,
      circle, triangle
6     bits: 0 L1, 1 R1, 2 L2, 3 R2, 4 share, 5 options, 6 L3, 7 R3
7     bit 0 PS, bit 1 touchpad click, bits 2-7 report counter
8, 9  L2, R2 analog (0..255)
====  ==========================================================================================

Mapping (base frame x forward, y left, z up; full deflection = ``linear_speed`` / ``angular_speed``):
left stick up/down -> +x/-x, left stick left/right -> +y/-y, right stick up/down -> +z/-z, right stick
left/right -> yaw +/-, L1/R1 -> roll -/+, d-pad up/down -> pitch -/+; R2 (analog) closes the gripper
proportionally (released = open). Episode controls: options = start (again: stop and save), square =
re-record, circle = discard, PS = quit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware.teleop.hid import HidTeleop
from rcs.teleop.base import EpisodeEvent, EventLatch, TeleopCommand

DUALSHOCK4_IDS: tuple[tuple[int, int], ...] = ((0x054C, 0x05C4), (0x054C, 0x09CC))

#: (byte, bit) -> button name
BUTTONS: dict[tuple[int, int], str] = {
    (5, 4): "square",
    (5, 5): "cross",
    (5, 6): "circle",
    (5, 7): "triangle",
    (6, 0): "l1",
    (6, 1): "r1",
    (6, 2): "l2",
    (6, 3): "r2",
    (6, 4): "share",
    (6, 5): "options",
    (6, 6): "l3",
    (6, 7): "r3",
    (7, 0): "ps",
    (7, 1): "touchpad",
}
BUTTON_EVENTS: dict[str, EpisodeEvent] = {
    "options": EpisodeEvent.START,
    "square": EpisodeEvent.RERECORD,
    "circle": EpisodeEvent.DISCARD,
    "ps": EpisodeEvent.QUIT,
}


class DualShock4State:
    """Parses DualShock 4 USB input reports (no I/O). Sticks normalized to [-1, 1], y up positive."""

    def __init__(self) -> None:
        self.left = np.zeros(2)
        self.right = np.zeros(2)
        self.hat = 8
        self.pressed: set[str] = set()
        self.l2 = 0.0
        self.r2 = 0.0

    def feed(self, report: bytes) -> set[str]:
        """Apply one report; returns the buttons newly pressed by it."""
        if len(report) < 10 or report[0] != 0x01:
            return set()
        axis = lambda b: (b - 128) / 127.0  # noqa: E731
        self.left = np.clip([axis(report[1]), -axis(report[2])], -1.0, 1.0)
        self.right = np.clip([axis(report[3]), -axis(report[4])], -1.0, 1.0)
        self.hat = report[5] & 0x0F
        pressed = {name for (byte, bit), name in BUTTONS.items() if report[byte] >> bit & 1}
        new = pressed - self.pressed
        self.pressed = pressed
        self.l2, self.r2 = report[8] / 255.0, report[9] / 255.0
        return new


class GamepadTeleop(HidTeleop):
    """A DualShock 4 as a teleop device (see the module docstring)."""

    name = "gamepad"
    ids = DUALSHOCK4_IDS

    def __init__(
        self, path: str | None = None, linear_speed: float = 0.15, angular_speed: float = 0.8, deadband: float = 0.08
    ) -> None:
        super().__init__(path)
        self.linear_speed, self.angular_speed, self.deadband = linear_speed, angular_speed, deadband
        self.state = DualShock4State()
        self._latch = EventLatch()

    def feed(self, report: bytes) -> None:
        for name in sorted(self.state.feed(report)):
            if name in BUTTON_EVENTS:
                self._latch.push(BUTTON_EVENTS[name])

    def _dead(self, v: np.ndarray) -> np.ndarray:
        return np.where(np.abs(v) < self.deadband, 0.0, v)

    def current(self) -> TeleopCommand:
        s = self.state
        left, right = self._dead(s.left), self._dead(s.right)
        hat_pitch = {0: -1.0, 4: 1.0}.get(s.hat, 0.0)
        roll = float("r1" in s.pressed) - float("l1" in s.pressed)
        twist = np.array(
            [
                left[1] * self.linear_speed,
                -left[0] * self.linear_speed,
                right[1] * self.linear_speed,
                roll * self.angular_speed,
                hat_pitch * self.angular_speed,
                -right[0] * self.angular_speed,
            ]
        )
        return TeleopCommand(twist=twist, gripper=1.0 - s.r2, events=self._latch.pop_all())

    def describe(self) -> dict[str, Any]:
        return {
            "teleop": self.name,
            "pad": "DualShock 4 (USB)",
            "linear_speed": self.linear_speed,
            "angular_speed": self.angular_speed,
        }


def make_gamepad(
    env: Any = None,
    seed: int | None = None,
    path: str | None = None,
    linear_speed: float = 0.15,
    angular_speed: float = 0.8,
    deadband: float = 0.08,
    **_: Any,
) -> GamepadTeleop:
    """Registry factory ``"gamepad"``."""
    return GamepadTeleop(path, float(linear_speed), float(angular_speed), float(deadband))
