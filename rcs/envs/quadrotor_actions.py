"""Quadrotor action modes, one per command interface of :class:`rcs.devices.Quadrotor`.

- ``motor_thrusts``: ``[u_1..u_n]`` normalized rotor thrust in [0, 1].
- ``motor_rpms``: ``[w_1..w_n]`` normalized rotor speed in [0, 1] (thrust ``w**2``; the lag acts on speed).
- ``thrust_rates``: ``[collective thrust (N), roll rate, pitch rate, yaw rate (rad/s, body FLU)]``.
- ``position``: ``[x, y, z (m, world), yaw (rad)]`` setpoint, bounded by the geofence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from gymnasium import spaces

from rcs.devices import Quadrotor
from rcs.spec import WorkspaceBox


class QuadrotorActionMode(ABC):
    """Base: one command interface of the vehicle, with its action space and element labels."""

    labels: tuple[str, ...] = ()

    def __init__(self, vehicle: Quadrotor, geofence: WorkspaceBox) -> None:
        self.vehicle, self.geofence = vehicle, geofence
        self.space = self._make_space()

    @abstractmethod
    def _make_space(self) -> spaces.Box:
        """The action space of this mode (called once, by ``__init__``; may set :attr:`labels`)."""

    @abstractmethod
    def apply(self, action: np.ndarray) -> None:
        """Send the command for one action (already checked against :attr:`space` by the env)."""


class MotorThrusts(QuadrotorActionMode):
    def _make_space(self) -> spaces.Box:
        n = self.vehicle.spec.num_rotors
        self.labels = tuple(f"motor_{i}" for i in range(n))
        return spaces.Box(0.0, 1.0, (n,), dtype=np.float32)

    def apply(self, action: np.ndarray) -> None:
        self.vehicle.command_motor_thrusts(action)


class MotorRpms(MotorThrusts):
    def apply(self, action: np.ndarray) -> None:
        self.vehicle.command_motor_rpms(action)


class ThrustRates(QuadrotorActionMode):
    labels = ("collective_thrust", "roll_rate", "pitch_rate", "yaw_rate")

    def _make_space(self) -> spaces.Box:
        s = self.vehicle.spec
        rate = np.asarray(s.max_body_rate)
        low = np.r_[0.0, -rate].astype(np.float32)
        high = np.r_[s.max_collective_thrust, rate].astype(np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    def apply(self, action: np.ndarray) -> None:
        self.vehicle.command_thrust_rates(float(action[0]), action[1:4])


class PositionSetpoint(QuadrotorActionMode):
    labels = ("x", "y", "z", "yaw")

    def _make_space(self) -> spaces.Box:
        g = self.geofence
        return spaces.Box(
            np.r_[g.lower, -np.pi].astype(np.float32), np.r_[g.upper, np.pi].astype(np.float32), dtype=np.float32
        )

    def apply(self, action: np.ndarray) -> None:
        self.vehicle.command_position(action[:3], float(action[3]))


QUADROTOR_ACTION_MODES: dict[str, type[QuadrotorActionMode]] = {
    "motor_thrusts": MotorThrusts,
    "motor_rpms": MotorRpms,
    "thrust_rates": ThrustRates,
    "position": PositionSetpoint,
}
