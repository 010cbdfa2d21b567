"""Gamepad (DualShock 4) and SpaceMouse: synthetic HID input reports through the real parsers and device classes.

The hidapi handle is the only thing replaced: a stand-in returns the report bytes a device would send (and
raises as hidapi does once the device is unplugged); the device classes' own read loop and parsing run.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from hardware.teleop.gamepad import DualShock4State, GamepadTeleop
from hardware.teleop.spacemouse import FULL_SCALE, SpaceMouseState, SpaceMouseTeleop, twist_from_axes
from rcs.errors import NotConnectedError
from rcs.teleop.base import EpisodeEvent

OBS = {"gripper": np.array([1.0], np.float32)}


class _HidHandle:
    """Stands in for ``hid.device()``: hands out queued reports, then nothing, or raises once unplugged."""

    def __init__(self, reports: list[bytes]) -> None:
        self.reports = list(reports)
        self.unplugged = False

    def read(self, size: int) -> list[int]:
        if self.unplugged:
            raise OSError("read error")  # what hidapi raises for a vanished device
        return list(self.reports.pop(0)) if self.reports else []

    def close(self) -> None:
        pass


def _ds4(lx=128, ly=128, rx=128, ry=128, hat=8, b5=0, b6=0, b7=0, l2=0, r2=0) -> bytes:
    report = bytearray(64)
    report[:10] = bytes([0x01, lx, ly, rx, ry, (b5 << 4) | hat, b6, b7, l2, r2])
    return bytes(report)


def test_dualshock4_report_parsing():
    s = DualShock4State()
    new = s.feed(_ds4(lx=255, ly=0, rx=0, ry=255, hat=4, b5=0b0001, b6=0b0010_0001, r2=255))
    assert s.left == pytest.approx([1.0, 1.0], abs=0.01) and s.right == pytest.approx([-1.0, -1.0], abs=0.01)
    assert s.hat == 4 and s.r2 == 1.0
    assert new == {"square", "l1", "options"}
    assert s.feed(_ds4(b5=0b0001)) == set()  # still held: not new
    assert s.feed(b"\x11" + bytes(77)) == set() and s.hat == 8  # Bluetooth report id: ignored


def test_gamepad_device_maps_sticks_buttons_and_reports_unplug():
    pad = GamepadTeleop(linear_speed=0.2, angular_speed=1.0)
    # R1 held in both reports, options pressed in the second
    pad._dev = _HidHandle([_ds4(ly=0, rx=255, r2=128, b6=0b10), _ds4(ly=0, rx=255, r2=128, b6=0b10 | 0b10_0000)])
    cmd = pad.command(OBS)
    # left stick up -> +x; right stick right -> yaw -; R1 held -> roll +; R2 half -> gripper half closed
    assert cmd.twist == pytest.approx([0.2, 0.0, 0.0, 1.0, 0.0, -1.0], abs=0.002)
    assert cmd.gripper == pytest.approx(1 - 128 / 255)
    assert cmd.events == (EpisodeEvent.START,)
    pad._dev.reports = [_ds4(b5=0b0100), _ds4(), _ds4(b7=1)]  # circle, release, PS
    assert pad.command(OBS).events == (EpisodeEvent.DISCARD, EpisodeEvent.QUIT)
    assert pad.command(OBS).twist.tolist() == [0.0] * 6
    pad._dev.unplugged = True
    with pytest.raises(NotConnectedError, match="gamepad: read failed, device unplugged"):
        pad.command(OBS)


def _sm(rid: int, *values: int) -> bytes:
    return bytes([rid]) + struct.pack(f"<{len(values)}h", *values)


def test_spacemouse_report_formats():
    s = SpaceMouseState()
    s.feed(_sm(1, 100, -200, 300))  # old: translation only
    s.feed(_sm(2, -10, 20, -30))  # old: rotation
    assert s.axes.tolist() == [100, -200, 300, -10, 20, -30]
    s.feed(_sm(1, 1, 2, 3, 4, 5, 6))  # new: all six axes in report 1
    assert s.axes.tolist() == [1, 2, 3, 4, 5, 6]
    s.feed(bytes([3, 0b10, 0]))
    assert s.buttons == 2


def test_spacemouse_axes_to_base_frame_twist():
    full = FULL_SCALE
    # push forward (device -y), right (device +x), down (device +z)
    twist = twist_from_axes(np.array([full, -full, full, 0, 0, full]), 0.1, 1.0, 0.05)
    assert twist == pytest.approx([0.1, -0.1, -0.1, 0.0, 0.0, -1.0])
    assert twist_from_axes(np.array([10, -10, 10, 10, 10, 10]), 0.1, 1.0, 0.05).tolist() == [0.0] * 6  # dead band


def test_spacemouse_device_buttons_drive_gripper_and_unplug():
    sm = SpaceMouseTeleop(linear_speed=0.1, angular_speed=1.0)
    sm._dev = _HidHandle([_sm(1, 0, -350, 0, 0, 0, 0), bytes([3, 1, 0])])
    cmd = sm.command(OBS)
    assert cmd.twist == pytest.approx([0.1, 0, 0, 0, 0, 0]) and cmd.gripper == 0.0 and cmd.events == ()
    sm._dev.reports = [bytes([3, 2, 0])]
    assert sm.command(OBS).gripper == 1.0
    sm._dev.unplugged = True
    with pytest.raises(NotConnectedError, match="spacemouse"):
        sm.command(OBS)


def test_missing_device_is_a_clear_error():
    pytest.importorskip("hid")
    from rcs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no device found \(USB ids tried: 054c:05c4, 054c:09cc\)"):
        GamepadTeleop().connect()
