"""Latency compensation for a flight policy: a vehicle's state carried forward to when the action will act.

A learned flight policy computes motor commands from a state measured at ``t``; they reach the motors at
``t + tau``, where ``tau`` sums the telemetry's age, the policy's round trip, the wait for the control loop's next
tick and the link to the motors. Meanwhile the vehicle flies on under the command already sent. The shipped hover
policy tolerates about 2 ms of ``tau`` (docs/quadrotor.md); a served policy behind a MAVLink link sees 5-6 ms.
Feeding the policy the state predicted at ``t + tau`` removes the part of the delay the prediction gets right, as a
Smith predictor does for a known dead time.

:class:`StatePredictor` integrates the rigid body of the vehicle's spec under the command in flight (semi-implicit
Euler, :data:`SUBSTEP_S` steps), world ENU / body FLU::

    dT/dt     = (T_cmd - T) / tau_m               (first-order motor lag, per rotor, N)
    (f, M)    = Mixer.wrench(T)                   (collective thrust N, body torques N m)
    dv/dt     = R e_z f / m - g e_z               (m/s^2)
    domega/dt = I^-1 (M - omega x I omega)        (rad/s^2, body frame)
    dp/dt = v,  dq/dt = q * (0, omega) / 2

The rotors' thrusts ``T`` at the state's time are rarely measured (PX4 reports its outputs, not the rotors'
thrusts, and at 10 Hz): :class:`ThrustEstimate` follows them through the same motor lag from the commands written.

Drag, ground effect and the motor's own nonlinearity are left out: over a few milliseconds they move the state by
far less than the rotor torques do (10 % more thrust on a Crazyflie's left rotors than on its right ones changes
its roll rate by about 0.5 rad/s in 5 ms). Nor is the ground: a vehicle resting on it is predicted to sink by
``g tau^2 / 2`` (0.1 mm at 5 ms).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from rcs.flight.controllers import GRAVITY, Mixer
from rcs.spec import QuadrotorSpec
from rcs.types import QuadrotorState

#: s: the longest horizon a prediction accepts; beyond it, an open-loop model is no longer a prediction
MAX_HORIZON_S = 0.05
#: s: integration step of the prediction
SUBSTEP_S = 0.0005


def commanded_thrusts(spec: QuadrotorSpec, command: np.ndarray) -> np.ndarray:
    """The rotor thrusts (N, float64) that normalized motor ``command`` asks for, each clipped to [0, 1] of
    ``max_thrust``: what every rotor's lag converges to."""
    return np.clip(np.asarray(command, dtype=np.float64), 0.0, 1.0) * spec.max_thrust


class ThrustEstimate:
    """Rotor thrusts (N) estimated from the motor commands written: each rotor follows its command through the
    spec's first-order lag, ``T <- T_cmd + (T - T_cmd) exp(-dt / tau_m)``.

    Args:
        spec: the vehicle (``max_thrust``, ``motor_time_constant``).
    """

    def __init__(self, spec: QuadrotorSpec) -> None:
        self.spec = spec
        self.thrusts: np.ndarray = np.zeros(spec.num_rotors)  #: N, per rotor, the spec's motor order
        self.time: float | None = None  #: monotonic s of :attr:`thrusts`; None before :meth:`reset`

    def reset(self, thrusts: np.ndarray, time: float) -> None:
        """Start from known ``thrusts`` (N) at ``time`` (monotonic s)."""
        self.thrusts = np.asarray(thrusts, dtype=np.float64).copy()
        self.time = float(time)

    def advance(self, command: np.ndarray, time: float) -> np.ndarray:
        """The thrusts at ``time`` (monotonic s) after ``command`` (normalized, [0, 1]) acted since the last call."""
        target = commanded_thrusts(self.spec, command)
        dt = 0.0 if self.time is None else max(float(time) - self.time, 0.0)
        lag = self.spec.motor_time_constant
        self.thrusts = target + (self.thrusts - target) * np.exp(-dt / lag) if lag > 0.0 else target
        self.time = float(time) if self.time is None else max(float(time), self.time)
        return self.thrusts


class StatePredictor:
    """Predicts a quadrotor's state under a known motor command (see the module docstring).

    Args:
        spec: the vehicle (mass, inertia, rotor layout, ``max_thrust``, motor time constant).
    """

    def __init__(self, spec: QuadrotorSpec) -> None:
        self.spec = spec
        self._mixer = Mixer(spec)
        self._inertia = np.asarray(spec.inertia, dtype=np.float64)

    def __call__(
        self, state: QuadrotorState, command: np.ndarray, horizon_s: float, thrusts: np.ndarray | None = None
    ) -> QuadrotorState:
        """``state`` carried ``horizon_s`` seconds forward while the rotors follow ``command`` (normalized motor
        thrusts in [0, 1], the spec's motor order) from ``thrusts`` (N; default the state's ``motor_thrusts``);
        its timestamp moves by the same amount.

        Raises:
            ValueError: ``horizon_s`` not in [0, :data:`MAX_HORIZON_S`] s, or ``command`` not one finite value per
                rotor.
        """
        tau = float(horizon_s)
        if not 0.0 <= tau <= MAX_HORIZON_S:
            raise ValueError(f"prediction horizon {horizon_s!r} s: must be in [0, {MAX_HORIZON_S}] s")
        n = self.spec.num_rotors
        target = commanded_thrusts(self.spec, command)
        if target.shape != (n,) or not np.isfinite(target).all():
            raise ValueError(f"command: expected {n} finite normalized motor thrusts, got {np.asarray(command)!r}")
        if tau == 0.0:
            return state
        thrusts0 = np.asarray(state.motor_thrusts if thrusts is None else thrusts, dtype=np.float64)
        lag = self.spec.motor_time_constant
        steps = max(1, int(np.ceil(tau / SUBSTEP_S)))
        h = tau / steps
        # the wrench is linear in the thrusts, so it follows the motor lag too: W(t) = W_cmd + (W_0 - W_cmd) e^(-t/lag)
        f_cmd, mx_cmd, my_cmd, mz_cmd = (float(c) for c in self._mixer.allocation_matrix @ target)
        f_gap, mx_gap, my_gap, mz_gap = (
            float(c) for c in self._mixer.allocation_matrix @ thrusts0 - [f_cmd, mx_cmd, my_cmd, mz_cmd]
        )
        decay = math.exp(-h / lag) if lag > 0.0 else 0.0
        # scalar arithmetic: a few dozen operations per substep, where numpy's per-call cost would dominate
        px, py, pz = (float(x) for x in state.position)
        vx, vy, vz = (float(x) for x in state.linear_velocity)
        qw, qx, qy, qz = (float(x) for x in state.quaternion)
        wx, wy, wz = (float(x) for x in state.angular_velocity)
        ix, iy, iz = self._inertia
        inv_mass = 1.0 / self.spec.mass
        gap = 1.0
        for _ in range(steps):
            gap *= decay
            f, mx, my, mz = f_cmd + f_gap * gap, mx_cmd + mx_gap * gap, my_cmd + my_gap * gap, mz_cmd + mz_gap * gap
            # body z axis in the world (third column of R(q)) times the collective's acceleration
            a = f * inv_mass
            vx += h * a * 2.0 * (qx * qz + qw * qy)
            vy += h * a * 2.0 * (qy * qz - qw * qx)
            vz += h * (a * (1.0 - 2.0 * (qx * qx + qy * qy)) - GRAVITY)
            # Euler's equations, body frame: I dw/dt = M - w x (I w)
            wx, wy, wz = (
                wx + h * (mx - (wy * iz * wz - wz * iy * wy)) / ix,
                wy + h * (my - (wz * ix * wx - wx * iz * wz)) / iy,
                wz + h * (mz - (wx * iy * wy - wy * ix * wx)) / iz,
            )
            px, py, pz = px + h * vx, py + h * vy, pz + h * vz
            # q <- q * exp(w h / 2), then renormalized
            angle = h * math.sqrt(wx * wx + wy * wy + wz * wz)
            c, k = math.cos(angle / 2.0), (math.sin(angle / 2.0) / angle * h if angle > 0.0 else 0.5 * h)
            dw, dx, dy, dz = c, k * wx, k * wy, k * wz
            qw, qx, qy, qz = (
                qw * dw - qx * dx - qy * dy - qz * dz,
                qw * dx + qx * dw + qy * dz - qz * dy,
                qw * dy - qx * dz + qy * dw + qz * dx,
                qw * dz + qx * dy - qy * dx + qz * dw,
            )
            norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
        p = np.array([px, py, pz])
        v = np.array([vx, vy, vz])
        q = np.array([qw, qx, qy, qz])
        w = np.array([wx, wy, wz])
        thrusts = target + (thrusts0 - target) * gap
        return replace(
            state,
            timestamp=float(state.timestamp) + tau,
            position=p,
            quaternion=q,
            linear_velocity=v,
            angular_velocity=w,
            motor_thrusts=thrusts,
        )
