"""What PX4 puts on the MAVLink wire, stated once for the driver and the emulator.

- Modes: HEARTBEAT ``custom_mode`` is PX4's ``(sub_mode << 24) | (main_mode << 16)`` (PX4 ``px4_custom_mode.h``);
  ``MAV_CMD_DO_SET_MODE`` carries ``param1 = base_mode`` (with ``MAV_MODE_FLAG_CUSTOM_MODE_ENABLED``),
  ``param2 = main_mode``, ``param3 = sub_mode``.
- Motor numbering: PX4's quadrotor X (``CA_AIRFRAME`` 0, quad X): motor 1 front right, 2 rear left, 3 front left,
  4 rear right. rcs numbers rotors in the spec's order; :func:`px4_motor_order` maps one to the other by the
  rotor positions, so nothing here depends on one vehicle.
- Link: :func:`open_link` opens a pymavlink connection speaking MAVLink 2 (``common`` dialect).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

# -- PX4 main modes (px4_custom_mode.h: PX4_CUSTOM_MAIN_MODE_*) ----------------------------------------------
MAIN_MANUAL, MAIN_ALTCTL, MAIN_POSCTL, MAIN_AUTO, MAIN_ACRO, MAIN_OFFBOARD, MAIN_STABILIZED = 1, 2, 3, 4, 5, 6, 7
# -- PX4 auto sub modes (PX4_CUSTOM_SUB_MODE_AUTO_*) -------------------------------------------------------------
SUB_AUTO_READY, SUB_AUTO_TAKEOFF, SUB_AUTO_LOITER, SUB_AUTO_MISSION, SUB_AUTO_RTL, SUB_AUTO_LAND = 1, 2, 3, 4, 5, 6

MODE_NAMES: dict[tuple[int, int], str] = {
    (MAIN_MANUAL, 0): "Manual",
    (MAIN_ALTCTL, 0): "Altitude",
    (MAIN_POSCTL, 0): "Position",
    (MAIN_AUTO, SUB_AUTO_READY): "Ready",
    (MAIN_AUTO, SUB_AUTO_TAKEOFF): "Takeoff",
    (MAIN_AUTO, SUB_AUTO_LOITER): "Hold",
    (MAIN_AUTO, SUB_AUTO_MISSION): "Mission",
    (MAIN_AUTO, SUB_AUTO_RTL): "Return",
    (MAIN_AUTO, SUB_AUTO_LAND): "Land",
    (MAIN_ACRO, 0): "Acro",
    (MAIN_OFFBOARD, 0): "Offboard",
    (MAIN_STABILIZED, 0): "Stabilized",
}

#: ``MAV_CMD_COMPONENT_ARM_DISARM`` param2 that skips PX4's arming checks (and lets it disarm in the air).
FORCE_MAGIC = 21196.0

# -- type masks --------------------------------------------------------------------------------------------------
#: SET_POSITION_TARGET_LOCAL_NED bits (POSITION_TARGET_TYPEMASK)
PT_X, PT_Y, PT_Z = 1, 2, 4
PT_VX, PT_VY, PT_VZ = 8, 16, 32
PT_AX, PT_AY, PT_AZ = 64, 128, 256
PT_FORCE, PT_YAW, PT_YAW_RATE = 512, 1024, 2048
PT_POSITION = PT_X | PT_Y | PT_Z
PT_VELOCITY = PT_VX | PT_VY | PT_VZ
PT_ACCEL = PT_AX | PT_AY | PT_AZ
#: position + yaw only: velocity, acceleration and yaw rate ignored
MASK_POSITION_YAW = PT_VELOCITY | PT_ACCEL | PT_YAW_RATE
#: SET_ATTITUDE_TARGET bits (ATTITUDE_TARGET_TYPEMASK)
AT_ROLL_RATE, AT_PITCH_RATE, AT_YAW_RATE = 1, 2, 4
AT_THRUST_BODY, AT_THROTTLE, AT_ATTITUDE = 32, 64, 128
AT_RATES = AT_ROLL_RATE | AT_PITCH_RATE | AT_YAW_RATE

MAV_FRAME_LOCAL_NED = 1
MAV_COMP_ID_AUTOPILOT1 = 1
#: SERVO_OUTPUT_RAW pulse widths (us) of a stopped and a full-throttle motor (PWM_MAIN_MIN/MAX defaults).
PWM_MIN, PWM_MAX = 1000, 2000


def custom_mode(main: int, sub: int = 0) -> int:
    """HEARTBEAT ``custom_mode`` of a PX4 main/sub mode."""
    return (int(sub) << 24) | (int(main) << 16)


def split_custom_mode(mode: int) -> tuple[int, int]:
    """(main_mode, sub_mode) of a HEARTBEAT ``custom_mode``."""
    return (int(mode) >> 16) & 0xFF, (int(mode) >> 24) & 0xFF


def mode_name(main: int, sub: int = 0) -> str:
    """PX4's name of a mode (``"Offboard"``, ``"Land"``...), or ``"main/sub"`` for one not listed."""
    return MODE_NAMES.get((main, sub if main == MAIN_AUTO else 0), f"mode {main}/{sub}")


def px4_motor_order(rotor_positions: Sequence[Sequence[float]]) -> tuple[int, ...]:
    """For PX4 motor 1..4 of a quadrotor X (front right, rear left, front left, rear right), the index of that rotor
    in ``rotor_positions`` ((n, 2) m, body FLU x forward, y left).

    Raises:
        ValueError: not four rotors, one in each quadrant.
    """
    p = np.asarray(rotor_positions, dtype=np.float64)
    if p.shape != (4, 2):
        raise ValueError(f"PX4 quad X needs 4 rotors, got {p.shape[0]}")
    wanted = ((1, -1), (-1, 1), (1, 1), (-1, -1))  # (sign x, sign y) FLU: FR, RL, FL, RR
    order = []
    for sx, sy in wanted:
        hits = [i for i in range(4) if np.sign(p[i, 0]) == sx and np.sign(p[i, 1]) == sy]
        if len(hits) != 1:
            raise ValueError("PX4 quad X needs one rotor in each quadrant of the body x-y plane")
        order.append(hits[0])
    return tuple(order)


def open_link(
    device: str, source_system: int, source_component: int, udp_timeout: float = 0.0, baud: int = 921600
) -> Any:
    """A pymavlink connection (``udpin:host:port``, ``udpout:host:port``, ``tcp:...``, a serial device at ``baud``) speaking
    MAVLink 2 with the ``common`` dialect. pymavlink picks the wire version from the ``MAVLINK20`` environment
    variable when it loads a dialect, so it is set here (for this process) before the dialect is loaded."""
    os.environ["MAVLINK20"] = "1"
    from pymavlink import mavutil

    return mavutil.mavlink_connection(
        device,
        baud=baud,
        source_system=source_system,
        source_component=source_component,
        dialect="common",
        udp_timeout=udp_timeout,
    )
