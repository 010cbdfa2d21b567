"""Calibration shared by the tests that run lerobot-calibrated SO-101 code against a register-only Feetech bus."""

from __future__ import annotations

from typing import Any

#: the SO-101's servos in bus-id order (ids 1..6)
NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
RANGE_MIN, RANGE_MAX = 9, 11  # STS3215 register addresses (2 bytes each)


def symmetric_calibration() -> dict[str, dict[str, int]]:
    """lerobot's calibration file contents for an arm whose ranges sit symmetric about the encoder's middle
    (ticks 1024..3072; the full-turn wrist_roll 0..4095), homing offsets 0."""
    return {
        n: {
            "id": i + 1,
            "drive_mode": 0,
            "homing_offset": 0,
            "range_min": 0 if n == "wrist_roll" else 1024,
            "range_max": 4095 if n == "wrist_roll" else 3072,
        }
        for i, n in enumerate(NAMES)
    }


def flash_ranges(emu: Any, calibration: dict[str, dict[str, int]]) -> None:
    """Write each servo's range registers as ``calibration`` has them (what lerobot-calibrate writes to EPROM) to
    a :class:`~hardware.emulators.feetech.bus.FeetechBusEmulator`."""
    for i, n in enumerate(NAMES):
        emu.set_word(i + 1, RANGE_MIN, calibration[n]["range_min"])
        emu.set_word(i + 1, RANGE_MAX, calibration[n]["range_max"])
