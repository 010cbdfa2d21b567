"""What a wire-protocol emulator of a physical robot offers: the interface tests, benchmarks and ``rcs emulate``
use, whatever the vendor protocol.

An emulator stands in for one physical robot: it speaks the vendor's wire protocol (a Feetech servo bus on a
pseudo-terminal, libfranka's network protocol on a socket) from its own process, as a robot is its own
machine, and its motion comes from simulated physics. The driver under test cannot tell it from the robot; only
this side channel (ground truth, fault injection, killing the link) is emulator-only. Emulators register under
the robot's own name in :data:`rcs.registry.emulators` (entry-point group ``rcs.emulators``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from rcs.types import QuadrotorState


@runtime_checkable
class RobotEmulator(Protocol):
    """A running emulator of an arm. Attributes:

    - ``robot``: the registered robot name it stands in for (e.g. ``"hw/so101"``);
    - ``robot_config``: keyword config for ``make_robot(robot, **robot_config)`` that connects to it (port,
      host, calibration...), the same keys a user sets for the real robot.
    """

    robot: str
    robot_config: dict[str, Any]

    def joint_positions(self) -> np.ndarray:
        """Ground truth from the emulator's physics: joint positions (rad) in the robot spec's joint order."""
        ...

    def kill(self) -> None:
        """The link dies without warning (the emulator process is killed: a pulled cable, a powered-off robot)."""
        ...

    def close(self) -> None:
        """Stop the emulator and release its resources (idempotent)."""
        ...


@runtime_checkable
class VehicleEmulator(Protocol):
    """A running emulator of a multirotor (its autopilot or flight controller's link). Attributes as
    :class:`RobotEmulator`: ``robot`` and ``robot_config``."""

    robot: str
    robot_config: dict[str, Any]

    def vehicle_state(self) -> QuadrotorState:
        """Ground truth from the emulator's physics, in the rcs frames (world ENU, body FLU; see
        :class:`rcs.types.QuadrotorState`), whatever frames the wire protocol uses."""
        ...

    def kill(self) -> None:
        """The link dies without warning (the emulator process is killed: a radio out of range, a dead battery)."""
        ...

    def close(self) -> None:
        """Stop the emulator and release its resources (idempotent)."""
        ...
