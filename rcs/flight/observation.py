"""What a client sends a served flight policy: the vehicle's state plus the memory the server does not keep.

A policy server answers each request on its own (it batches sessions and keeps nothing per session), but the
flight task's observation (:mod:`rcs.flight.hover_task`) has two memories: the previous action and the
height-error integral. :class:`FlightObservation` carries both on the client side, one control step per call,
and lays out the ``observation.state`` / ``observation.target`` tensors of the ``flight_mlp`` schema
(:mod:`policies.flight.serving`):

- ``observation.state`` (``STATE_NAMES`` then ``u0 .. u{n-1}``): position ``x y z`` (m, world ENU), quaternion
  ``qw qx qy qz`` (world from body), linear velocity ``vx vy vz`` (m/s, world), angular velocity ``wx wy wz``
  (rad/s, body FLU), the height-error integral ``iz`` (m s, including this step's error) and the
  normalized motor thrusts ``u`` last commanded (in [0, 1]);
- ``observation.target``: ``target_x target_y target_z`` (m), ``target_vx ..`` (m/s), ``target_ax ..`` (m/s^2),
  world: the hover point (velocity and acceleration zero) or where a tracked reference is now.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rcs.flight import hover_task
from rcs.types import QuadrotorState

STATE_NAMES = ("x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "vz", "wx", "wy", "wz", "iz")
"""``observation.state`` entries before the ``u0 .. u{n-1}`` of the last motor command."""

TARGET_NAMES = tuple(f"target_{q}{axis}" for q in ("", "v", "a") for axis in "xyz")
"""``observation.target`` entries: position (m), velocity (m/s), acceleration (m/s^2), world."""


def state_names(num_rotors: int) -> tuple[str, ...]:
    """Every ``observation.state`` entry of a vehicle with ``num_rotors`` rotors."""
    return STATE_NAMES + tuple(f"u{i}" for i in range(num_rotors))


class FlightObservation:
    """The client side of a served flight policy for one vehicle.

    Args:
        target: hover point (m, world); :attr:`velocity` and :attr:`acceleration` (world) make it a moving one.
        control_dt: s between two observations (the policy's control period: the integral's time step).
        num_rotors: rotors (length of the motor command).
    """

    def __init__(self, target: np.ndarray, control_dt: float, num_rotors: int) -> None:
        self.target: npt.NDArray[np.float64] = np.asarray(target, dtype=np.float64).reshape(3)
        self.velocity: npt.NDArray[np.float64] = np.zeros(3)  # m/s, world: the target's
        self.acceleration: npt.NDArray[np.float64] = np.zeros(3)  # m/s^2, world: the target's
        self.control_dt = float(control_dt)
        self.integral: npt.NDArray[np.float64] = np.zeros(())
        self.last_command: npt.NDArray[np.float64] = np.zeros(int(num_rotors))

    def reset(self, motor_commands: np.ndarray) -> None:
        """Start a flight: no integral yet; ``motor_commands`` the normalized thrusts the motors run at now."""
        self.integral = np.zeros(())
        self.last_command = np.asarray(motor_commands, dtype=np.float64).copy()

    def commanded(self, motor_commands: np.ndarray) -> None:
        """Remember the normalized thrusts sent to the motors (the next observation's ``u``)."""
        self.last_command = np.asarray(motor_commands, dtype=np.float64).copy()

    def __call__(self, state: QuadrotorState) -> dict[str, np.ndarray]:
        """The request tensors for ``state``; advances the integral by one control period."""
        self.integral = hover_task.integrate_error(self.integral, state.position, self.target, self.control_dt)
        vector = np.concatenate(
            [
                state.position,
                state.quaternion,
                state.linear_velocity,
                state.angular_velocity,
                self.integral.reshape(1),
                self.last_command,
            ]
        )
        return {
            "observation.state": vector.astype(np.float32),
            "observation.target": np.concatenate([self.target, self.velocity, self.acceleration]).astype(np.float32),
        }
