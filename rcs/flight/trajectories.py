"""Reference trajectories for multirotor position control, with analytic derivatives.

Pure numpy. Positions in the world frame (ENU: x forward, y left, z up), SI units, yaw in rad about world z.
A trajectory's :meth:`sample` returns a :class:`ReferenceSample` (a named tuple, so
``position, velocity, acceleration, yaw = traj.sample(t)`` works); :meth:`jerk` gives the third derivative for
feed-forward of body rates (see :class:`rcs.flight.controllers.PositionController`).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rcs.errors import ConfigError


class ReferenceSample(NamedTuple):
    """A reference at one instant.

    Attributes:
        position: (3,) m, world frame.
        velocity: (3,) m/s, world frame.
        acceleration: (3,) m/s^2, world frame (gravity excluded).
        yaw: rad, heading of body x about world z.
    """

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    yaw: float


@runtime_checkable
class Trajectory(Protocol):
    """A time-parametrized reference (time ``t`` in s since the trajectory's start)."""

    def sample(self, t: float) -> ReferenceSample:
        """Position, velocity, acceleration (world, SI) and yaw (rad) at time ``t`` (s)."""
        ...

    def jerk(self, t: float) -> np.ndarray:
        """(3,) m/s^3, world frame, third derivative of the position at time ``t`` (s)."""
        ...


def _finite_vec(name: str, value: object, size: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (size,) or not np.isfinite(arr).all():
        raise ConfigError(f"{name}={value!r} must be {size} finite numbers")
    return arr.copy()


class Hover:
    """Hold a fixed position (m, world) and yaw (rad)."""

    def __init__(self, position: np.ndarray, yaw: float = 0.0) -> None:
        self.position = _finite_vec("position", position, 3)
        self.yaw = float(yaw)

    def sample(self, t: float) -> ReferenceSample:
        """The constant reference: ``position``, zero velocity and acceleration, ``yaw``."""
        return ReferenceSample(self.position.copy(), np.zeros(3), np.zeros(3), self.yaw)

    def jerk(self, t: float) -> np.ndarray:
        """Zero (m/s^3)."""
        return np.zeros(3)


class FigureEight:
    """A horizontal figure eight (lemniscate of Gerono) at constant height and yaw, with a smooth start.

    ``x = cx + amplitude_x sin(phi)``, ``y = cy + amplitude_y sin(2 phi)``, ``z = height``: the curve spans
    ``[cx - amplitude_x, cx + amplitude_x]`` x ``[cy - amplitude_y, cy + amplitude_y]`` (m), crossing itself at
    the centre, and one loop of ``phi`` takes ``period`` seconds at full speed.

    Smooth start: the phase rate ramps from 0 to ``2 pi / period`` over ``ramp_time`` seconds with a quintic
    smoothstep, so at ``t <= 0`` the reference is a hover at the centre (zero velocity, acceleration and jerk)
    and position, velocity, acceleration and jerk are continuous everywhere.

    Args:
        center: m, world frame crossing point: (x, y), or (x, y, z) whose z is the height.
        amplitude_x, amplitude_y: m, half-extents along world x and y.
        period: s per loop at full speed.
        height: m, world z (default: ``center[2]`` for a 3-vector centre, else 1.0); must agree with a
            3-vector centre if both are given.
        yaw: rad, constant heading.
        ramp_time: s, duration of the speed ramp (default: one period).
    """

    def __init__(
        self,
        center: npt.ArrayLike = (0.0, 0.0),
        amplitude_x: float = 1.0,
        amplitude_y: float = 0.5,
        period: float = 8.0,
        height: float | None = None,
        yaw: float = 0.0,
        ramp_time: float | None = None,
    ) -> None:
        c: np.ndarray = np.asarray(center, dtype=np.float64).reshape(-1)
        if c.shape == (3,):
            c3 = _finite_vec("center", c, 3)
            if height is not None and not math.isclose(float(height), float(c3[2]), abs_tol=1e-12):
                raise ConfigError(f"height={height} disagrees with center[2]={c3[2]}: give one of them")
            height = float(c3[2])
            c = c3[:2]
        self.center = _finite_vec("center", c, 2)
        height = 1.0 if height is None else float(height)
        if not math.isfinite(height):
            raise ConfigError(f"height={height} must be finite")
        self.amplitude_x = float(amplitude_x)
        self.amplitude_y = float(amplitude_y)
        if not period > 0:
            raise ConfigError(f"period={period} must be > 0 s")
        self.period = float(period)
        self.height = height
        self.yaw = float(yaw)
        self.ramp_time = self.period if ramp_time is None else float(ramp_time)
        if self.ramp_time < 0:
            raise ConfigError(f"ramp_time={ramp_time} must be >= 0 s")
        self.omega = 2.0 * math.pi / self.period

    def phase(self, t: float) -> tuple[float, float, float, float]:
        """Phase ``phi`` (rad) and its first three time derivatives at ``t`` (s)."""
        w, tr = self.omega, self.ramp_time
        if t <= 0.0:
            return 0.0, 0.0, 0.0, 0.0
        if t >= tr:
            return w * (0.5 * tr + (t - tr)), w, 0.0, 0.0
        s = t / tr
        s2, s3 = s * s, s * s * s
        phi = w * tr * (s3 * s3 - 3.0 * s2 * s3 + 2.5 * s2 * s2)  # integral of the quintic smoothstep
        d1 = w * (6.0 * s2 * s3 - 15.0 * s2 * s2 + 10.0 * s3)
        d2 = w * (30.0 * s2 * s2 - 60.0 * s3 + 30.0 * s2) / tr
        d3 = w * (120.0 * s3 - 180.0 * s2 + 60.0 * s) / (tr * tr)
        return phi, d1, d2, d3

    @staticmethod
    def _axis(amplitude: float, k: float, phi: float, d1: float, d2: float, d3: float) -> tuple[float, ...]:
        """``amplitude sin(k phi)`` and its first three time derivatives."""
        s, c = math.sin(k * phi), math.cos(k * phi)
        a = amplitude
        return (
            a * s,
            a * k * c * d1,
            -a * k * k * s * d1 * d1 + a * k * c * d2,
            -a * k**3 * c * d1**3 - 3.0 * a * k * k * s * d1 * d2 + a * k * c * d3,
        )

    def sample(self, t: float) -> ReferenceSample:
        """Position (m), velocity (m/s), acceleration (m/s^2) in the world frame, and yaw (rad) at ``t`` (s)."""
        phi, d1, d2, d3 = self.phase(t)
        x = self._axis(self.amplitude_x, 1.0, phi, d1, d2, d3)
        y = self._axis(self.amplitude_y, 2.0, phi, d1, d2, d3)
        return ReferenceSample(
            np.array([self.center[0] + x[0], self.center[1] + y[0], self.height]),
            np.array([x[1], y[1], 0.0]),
            np.array([x[2], y[2], 0.0]),
            self.yaw,
        )

    def jerk(self, t: float) -> np.ndarray:
        """(3,) m/s^3, world frame, at ``t`` (s)."""
        phi, d1, d2, d3 = self.phase(t)
        return np.array(
            [
                self._axis(self.amplitude_x, 1.0, phi, d1, d2, d3)[3],
                self._axis(self.amplitude_y, 2.0, phi, d1, d2, d3)[3],
                0.0,
            ]
        )
