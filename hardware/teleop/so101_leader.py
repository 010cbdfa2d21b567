"""SO-101 leader arm through lerobot's own teleoperator class (``lerobot.teleoperators.so_leader.SO101Leader``).

Joint-to-joint: lerobot reads the leader's STS3215 servos over the Feetech bus and returns calibrated joint
angles in degrees (``<joint>.pos``) and the gripper in 0..100; they become the follower's joint targets (rad) by
joint name, and its gripper width (normalized, 0 closed). The follower must have joints of the same names (the
simulated SO-101 ``sim/so101`` has) and the env must use a joint action mode; ``ActionMapper`` passes them on.

Calibration is lerobot's: run ``lerobot-calibrate --teleop.type=so101_leader --teleop.port=... --teleop.id=...``
once; this class refuses an uncalibrated arm instead of prompting in the middle of a recording. The leader's
calibrated zero must correspond to the follower's zero pose (lerobot's convention: the middle of each joint's
range), and ``signs`` flips joints whose direction differs. Tested against a Feetech protocol emulator
(:mod:`hardware.emulators.feetech.bus`), never on a real arm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError, LinkLostError, NotConnectedError
from rcs.teleop.base import Teleop, TeleopCommand

#: seconds lerobot's connect (its handshake) is retried before the bus counts as absent (the follower's, 5 link
#: timeouts of 1 s)
CONNECT_TIMEOUT_S = 5.0
LEADER_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


class SO101LeaderTeleop(Teleop):
    """An SO-101 leader arm as a teleop device.

    Args:
        port: serial port of the leader's bus (e.g. ``/dev/ttyACM0``).
        follower_joints: the follower's joint names in command order (default: the SO-101's).
        leader_id: lerobot calibration id of this arm.
        calibration_dir: folder of lerobot calibration files (default: lerobot's).
        signs: per-joint +-1 applied to the leader's angles (default all +1).
    """

    name = "so101-leader"
    episode_controls = False  # no buttons for START/SAVE: recorded back to back

    def __init__(
        self,
        port: str,
        follower_joints: tuple[str, ...] = LEADER_JOINTS,
        leader_id: str = "rcs_leader",
        calibration_dir: str | Path | None = None,
        signs: dict[str, float] | None = None,
    ) -> None:
        missing = [j for j in follower_joints if j not in LEADER_JOINTS]
        if missing:
            raise ConfigError(
                f"teleop so101-leader: the follower's joints {missing} have no leader joint (leader: {LEADER_JOINTS})"
            )
        self.port, self.follower_joints, self.leader_id = port, tuple(follower_joints), leader_id
        self.calibration_dir = Path(calibration_dir) if calibration_dir is not None else None
        self.signs = np.array([float((signs or {}).get(j, 1.0)) for j in self.follower_joints])
        self.leader: Any = None

    def connect(self) -> None:
        if self.leader is not None:
            return
        from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

        from hardware.so101.motors import connect_retried

        config = SO101LeaderConfig(
            port=self.port, id=self.leader_id, calibration_dir=self.calibration_dir, use_degrees=True
        )
        leader = SO101Leader(config)
        if not leader.calibration:
            raise ConfigError(
                f"teleop so101-leader: no lerobot calibration for id {self.leader_id!r} in {leader.calibration_dir}; run "
                f"lerobot-calibrate --teleop.type=so101_leader --teleop.port={self.port} --teleop.id={self.leader_id}"
            )
        try:
            connect_retried(lambda: leader.connect(calibrate=False), leader.bus, CONNECT_TIMEOUT_S)
        except (ConnectionError, OSError, RuntimeError) as exc:
            raise ConfigError(f"teleop so101-leader: cannot connect on {self.port}: {exc}") from exc
        if not leader.is_calibrated:
            leader.disconnect()
            raise ConfigError(
                f"teleop so101-leader: the servos' calibration registers differ from the calibration file of id "
                f"{self.leader_id!r}; recalibrate with lerobot-calibrate"
            )
        self.leader = leader

    def close(self) -> None:
        if self.leader is not None:
            try:
                self.leader.disconnect()
            except Exception:  # noqa: BLE001 - an unplugged bus cannot be closed cleanly; nothing is lost
                pass
            self.leader = None

    def command(self, obs: dict[str, np.ndarray]) -> TeleopCommand:
        if self.leader is None:
            raise NotConnectedError("so101-leader is not connected: call connect() or use 'with'")
        from hardware.so101.motors import with_retry

        # lerobot's reads have no retry and scservo_sdk takes a late reply for the next one: a host busy past
        # lerobot's ~50 ms packet timeout would end a recording (or feed a stale reading); retried with the port
        # drained for up to a second, then the link counts as lost (LinkLostError naming the port).
        try:
            action = with_retry(self.leader.bus, "read", self.leader.get_action, timeout_s=1.0, device=self.name)
        except LinkLostError:
            raise
        except Exception as exc:  # anything else lerobot raises on a dead bus: the same one line
            raise LinkLostError(f"{self.name} on {self.port}: read failed: {type(exc).__name__}: {exc}") from exc
        q = np.array([math.radians(action[f"{j}.pos"]) for j in self.follower_joints]) * self.signs
        gripper = float(np.clip(action["gripper.pos"] / 100.0, 0.0, 1.0))
        return TeleopCommand(joint_positions=q, gripper=gripper)

    def describe(self) -> dict[str, Any]:
        return {"teleop": self.name, "port": self.port, "leader_id": self.leader_id, "via": "lerobot SO101Leader"}


def make_so101_leader(
    env: Any = None,
    seed: int | None = None,
    port: str | None = None,
    leader_id: str = "rcs_leader",
    calibration_dir: str | None = None,
    **_: Any,
) -> SO101LeaderTeleop:
    """Registry factory ``"so101-leader"`` (``--teleop-option port=/dev/ttyACM0``)."""
    if port is None:
        raise ConfigError("teleop so101-leader: port is required (--teleop-option port=/dev/ttyACM0)")
    joints = tuple(env.arm.spec.joint_names) if env is not None else LEADER_JOINTS
    return SO101LeaderTeleop(port, joints, leader_id, calibration_dir)
