"""What a robot server tells its clients about the robot: a plain dict derived from the device's spec.

Clients (the ROS 2 bridge node, tests, tools) never hard-code joint names, limits or frames: they read them
from the description returned for a DESCRIBE request. Units are SI (rad, m, s); frames follow REP-103.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rcs.devices import Arm, Camera, Quadrotor
from rcs.errors import ConfigError


def _arm(robot: Arm) -> dict[str, Any]:
    spec = robot.spec
    gripper = spec.gripper
    return {
        "kind": "arm",
        "joint_names": list(spec.joint_names),
        "lower": spec.lower.tolist(),
        "upper": spec.upper.tolist(),
        "max_velocity": spec.max_velocity.tolist(),
        "gripper": None if gripper is None else {"min_width": gripper.min_width, "max_width": gripper.max_width},
        "base_frame": spec.base_frame,
        "tcp_frame": spec.tcp_frame,
    }


def _quadrotor(robot: Quadrotor) -> dict[str, Any]:
    spec = robot.spec
    return {
        "kind": "quadrotor",
        "num_rotors": spec.num_rotors,
        "mass": spec.mass,
        "base_frame": "base_link",
    }


#: Device base class -> its part of the description.
DESCRIBERS: dict[type, Callable[[Any], dict[str, Any]]] = {Arm: _arm, Quadrotor: _quadrotor}


def describe(
    robot: Arm | Quadrotor,
    name: str,
    rate_hz: float,
    command_names: Sequence[str],
    mode: str,
    cameras: Sequence[Camera] = (),
    camera_fps: Sequence[float] = (),
    world_frame: str = "world",
) -> dict[str, Any]:
    """The description of ``robot`` served under ``name``.

    Args:
        robot: the device.
        name: the registered robot name (e.g. ``"sim/panda"``).
        rate_hz: control (and state publishing) rate.
        command_names: element names of the trajectory command vector (the chunk executor's names).
        mode: the command mode trajectories are in (``"joint_positions"`` or ``"position"``).
        cameras: cameras whose frames are published.
        camera_fps: publishing rate of each camera (Hz).
        world_frame: name of the world frame.
    """
    kind = next((cls for cls in DESCRIBERS if isinstance(robot, cls)), None)
    if kind is None:
        raise ConfigError(f"no description for {type(robot).__name__}; known: {[c.__name__ for c in DESCRIBERS]}")
    out = DESCRIBERS[kind](robot)
    out.update(
        {
            "name": name,
            "model": robot.spec.name,
            "rate_hz": float(rate_hz),
            "command_names": list(command_names),
            "command_mode": mode,
            "world_frame": world_frame,
            "cameras": [
                {
                    "name": c.spec.name,
                    "width": c.intrinsics.width,
                    "height": c.intrinsics.height,
                    "fps": float(fps),
                    "fx": c.intrinsics.fx,
                    "fy": c.intrinsics.fy,
                    "cx": c.intrinsics.cx,
                    "cy": c.intrinsics.cy,
                }
                for c, fps in zip(cameras, camera_fps, strict=True)
            ],
        }
    )
    return out
