"""Many multirotors stepped per call: a vectorized numpy model of what ``sim/crazyflie`` simulates in MuJoCo.

Everything comes from a :class:`rcs.spec.QuadrotorSpec` (mass, inertia, rotor layout and spin directions, max
thrust, drag torque ratio, motor time constant); nothing is specific to the Crazyflie. Per vehicle and physics
step (``physics_dt``, default 1 ms), in MuJoCo's own order so that both agree to rounding (tested against
:mod:`sim.mujoco.quadrotor` in ``tests/flight/test_batch_sim.py``):

1. motor lag, exact first-order filter on the normalized thrust command ``u`` (MuJoCo ``filterexact`` with
   ``actearly``: the step's force already uses the updated state):  ``s <- u + (s - u) exp(-dt / tau)``;
2. rotor ``i`` at body ``(x_i, y_i)`` with direction ``d_i`` (+1 CCW) gives thrust ``f_i = s_i max_thrust`` along
   body +z and the body torque ``(y_i f_i, -x_i f_i, -d_i k f_i)`` (k: ``torque_to_thrust``);
3. semi-implicit Euler (MuJoCo's ``Euler``): velocities first (``dv = R e_z sum f / m + g``;
   ``I dw = tau - w x I w`` in the body frame), then the position with the new velocity and the attitude by the
   exponential map of the new body rate (``q <- q exp(w dt / 2)``, renormalized).

There is no ground and no aerodynamic drag (the MuJoCo model has neither in the air). An optional constant
external force per vehicle (:attr:`BatchQuadrotor.external_force`, N, world; zero by default: the MuJoCo model
has none) adds ``F / m`` to the linear acceleration: a payload, a steady wind, a thrust offset. Frames (REP-103):
world ENU position and velocity, body FLU angular velocity, quaternion (w, x, y, z) world from body.

Domain randomization is drawn per vehicle through :class:`rcs.spec.DomainRandomization` with the meaning of
:class:`sim.mujoco.quadrotor.QuadrotorSimulation`: ``mass`` scales mass and inertia, ``extra["inertia"]`` the
inertia on top, ``motor_constant`` the max thrust (and so the drag torque), ``motor_time_constant`` the lag.

Divergence: a vehicle whose state turns non-finite or whose body turns more than
:data:`sim.mujoco.quadrotor.MAX_ROTATION_PER_STEP` rad in one physics step is marked in :attr:`diverged` and
frozen (no longer integrated); with ``on_divergence="raise"`` :meth:`BatchQuadrotor.step` raises
:class:`rcs.errors.SimulationDivergedError` naming the vehicles instead, as the MuJoCo device does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from rcs.errors import ConfigError, SimulationDivergedError
from rcs.spec import DomainRandomization, QuadrotorSpec

GRAVITY = 9.81
"""m/s^2 along world -z (the MJCF's value)."""

PARAMETERS = ("mass", "inertia", "max_thrust", "motor_time_constant")
"""The physical parameters drawn per vehicle (attributes of :class:`BatchQuadrotor` of the same names)."""

MAX_ROTATION_PER_STEP = 0.5
"""rad per physics step: the MuJoCo device's limit (:data:`sim.mujoco.quadrotor.MAX_ROTATION_PER_STEP`)."""


class BatchQuadrotor:
    """``n`` independent vehicles of one spec, each with its own randomized parameters and motor state.

    Args:
        spec: the vehicle (rotor layout, mass, inertia, thrust, drag ratio, motor lag).
        n: number of vehicles.
        physics_dt: physics step (s).
        randomization: ranges drawn per vehicle by :meth:`randomize` (default: none, every vehicle nominal).
        on_divergence: ``"mask"`` (mark and freeze diverged vehicles) or ``"raise"``.

    Attributes (arrays over vehicles, writable; see the module docstring for frames):
        position (n, 3) m, quaternion (n, 4), linear_velocity (n, 3) m/s, angular_velocity (n, 3) rad/s,
        motor_state (n, r): lagged normalized thrust in [0, 1], command (n, r): normalized thrust command,
        mass (n,) kg, inertia (n, 3) kg m^2, max_thrust (n,) N per rotor, motor_time_constant (n,) s,
        external_force (n, 3) N, world (constant, kept across :meth:`set_state`), diverged (n,) bool,
        time (n,) s since each vehicle's last :meth:`set_state`.
    """

    def __init__(
        self,
        spec: QuadrotorSpec,
        n: int,
        physics_dt: float = 0.001,
        randomization: DomainRandomization | None = None,
        on_divergence: str = "mask",
    ) -> None:
        if n < 1:
            raise ConfigError(f"n={n} vehicles must be >= 1")
        if not physics_dt > 0:
            raise ConfigError(f"physics_dt={physics_dt} must be > 0")
        if on_divergence not in ("mask", "raise"):
            raise ConfigError(f"on_divergence={on_divergence!r}: 'mask' or 'raise'")
        self.spec, self.n, self.dt = spec, int(n), float(physics_dt)
        self.randomization = randomization or DomainRandomization()
        self.on_divergence = on_divergence
        r = spec.num_rotors
        pos = np.asarray(spec.rotor_positions, dtype=np.float64)
        dirs = np.asarray(spec.rotor_directions, dtype=np.float64)
        # (r, 3) body torque per newton of each rotor's thrust: lever arm plus rotor drag
        self._torque_per_thrust = np.stack([pos[:, 1], -pos[:, 0], -dirs * spec.torque_to_thrust], axis=1)
        self.position = np.zeros((n, 3))
        self.quaternion = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        self.linear_velocity = np.zeros((n, 3))
        self.angular_velocity = np.zeros((n, 3))
        self.motor_state = np.zeros((n, r))
        self.command = np.zeros((n, r))
        self.mass = np.full(n, spec.mass)
        self.inertia = np.tile(np.asarray(spec.inertia, dtype=np.float64), (n, 1))
        self.max_thrust = np.full(n, spec.max_thrust)
        self.motor_time_constant = np.full(n, spec.motor_time_constant)
        self.external_force = np.zeros((n, 3))
        self.diverged = np.zeros(n, dtype=bool)
        self.time = np.zeros(n)
        self._decay = np.empty((n, 1))
        self._refresh()

    # -- parameters ----------------------------------------------------------------------------------------
    def draw_parameters(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``count`` independent draws of the randomization (one value of every range of the schema per draw, as
        :meth:`rcs.spec.DomainRandomization.sample` draws one), as physical parameters: ``mass`` (kg),
        ``inertia`` ((count, 3) kg m^2), ``max_thrust`` (N per rotor), ``motor_time_constant`` (s)."""
        k = {name: rng.uniform(lo, hi, count) for name, (lo, hi) in self.randomization.ranges().items()}
        s = self.spec
        return {
            "mass": s.mass * k["mass"],
            "inertia": np.asarray(s.inertia) * (k["mass"] * k.get("inertia", 1.0))[:, None],
            "max_thrust": s.max_thrust * k["motor_constant"],
            "motor_time_constant": s.motor_time_constant * k["motor_time_constant"],
        }

    def randomize(self, ids: np.ndarray | slice | None, rng: np.random.Generator) -> None:
        """Redraw the parameters of vehicles ``ids`` (all if ``None``), one draw of the schema each."""
        idx = np.atleast_1d(np.arange(self.n)[ids if ids is not None else slice(None)])
        self.set_parameters(idx, **self.draw_parameters(len(idx), rng))

    def set_parameters(
        self,
        ids: np.ndarray | slice | list[int],
        mass: np.ndarray | float | None = None,
        inertia: np.ndarray | None = None,
        max_thrust: np.ndarray | float | None = None,
        motor_time_constant: np.ndarray | float | None = None,
    ) -> None:
        """Set physical parameters of vehicles ``ids`` directly (kg, kg m^2 (3,), N per rotor, s; ``None``: kept).

        Raises:
            ConfigError: naming the parameter, for a value that is not finite and > 0 (time constant: >= 0).
        """
        values = {"mass": mass, "inertia": inertia, "max_thrust": max_thrust}
        values["motor_time_constant"] = motor_time_constant
        self.check_parameters(values)
        self.assign_parameters(ids, values)

    @staticmethod
    def check_parameters(values: Mapping[str, npt.ArrayLike | None]) -> None:
        """Raise ConfigError naming the first of :data:`PARAMETERS` in ``values`` that is not finite and > 0 (time
        constant: >= 0); ``None`` and other keys are not checked."""
        for name in PARAMETERS:
            value = values.get(name)
            if value is None:
                continue
            v = np.asarray(value, dtype=np.float64)
            positive = name != "motor_time_constant"
            below = (v <= 0).any() if positive else (v < 0).any()
            if not np.isfinite(v).all() or below:
                raise ConfigError(f"{name}: every value must be finite and {'> 0' if positive else '>= 0'}")

    def assign_parameters(
        self, ids: np.ndarray | slice | list[int], values: Mapping[str, npt.ArrayLike | None]
    ) -> None:
        """:meth:`set_parameters` without the check, for values that passed :meth:`check_parameters` already (a
        pool of draws checked once and assigned a slice per reset: resets happen nearly every step of a batch)."""
        for name in PARAMETERS:
            value = values.get(name)
            if value is not None:
                getattr(self, name)[ids] = value
        self._refresh(ids)

    def _refresh(self, ids: np.ndarray | slice | list[int] | None = None) -> None:
        """Update what derives from the parameters of vehicles ``ids`` (all if ``None``): the lag decay."""
        sel = slice(None) if ids is None else ids
        self._decay[sel, 0] = np.exp(-self.dt / np.maximum(self.motor_time_constant[sel], 1e-12))

    # -- state ---------------------------------------------------------------------------------------------
    def set_state(
        self,
        ids: np.ndarray | slice | list[int],
        position: np.ndarray,
        quaternion: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        motor_state: np.ndarray | None = None,
    ) -> None:
        """Place vehicles ``ids`` (frames as the module docstring; ``motor_state``: lagged normalized thrusts,
        default 0); clears their divergence flag, command and time."""
        q = np.asarray(quaternion, dtype=np.float64)
        self.position[ids] = position
        self.quaternion[ids] = q / np.linalg.norm(q, axis=-1, keepdims=True)
        self.linear_velocity[ids] = linear_velocity
        self.angular_velocity[ids] = angular_velocity
        self.motor_state[ids] = 0.0 if motor_state is None else motor_state
        self.command[ids] = 0.0
        self.diverged[ids] = False
        self.time[ids] = 0.0

    def motor_thrusts(self) -> np.ndarray:
        """(n, r) current (lagged) rotor thrusts (N)."""
        return self.motor_state * self.max_thrust[:, None]

    # -- integration ---------------------------------------------------------------------------------------
    def step(self, command: np.ndarray | None = None, substeps: int = 1) -> np.ndarray:
        """Hold ``command`` ((n, r) normalized thrusts, clipped to [0, 1]; ``None``: keep the last) for
        ``substeps`` physics steps. Returns :attr:`diverged` (vehicles that diverged now or before are frozen).

        Raises:
            SimulationDivergedError: with ``on_divergence="raise"``, naming the diverged vehicles.
        """
        if command is not None:
            np.minimum(np.maximum(command, 0.0), 1.0, out=self.command)
        live = ~self.diverged
        ids = slice(None) if live.all() else np.flatnonzero(live)
        for _ in range(int(substeps)):
            self._integrate(ids)
        # checked once per call, like the MuJoCo device's advance(): a non-finite state stays non-finite, and the
        # rate limit is far beyond any commanded motion, so a vehicle does not pass it and come back in one call
        bad = self._check()
        if bad.any():
            self.diverged |= bad
            if self.on_divergence == "raise":
                ids = np.flatnonzero(self.diverged)
                raise SimulationDivergedError(
                    f"{self.spec.name}: vehicles {ids[:10].tolist()}{' ...' if len(ids) > 10 else ''} left the "
                    f"valid range (non-finite state or more than {MAX_ROTATION_PER_STEP} rad per "
                    f"{self.dt * 1e3:g} ms physics step); reset them"
                )
        return self.diverged

    def _check(self) -> np.ndarray:
        w = self.angular_velocity
        finite = np.isfinite(self.position).all(1) & np.isfinite(self.quaternion).all(1)
        finite &= np.isfinite(self.linear_velocity).all(1) & np.isfinite(w).all(1)
        rate = np.sqrt(np.einsum("ij,ij->i", w, w))
        with np.errstate(invalid="ignore"):
            fast = ~(rate * self.dt <= MAX_ROTATION_PER_STEP)
        return (~finite | fast) & ~self.diverged

    def _integrate(self, ids: np.ndarray | slice) -> None:
        dt = self.dt
        u = self.command[ids]
        s = u + (self.motor_state[ids] - u) * self._decay[ids]  # exact first-order lag (actearly)
        self.motor_state[ids] = s
        f = s * self.max_thrust[ids, None]  # (m, r) N
        q = self.quaternion[ids]
        qw, qx, qy, qz = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
        # linear: thrust along body z (third column of R) in the world, plus gravity
        acc = (f.sum(1) / self.mass[ids])[:, None] * np.stack(
            [2 * (qx * qz + qw * qy), 2 * (qy * qz - qw * qx), 1 - 2 * (qx * qx + qy * qy)], axis=1
        )
        acc[:, 2] -= GRAVITY
        acc += self.external_force[ids] / self.mass[ids, None]
        # angular (body): I dw = tau - w x (I w)
        w = self.angular_velocity[ids]
        inertia = self.inertia[ids]
        iw = inertia * w
        gyro = np.stack(
            [
                w[:, 1] * iw[:, 2] - w[:, 2] * iw[:, 1],
                w[:, 2] * iw[:, 0] - w[:, 0] * iw[:, 2],
                w[:, 0] * iw[:, 1] - w[:, 1] * iw[:, 0],
            ],
            axis=1,
        )
        tau = f @ self._torque_per_thrust - gyro
        v = self.linear_velocity[ids] + dt * acc
        w = w + dt * tau / inertia
        self.linear_velocity[ids] = v
        self.angular_velocity[ids] = w
        self.position[ids] += dt * v
        # attitude: q <- q * exp(w dt / 2) (body-frame rate), then renormalize
        angle = np.sqrt(np.einsum("ij,ij->i", w, w)) * dt
        half = 0.5 * angle
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(angle > 1e-15, np.sin(half) / np.where(angle > 1e-15, angle, 1.0), 0.5) * dt
        dx, dy, dz = w[:, 0] * k, w[:, 1] * k, w[:, 2] * k
        dw = np.cos(half)
        nq = np.stack(
            [
                qw * dw - qx * dx - qy * dy - qz * dz,
                qw * dx + qx * dw + qy * dz - qz * dy,
                qw * dy - qx * dz + qy * dw + qz * dx,
                qw * dz + qx * dy - qy * dx + qz * dw,
            ],
            axis=1,
        )
        self.quaternion[ids] = nq / np.sqrt(np.einsum("ij,ij->i", nq, nq))[:, None]
        self.time[ids] += dt
