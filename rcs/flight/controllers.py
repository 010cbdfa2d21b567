"""Generic multirotor flight control: control allocation, body-rate PID and a position controller.

Pure numpy (no simulator import): the same classes run onboard the simulated vehicle
(:mod:`sim.mujoco.quadrotor`) and can drive a real one through the :class:`rcs.devices.Quadrotor` API.

Conventions (see :mod:`rcs.geometry`): SI units; world frame ENU (x forward, y left, z up); body frame FLU;
quaternions (w, x, y, z) rotating body vectors into the world. Rotor thrust acts along body +z.

The cascade, outermost first::

    PositionController  (position, velocity, acceleration feed-forward, yaw)
        -> collective thrust (N) + body rates (rad/s)      <- the Quadrotor.command_thrust_rates interface
    RateController      (body-rate PID, gains scaled by the spec's inertia)
        -> body torques (N m)
    Mixer               (allocation with saturation: roll/pitch > collective > yaw)
        -> per-rotor thrust (N) and normalized motor commands in [0, 1]  <- Quadrotor.command_motor_thrusts
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rcs.errors import ConfigError
from rcs.geometry import matrix_to_quat, quat_to_matrix
from rcs.spec import QuadrotorSpec

GRAVITY = 9.81
"""Standard gravity (m/s^2) used by the controllers; the MJCF models use the same value."""


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-vector cross product (np.cross costs ~10x more on (3,) arrays, and this runs at 500 Hz)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _norm(a: np.ndarray) -> float:
    return math.sqrt(float(a @ a))


def _vec3(name: str, value: object) -> np.ndarray:
    """A (3,) float array from a scalar (broadcast) or a 3-sequence."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(3, float(arr))
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise ConfigError(f"{name}={value!r} must be a finite scalar or 3-vector")
    return arr.copy()


# ---------------------------------------------------------------------------------------------------
# Mixer
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """Result of :meth:`Mixer.allocate`.

    Attributes:
        thrusts: (n,) per-rotor thrust (N), each in ``[0, spec.max_thrust]``, rotor order of the spec.
        normalized: (n,) ``thrusts / spec.max_thrust`` in [0, 1]: the motor commands.
        collective_thrust: collective thrust the rotors actually produce (N, along body +z).
        torques: (3,) body torques the rotors actually produce (N m, body FLU: roll, pitch, yaw).
        saturated: whether anything was changed to fit the rotor limits.
        roll_pitch_scale: factor in [0, 1] applied to the requested roll/pitch torques.
        yaw_scale: factor in [0, 1] applied to the requested yaw torque.
    """

    thrusts: np.ndarray
    normalized: np.ndarray
    collective_thrust: float
    torques: np.ndarray
    saturated: bool
    roll_pitch_scale: float
    yaw_scale: float


class Mixer:
    """Control allocation for rotors thrusting along body +z (any planar layout, n >= 4).

    The wrench of per-rotor thrusts ``f`` (N) is ``A @ f`` with rows (collective N, roll N m, pitch N m,
    yaw N m) and, for a rotor at body (x_i, y_i) spinning in direction d_i (+1 CCW seen from above),
    column ``(1, y_i, -x_i, -d_i * k)`` where k is ``spec.torque_to_thrust`` (m): a CCW rotor's drag
    torque on the body points along -z.

    :meth:`allocate` inverts this with the pseudo-inverse. If that solution is within the rotor limits
    ``[0, max_thrust]`` it is returned as is (with four rotors the solution is unique, so any wrench the
    rotors can produce is reproduced exactly; with more, the minimum-norm solution is the one tried).
    Otherwise the thrusts are ``P (c, s tau_roll, s tau_pitch, y tau_yaw)`` with ``P`` the pseudo-inverse,
    and the three scalars are chosen lexicographically, each optimum kept while choosing the next:
    (1) the largest roll/pitch scale ``s`` in [0, 1] (roll/pitch direction always kept); (2) the collective
    ``c`` closest to the request (note: this can raise it above a small request to keep attitude authority,
    like PX4's airmode; the onboard controllers command all motors off when the collective setpoint is 0);
    (3) the largest yaw scale ``y`` in [0, 1]. Each stage is a two-variable linear program, solved exactly
    by enumerating the vertices of its feasible polygon (only when saturated; the unsaturated path is a
    matrix product).

    Args:
        spec: the vehicle.
    """

    def __init__(self, spec: QuadrotorSpec) -> None:
        pos = np.asarray(spec.rotor_positions, dtype=np.float64)
        dirs = np.asarray(spec.rotor_directions, dtype=np.float64)
        n = spec.num_rotors
        if n < 4 or pos.shape != (n, 2):
            raise ConfigError(f"quadrotor {spec.name!r}: the mixer needs >= 4 rotors with (x, y) positions")
        self.spec = spec
        self.max_thrust = float(spec.max_thrust)
        self.allocation_matrix = np.vstack([np.ones(n), pos[:, 1], -pos[:, 0], -dirs * spec.torque_to_thrust])
        if np.linalg.matrix_rank(self.allocation_matrix) < 4:
            raise ConfigError(f"quadrotor {spec.name!r}: rotor layout cannot produce an arbitrary wrench")
        pinv = np.linalg.pinv(self.allocation_matrix)
        self._p_collective = pinv[:, 0].copy()
        self._p_roll_pitch = pinv[:, 1:3].copy()
        self._p_yaw = pinv[:, 3].copy()
        if not (self._p_collective > 0).all():
            raise ConfigError(f"quadrotor {spec.name!r}: collective thrust must load every rotor positively")
        # rotor i carries p0_i * (c + g_i): roll/pitch and limits expressed in collective units
        self._g_roll = self._p_roll_pitch[:, 0] / self._p_collective
        self._g_pitch = self._p_roll_pitch[:, 1] / self._p_collective
        self._limit_collective = self.max_thrust / self._p_collective
        self._h_yaw = self._p_yaw / self._p_collective
        ii, jj = np.nonzero(~np.eye(n, dtype=bool))
        self._pair_i, self._pair_j = ii, jj  # ordered rotor pairs i != j for stage 1

    def wrench(self, thrusts: np.ndarray) -> tuple[float, np.ndarray]:
        """Collective thrust (N) and body torques (3,) (N m) produced by per-rotor ``thrusts`` (N)."""
        w = self.allocation_matrix @ np.asarray(thrusts, dtype=np.float64)
        return float(w[0]), w[1:4].copy()

    def thrusts_for(self, collective_thrust: float, torques: np.ndarray) -> np.ndarray:
        """Unconstrained per-rotor thrusts (N) for a wrench; may be negative or above the limit."""
        t = np.asarray(torques, dtype=np.float64)
        return self._p_collective * collective_thrust + self._p_roll_pitch @ t[:2] + self._p_yaw * t[2]

    def allocate(self, collective_thrust: float, torques: np.ndarray) -> Allocation:
        """Per-rotor thrusts within ``[0, max_thrust]`` for a requested collective (N) and torques (N m).

        See the class docstring for the saturation priorities. The result's ``collective_thrust`` and
        ``torques`` are what the rotors actually produce (``wrench`` of ``thrusts``).
        """
        t = np.asarray(torques, dtype=np.float64)
        fmax = self.max_thrust
        req = float(collective_thrust)
        f = self._p_collective * req + self._p_roll_pitch @ t[:2] + self._p_yaw * float(t[2])
        if f.min() >= 0.0 and f.max() <= fmax:
            return Allocation(
                thrusts=f,
                normalized=f / fmax,
                collective_thrust=req,
                torques=t.copy(),
                saturated=False,
                roll_pitch_scale=1.0,
                yaw_scale=1.0,
            )
        s, c, y = self._desaturate(req, float(t[0]), float(t[1]), float(t[2]))
        g = self._g_roll * float(t[0]) + self._g_pitch * float(t[1])
        f = self._p_collective * (c + s * g + y * self._h_yaw * float(t[2]))
        f = np.minimum(np.maximum(f, 0.0), fmax)
        w = self.allocation_matrix @ f
        return Allocation(
            thrusts=f,
            normalized=f / fmax,
            collective_thrust=float(w[0]),
            torques=w[1:4],
            saturated=True,
            roll_pitch_scale=s,
            yaw_scale=y,
        )

    def _desaturate(self, req: float, tx: float, ty: float, tz: float) -> tuple[float, float, float]:
        """Lexicographic (roll/pitch scale, collective, yaw scale) for a request the rotors cannot produce.

        In collective units rotor i carries ``c + s g_i + y h_i`` and must stay within ``[0, L_i]``.
        """
        g = self._g_roll * tx + self._g_pitch * ty
        h = self._h_yaw * tz
        lim = self._limit_collective
        i, j = self._pair_i, self._pair_j
        # (1) max s s.t. some (c, y in [0, 1]) fits: c eliminated -> s (g_j - g_i) + y (h_j - h_i) <= L_j.
        #     s = 1 without yaw (y = 0) is the common case: max_i(-g_i) <= min_j(L_j - g_j)
        if float(np.max(-g)) <= float(np.min(lim - g)):
            s = 1.0
        else:
            a1 = np.empty((len(i) + 4, 2))
            a1[: len(i), 0] = g[j] - g[i]
            a1[: len(i), 1] = h[j] - h[i]
            a1[len(i) :] = _UNIT_BOX
            b1 = np.concatenate([lim[j], _UNIT_BOX_B])
            bounds = _lp2_range(a1, b1, 0)
            s = 0.0 if bounds is None else min(1.0, max(0.0, bounds[1]))
        # (2) collective closest to the request s.t. some y in [0, 1] fits with that s
        sg = s * g
        n = len(h)
        a2 = np.empty((2 * n + 2, 2))
        a2[:n, 0] = -1.0
        a2[:n, 1] = -h
        a2[n : 2 * n, 0] = 1.0
        a2[n : 2 * n, 1] = h
        a2[2 * n :] = _Y_BOX
        b2 = np.concatenate([sg, lim - sg, _Y_BOX_B])
        bounds = _lp2_range(a2, b2, 0)
        if bounds is None:  # numerically empty (cannot happen: y = 0 fits by construction of s)
            return s, float(np.max(-sg)), 0.0
        c_lo, c_hi = bounds
        c = min(max(req, c_lo), c_hi)
        # (3) largest y in [0, 1] with that s and c: lo_i <= y h_i <= hi_i
        base = c + sg
        y = 1.0
        pos = h > 1e-300
        neg = h < -1e-300
        if pos.any():
            y = min(y, float(np.min((lim[pos] - base[pos]) / h[pos])))
        if neg.any():
            y = min(y, float(np.min(base[neg] / -h[neg])))
        return s, c, max(0.0, y)


# unit box rows for the two-variable LPs: stage 1 (s, y) in [0, 1]^2; stage 2 y in [0, 1]
_UNIT_BOX = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
_UNIT_BOX_B = np.array([1.0, 0.0, 1.0, 0.0])
_Y_BOX = np.array([[0.0, 1.0], [0.0, -1.0]])
_Y_BOX_B = np.array([1.0, 0.0])
_PAIRS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _lp2_range(a: np.ndarray, b: np.ndarray, k: int) -> tuple[float, float] | None:
    """(min, max) of ``x[k]`` over the bounded polygon ``a @ x <= b`` (x in R^2); ``None`` if it is empty.

    Exact vertex enumeration: the optimum of a bounded 2-D linear program lies on a vertex, the intersection
    of two constraint lines that satisfies every constraint.
    """
    m = a.shape[0]
    pairs = _PAIRS.get(m)
    if pairs is None:
        pairs = _PAIRS.setdefault(m, np.triu_indices(m, 1))
    p, q = pairs
    ap, aq, bp, bq = a[p], a[q], b[p], b[q]
    det = ap[:, 0] * aq[:, 1] - ap[:, 1] * aq[:, 0]
    ok = np.abs(det) > 1e-300
    det = np.where(ok, det, 1.0)
    x = np.empty((2, len(det)))
    x[0] = (bp * aq[:, 1] - bq * ap[:, 1]) / det
    x[1] = (ap[:, 0] * bq - aq[:, 0] * bp) / det
    tol = 1e-12 * (1.0 + float(np.abs(b).max()))
    feasible = ok & ((a @ x) <= (b[:, None] + tol)).all(axis=0)
    if not feasible.any():
        return None
    xs = x[k][feasible]
    return float(xs.min()), float(xs.max())


# ---------------------------------------------------------------------------------------------------
# Rate controller
# ---------------------------------------------------------------------------------------------------


class RateController:
    """PID on body rates (rad/s, body FLU) producing body torques (N m).

    ``torque = I * (kp * e + ki * integral(e) - kd * d(omega)/dt) + omega x (I omega)`` per axis, with
    ``e = rate_ref - omega``, ``I`` the spec's principal inertia, derivative on the measurement (no kick on
    setpoint steps), an optional first-order low-pass on the derivative and a clamp on the integral.
    Gains are therefore angular-acceleration gains, independent of the vehicle's size.

    Default gains come from a pole placement on the rate loop of a rigid body behind the spec's first-order
    motor lag ``tau``: the closed loop ``tau s^2 + (1 + kd) s + kp = 0`` gets natural frequency
    ``bandwidth`` (rad/s) and damping ``damping``, i.e. ``kp = bandwidth^2 tau`` (1/s) and
    ``kd = 2 damping bandwidth tau - 1``. With ``tau = 0`` the loop is first order: ``kp = bandwidth``,
    ``kd = 0``. The integral gain defaults to ``kp * bandwidth * integral_ratio`` (1/s^2).

    The defaults (and :class:`PositionController`'s attitude gains) were checked, on a discrete 500 Hz model
    and in MuJoCo, to stay stable over the whole Crazyflie randomization box: true inertia 1..6.2 x the spec,
    thrust constant 0.75..1 x, motor time constant 0.015..0.15 s (an 8x spread of rate-loop gain).

    Args:
        spec: vehicle (inertia, motor time constant).
        bandwidth: (3,) or scalar closed-loop natural frequency (rad/s) per axis for the default gains.
        damping: damping ratio for the default gains.
        integral_ratio: default ``ki`` as a fraction of ``kp * bandwidth``.
        kp, ki, kd: explicit per-axis gains (override the defaults).
        integral_limit: (3,) |integral of rate error| cap (rad).
        derivative_cutoff_hz: low-pass cutoff for the derivative term (Hz); ``None``: unfiltered.
    """

    def __init__(
        self,
        spec: QuadrotorSpec,
        bandwidth: npt.ArrayLike = (40.0, 40.0, 20.0),
        damping: float = 1.0,
        integral_ratio: float = 0.05,
        kp: np.ndarray | float | None = None,
        ki: np.ndarray | float | None = None,
        kd: np.ndarray | float | None = None,
        integral_limit: np.ndarray | float = 0.5,
        derivative_cutoff_hz: float | None = None,
    ) -> None:
        self.spec = spec
        self.inertia = np.asarray(spec.inertia, dtype=np.float64)
        wn = _vec3("bandwidth", bandwidth)
        tau = float(spec.motor_time_constant)
        if tau > 0:
            kp0 = wn**2 * tau
            kd0 = np.maximum(0.0, 2.0 * damping * wn * tau - 1.0)
        else:
            kp0 = wn.copy()
            kd0 = np.zeros(3)
        self.kp = kp0 if kp is None else _vec3("kp", kp)
        self.kd = kd0 if kd is None else _vec3("kd", kd)
        self.ki = self.kp * wn * integral_ratio if ki is None else _vec3("ki", ki)
        self.integral_limit = _vec3("integral_limit", integral_limit)
        self.derivative_cutoff_hz = derivative_cutoff_hz
        self.reset()

    def reset(self) -> None:
        """Clear the integral and derivative memory (call on arming, mode switches, resets)."""
        self.integral = np.zeros(3)
        self._last_rate: np.ndarray | None = None
        self._rate_derivative: np.ndarray = np.zeros(3)

    def update(self, rate_ref: np.ndarray, rate: np.ndarray, dt: float) -> np.ndarray:
        """Body torques (3,) (N m) for a rate setpoint and a measured rate (rad/s, body FLU), period ``dt`` (s)."""
        ref = np.asarray(rate_ref, dtype=np.float64)
        w = np.array(rate, dtype=np.float64)
        e = ref - w
        lim = self.integral_limit
        self.integral = np.minimum(np.maximum(self.integral + e * dt, -lim), lim)
        if self._last_rate is None or dt <= 0:
            d = self._rate_derivative * 0.0
        else:
            d = (w - self._last_rate) / dt
            if self.derivative_cutoff_hz is not None:
                alpha = dt / (dt + 1.0 / (2.0 * math.pi * self.derivative_cutoff_hz))
                d = self._rate_derivative + alpha * (d - self._rate_derivative)
        self._rate_derivative = d
        self._last_rate = w
        inertia = self.inertia
        acc = self.kp * e + self.ki * self.integral - self.kd * d
        return inertia * acc + _cross(w, inertia * w)


# ---------------------------------------------------------------------------------------------------
# Position controller
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrustRatesCommand:
    """Output of :class:`PositionController`: a command for :meth:`rcs.devices.Quadrotor.command_thrust_rates`.

    Attributes:
        collective_thrust: N, along body +z, within ``[0, spec.max_collective_thrust]``.
        body_rates: (3,) rad/s, body FLU (roll, pitch, yaw rate), within ``spec.max_body_rate``.
        desired_attitude: (3, 3) rotation matrix (world from body) the controller steers to.
        acceleration_command: (3,) m/s^2, world frame, the acceleration it asks for (gravity excluded, before the
            vertical integral's thrust scale).
    """

    collective_thrust: float
    body_rates: np.ndarray
    desired_attitude: np.ndarray
    acceleration_command: np.ndarray

    @property
    def desired_quaternion(self) -> np.ndarray:
        """(4,) (w, x, y, z) of :attr:`desired_attitude`."""
        return matrix_to_quat(self.desired_attitude)


def _vee_skew(m: np.ndarray) -> np.ndarray:
    return np.array([m[2, 1], m[0, 2], m[1, 0]])


class PositionController:
    """Classical baseline: cascaded position -> velocity PID with a geometric attitude law, outputting
    COLLECTIVE THRUST (N) and BODY RATES (rad/s), the thrust + body-rate interface of the Quadrotor API.

    World frame ENU, body FLU. Per call:

    1. velocity setpoint ``v_sp = v_ref + sat(kp / kv * (p_ref - p))`` (horizontal norm limited to
       ``max_speed_xy``, vertical to ``max_speed_z``; without saturation the P+PD part is plain PD on position
       with gains ``kp``, ``kv``);
    2. acceleration ``a = a_ref + kv * (v_sp - v) + i``, where the integral ``i`` accumulates
       ``ki * (v_sp - v) dt`` (velocity-loop integral, as in the PX4 and Crazyflie cascades: little windup
       during large moves) and is clamped to ``integral_limit`` (m/s^2). Horizontally ``i`` is added (a
       constant force such as wind); vertically it is used as a thrust scale ``1 + i_z / g`` on the whole
       force (a mass or thrust-constant error is multiplicative: scaling only the vertical part would leave
       every horizontal acceleration short by the same factor);
    3. force ``F = m (a + g e_z)``, its tilt limited to ``max_tilt`` and its vertical part kept >= 10% of the
       weight; collective thrust ``T = (1 + i_z / g) F . z_body`` (Mellinger: projection on the current body
       z axis), clipped to ``[0, thrust_margin * spec.max_collective_thrust]``;
    4. desired attitude: body z along ``F``, heading ``yaw_ref`` (Lee et al. 2010);
       attitude error ``e_R = vee(R_d^T R - R^T R_d) / 2``;
    5. body rates ``-k_att * e_R + omega_ff``, where ``omega_ff`` comes from the reference jerk (Mellinger and
       Kumar 2011: ``h = m / T (j - (z_d . j) z_d)``, ``p = -h . y_d``, ``q = h . x_d``) and the yaw rate, then
       clipped to the spec's body-rate limits.

    Args:
        spec: vehicle (mass, limits).
        kp: (3,) position gains (1/s^2).
        kv: (3,) velocity gains (1/s).
        ki: (3,) velocity-error integral gains (1/s^2).
        k_att: (3,) attitude gains (rad/s per rad of attitude error) for roll, pitch, yaw.
        integral_limit: (3,) |integral term| cap (m/s^2); vertically 4 m/s^2 covers a thrust scale 0.59..1.41
            (mass or thrust-constant errors of about 40%).
        max_tilt: rad, largest tilt of the commanded thrust from vertical.
        max_speed_xy, max_speed_z: m/s, limits of the position-error part of the velocity setpoint.
        thrust_margin: fraction of ``spec.max_collective_thrust`` the collective command may use (the rest is
            headroom for attitude control).
        mass: kg used for the thrust computation (default ``spec.mass``).
    """

    def __init__(
        self,
        spec: QuadrotorSpec,
        kp: npt.ArrayLike = (6.0, 6.0, 10.0),
        kv: npt.ArrayLike = (4.0, 4.0, 6.0),
        ki: npt.ArrayLike = (3.0, 3.0, 6.0),
        k_att: npt.ArrayLike = (6.0, 6.0, 3.0),
        integral_limit: npt.ArrayLike = (2.0, 2.0, 4.0),
        max_tilt: float = 0.6,
        max_speed_xy: float = 1.5,
        max_speed_z: float = 1.0,
        thrust_margin: float = 0.9,
        mass: float | None = None,
    ) -> None:
        self.spec = spec
        self.kp = _vec3("kp", kp)
        self.kv = _vec3("kv", kv)
        self.ki = _vec3("ki", ki)
        self.k_att = _vec3("k_att", k_att)
        if (self.kv <= 0).any() or (self.kp < 0).any():
            raise ConfigError(f"kp={self.kp} must be >= 0 and kv={self.kv} > 0")
        self.integral_limit = _vec3("integral_limit", integral_limit)
        if not 0 < max_tilt < math.pi / 2:
            raise ConfigError(f"max_tilt={max_tilt} must be in (0, pi/2) rad")
        self.max_tilt = float(max_tilt)
        self.max_speed_xy = float(max_speed_xy)
        self.max_speed_z = float(max_speed_z)
        if not 0 < thrust_margin <= 1:
            raise ConfigError(f"thrust_margin={thrust_margin} must be in (0, 1]")
        self.max_thrust = thrust_margin * spec.max_collective_thrust
        self.mass = float(spec.mass if mass is None else mass)
        self.max_rates = np.asarray(spec.max_body_rate, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Clear the integral term (m/s^2)."""
        self.integral = np.zeros(3)

    def update(
        self,
        position: np.ndarray,
        velocity: np.ndarray,
        quaternion: np.ndarray,
        dt: float,
        position_ref: np.ndarray,
        velocity_ref: np.ndarray | None = None,
        acceleration_ref: np.ndarray | None = None,
        yaw_ref: float = 0.0,
        jerk_ref: np.ndarray | None = None,
        yaw_rate_ref: float = 0.0,
    ) -> ThrustRatesCommand:
        """One control step.

        Args:
            position: (3,) m, world. velocity: (3,) m/s, world. quaternion: (4,) (w, x, y, z) world from body.
            dt: s since the previous call (integral update).
            position_ref, velocity_ref, acceleration_ref, jerk_ref: (3,) reference and its derivatives
                (m, m/s, m/s^2, m/s^3, world); missing derivatives are zero.
            yaw_ref: rad, heading of body x about world z. yaw_rate_ref: rad/s.

        Returns:
            The thrust + body-rate command (already within the spec's limits).
        """
        p = np.asarray(position, dtype=np.float64)
        v = np.asarray(velocity, dtype=np.float64)
        rot = quat_to_matrix(np.asarray(quaternion, dtype=np.float64))
        p_ref = np.asarray(position_ref, dtype=np.float64)
        v_ref = np.zeros(3) if velocity_ref is None else np.asarray(velocity_ref, dtype=np.float64)
        a_ref = np.zeros(3) if acceleration_ref is None else np.asarray(acceleration_ref, dtype=np.float64)

        # 1-2. position -> velocity setpoint -> acceleration (velocity PI + reference feed-forward)
        e_p = p_ref - p
        v_corr = self.kp / self.kv * e_p
        h = math.hypot(v_corr[0], v_corr[1])
        if h > self.max_speed_xy:
            v_corr[:2] *= self.max_speed_xy / h
        if abs(v_corr[2]) > self.max_speed_z:
            v_corr[2] = math.copysign(self.max_speed_z, v_corr[2])
        e_v = v_ref + v_corr - v
        if dt > 0:
            lim = self.integral_limit
            self.integral = np.minimum(np.maximum(self.integral + self.ki * e_v * dt, -lim), lim)
        acc = a_ref + self.kv * e_v
        acc[0] += self.integral[0]
        acc[1] += self.integral[1]

        # 3. force with tilt and minimum-lift limits; the vertical integral scales the whole force
        m = self.mass
        f = m * acc
        f[2] += m * GRAVITY
        f[2] = max(f[2], 0.1 * m * GRAVITY)
        fh = math.hypot(f[0], f[1])
        fh_max = f[2] * math.tan(self.max_tilt)
        if fh > fh_max:
            f[:2] *= fh_max / fh
        f_norm = _norm(f)
        thrust_scale = 1.0 + float(self.integral[2]) / GRAVITY
        z_b = rot[:, 2]
        thrust = min(max(thrust_scale * float(f @ z_b), 0.0), self.max_thrust)

        # 4. desired attitude (body z along F, heading yaw_ref) and attitude error
        z_d = f / f_norm
        x_c = np.array([math.cos(yaw_ref), math.sin(yaw_ref), 0.0])
        y_d = _cross(z_d, x_c)
        y_d /= _norm(y_d)
        x_d = _cross(y_d, z_d)
        rot_d = np.column_stack((x_d, y_d, z_d))
        e_r = 0.5 * _vee_skew(rot_d.T @ rot - rot.T @ rot_d)

        # 5. body rates: attitude feedback + feed-forward from jerk and yaw rate
        w_ff = np.zeros(3)
        if jerk_ref is not None:
            j = np.asarray(jerk_ref, dtype=np.float64)
            hw = (m / f_norm) * (j - (z_d @ j) * z_d)
            w_ff[0] = -(hw @ y_d)
            w_ff[1] = hw @ x_d
        w_ff[2] = yaw_rate_ref * z_d[2]
        rates = -self.k_att * e_r + rot.T @ (rot_d @ w_ff)
        rates = np.minimum(np.maximum(rates, -self.max_rates), self.max_rates)
        return ThrustRatesCommand(
            collective_thrust=thrust,
            body_rates=rates,
            desired_attitude=rot_d,
            acceleration_command=acc,
        )
