"""The classical quadrotor baseline as an env policy: :class:`rcs.flight.controllers.PositionController` on
the thrust + body-rate interface (env ``action_mode="thrust_rates"``), fed the task's reference trajectory
with its derivatives (a planner's feed-forward)."""

from __future__ import annotations

import numpy as np

from rcs.flight.controllers import PositionController
from rcs.flight.trajectories import Trajectory
from rcs.spec import QuadrotorSpec


class QuadrotorTrackingExpert:
    """Maps a quadrotor env observation to ``[collective thrust (N), body rates (rad/s)]``.

    Args:
        spec: the vehicle.
        reference: the env's reference trajectory (``env.unwrapped.reference``).
        control_dt: env step period (s); the expert's clock advances by it per call.
    """

    def __init__(self, spec: QuadrotorSpec, reference: Trajectory, control_dt: float) -> None:
        self.controller = PositionController(spec)
        self.reference = reference
        self.dt = control_dt
        self._t = 0.0

    def reset(self) -> None:
        self.controller.reset()
        self._t = 0.0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ref = self.reference.sample(self._t)
        cmd = self.controller.update(
            obs["position"],
            obs["linear_velocity"],
            obs["quaternion"],
            self.dt,
            ref.position,
            ref.velocity,
            ref.acceleration,
            ref.yaw,
            self.reference.jerk(self._t),
        )
        self._t += self.dt
        return np.r_[cmd.collective_thrust, cmd.body_rates].astype(np.float32)
