"""How the contract suite gets each registered robot: simulated ones directly, physical ones through the
wire-protocol emulator registered under the robot's name (``rcs.registry.emulators``).

A physical robot without an emulator cannot be tested here: that is a failure, not a skip.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import rcs
from rcs.devices import Simulated
from rcs.registry import emulators, start_emulator


class RobotRig:
    """One registered robot and what stands behind it (its simulator, or the emulator of its wire protocol)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.emulated = name in emulators.names()
        self.emulator: Any = None

    def make(self, **config: Any) -> Any:
        """A new, disconnected robot (a fresh emulator first if the last one was killed)."""
        if not self.emulated:
            if self.name.startswith("hw/"):
                raise AssertionError(
                    f"{self.name}: a physical robot driver needs an emulator registered under its name"
                )
            return rcs.make_robot(self.name, **config)
        if self.emulator is None:
            self.emulator = start_emulator(self.name)
        return rcs.make_robot(self.name, **{**self.emulator.robot_config, **config})

    def truth(self, robot: Any) -> np.ndarray:
        """Joint positions (rad) as the physics has them: the emulator's side channel, or the simulator."""
        if self.emulated:
            return np.asarray(self.emulator.joint_positions(), dtype=float)
        return robot.read().joint_positions

    def vehicle_truth(self, robot: Any) -> Any:
        """A quadrotor's :class:`rcs.types.QuadrotorState` as the physics has it (rcs frames): the emulator's
        side channel, or the simulator."""
        if self.emulated:
            return self.emulator.vehicle_state()
        return robot.read()

    def wait(self, robot: Any, seconds: float) -> None:
        """Let ``seconds`` of robot time pass with the commands held."""
        if isinstance(robot, Simulated):
            robot.advance(seconds)
        else:
            time.sleep(seconds)

    def kill_link(self) -> None:
        """The robot disappears mid-operation (emulated robots only)."""
        self.emulator.kill()
        self.emulator.close()
        self.emulator = None

    def release(self, robot: Any) -> None:
        robot.close()
        sim = getattr(robot, "simulation", None)
        if sim is not None:
            sim.close()

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None
