"""SO-101 leader through lerobot's own SO101Leader class, against a Feetech STS3215 bus emulator on a pty.

Everything from lerobot's bus handshake (ping, model number, firmware) and calibration check to its sync read of
Present_Position runs for real over the serial protocol; only the servos are emulated.
"""

from __future__ import annotations

import json
import logging
import math

import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("deepdiff")

from hardware.emulators.feetech.bus import FeetechBusEmulator  # noqa: E402
from hardware.teleop.so101_leader import SO101LeaderTeleop  # noqa: E402
from rcs.errors import ConfigError, LinkLostError  # noqa: E402
from tests.hardware.feetech_rig import flash_ranges, symmetric_calibration  # noqa: E402


def _calibration(tmp_path, emu: FeetechBusEmulator | None):
    calib = symmetric_calibration()
    (tmp_path / "rcs_leader.json").write_text(json.dumps(calib))
    if emu is not None:  # the servos hold the same calibration (lerobot-calibrate writes both)
        flash_ranges(emu, calib)
    return calib


@pytest.fixture
def emu():
    e = FeetechBusEmulator()
    yield e
    e.close()


def test_leader_joint_angles_become_follower_joint_targets(tmp_path, emu, caplog):
    _calibration(tmp_path, emu)
    leader = SO101LeaderTeleop(emu.port, calibration_dir=tmp_path)
    leader.connect()
    try:
        emu.set_position(1, 2048 + 512)  # shoulder_pan: +512 ticks from the calibrated middle
        emu.set_position(3, 2048 - 256)  # elbow_flex: -256 ticks
        emu.set_position(6, 1024 + 1536)  # gripper: 75 % of its range
        cmd = leader.command({})
        per_tick = 2 * math.pi / 4095
        assert cmd.joint_positions[0] == pytest.approx(512 * per_tick, rel=1e-6)
        assert cmd.joint_positions[2] == pytest.approx(-256 * per_tick, rel=1e-6)
        assert cmd.joint_positions[1] == pytest.approx(0.0, abs=1e-9)
        assert cmd.gripper == pytest.approx(0.75)
        assert cmd.twist is None and cmd.events == ()
        packets = emu.packets
        with caplog.at_level(logging.DEBUG, logger="hardware.so101.motors"):
            leader.command({})
        # One SYNC_READ per command; a reply a busy host missed is retried (logged), and each retry is one more.
        retries = sum("failed, retrying" in r.getMessage() for r in caplog.records)
        assert emu.packets == packets + 1 + retries
    finally:
        leader.close()


def test_unplugged_bus_is_a_device_failure(tmp_path, emu):
    _calibration(tmp_path, emu)
    leader = SO101LeaderTeleop(emu.port, calibration_dir=tmp_path)
    leader.connect()
    emu.unplug()
    with pytest.raises(LinkLostError, match="so101-leader on .*: read failed"):
        leader.command({})
    leader.close()


def test_uncalibrated_or_mismatched_arm_is_refused(tmp_path, emu):
    with pytest.raises(ConfigError, match="no lerobot calibration for id 'rcs_leader'"):
        SO101LeaderTeleop(emu.port, calibration_dir=tmp_path).connect()
    _calibration(tmp_path, None)  # file written, servos not: their registers differ
    with pytest.raises(ConfigError, match="calibration registers differ"):
        SO101LeaderTeleop(emu.port, calibration_dir=tmp_path).connect()
    with pytest.raises(ConfigError, match=r"joints \['panda_joint1'\] have no leader joint"):
        SO101LeaderTeleop(emu.port, follower_joints=("panda_joint1",))
