"""What a STATE message holds: a device state as named tensors, with the command the loop wrote last.

Arms: ``joint_positions``, ``joint_velocities``, ``joint_efforts``, ``gripper``, ``tcp_position``,
``tcp_quaternion``; quadrotors: ``position``, ``quaternion``, ``linear_velocity``, ``angular_velocity``,
``linear_acceleration``, ``motor_thrusts``, ``armed``. Plus ``command`` (the command written at the previous tick,
metadata ``command_mode``) and metadata ``stage`` (the watchdog stage). One encoder for the robot server and for
every other publisher of a robot's stream (:mod:`rcs.remote.publisher`), so subscribers (the ROS 2 bridge,
``rcs view``, the deploy run log) read one format (docs/ros2.md "Robot channel").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rcs.remote.wire import RobotHeader, RobotMsg, encode_message
from rcs.types import ArmState, QuadrotorState


def _arm_tensors(state: ArmState, previous: Any, dt: float) -> dict[str, np.ndarray]:
    return {
        "joint_positions": state.joint_positions,
        "joint_velocities": state.joint_velocities,
        "joint_efforts": state.joint_efforts,
        "gripper": np.array([state.gripper]),
        "tcp_position": state.tcp_position,
        "tcp_quaternion": state.tcp_quaternion,
    }


def _quadrotor_tensors(state: QuadrotorState, previous: Any, dt: float) -> dict[str, np.ndarray]:
    # Acceleration (world frame, m/s^2) by differencing consecutive velocities over the ticks between them:
    # exact for the simulator's integration, and what an IMU's accelerometer integrates to.
    if isinstance(previous, QuadrotorState) and dt > 0:
        accel = (state.linear_velocity - previous.linear_velocity) / dt
    else:
        accel = np.zeros(3)
    return {
        "position": state.position,
        "quaternion": state.quaternion,
        "linear_velocity": state.linear_velocity,
        "angular_velocity": state.angular_velocity,
        "linear_acceleration": accel,
        "motor_thrusts": state.motor_thrusts,
        "armed": np.array([state.armed]),
    }


#: State type -> the tensors of its STATE message.
STATE_TENSORS: dict[type, Callable[[Any, Any, float], dict[str, np.ndarray]]] = {
    ArmState: _arm_tensors,
    QuadrotorState: _quadrotor_tensors,
}


def state_message(
    seq: int, tick: int, state: Any, previous: Any, dt: float, command: Any = None, stage: str | None = None
) -> list[Any]:
    """The frames of one STATE message (without the topic): ``state`` at loop ``tick`` (``previous`` and the time
    ``dt`` (s) since it, for differenced quantities), the ``command`` (a ``Command``: mode + values) written at
    the previous tick, the watchdog ``stage``."""
    tensors = STATE_TENSORS[type(state)](state, previous, dt)
    meta: dict[str, Any] = {} if stage is None else {"stage": stage}
    if command is not None:  # what the loop commanded last tick, beside what it measures now
        tensors = {**tensors, "command": np.asarray(command.values, dtype=np.float64)}
        meta["command_mode"] = command.mode
    header = RobotHeader(RobotMsg.STATE, seq, tick, float(state.timestamp))
    return encode_message(header, meta, tensors)
