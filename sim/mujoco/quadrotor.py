"""A MuJoCo Crazyflie 2.x as an :class:`rcs.devices.Quadrotor`, with emulated onboard controllers.

Command interfaces (validated by :class:`rcs.devices.Quadrotor`):

- **motor thrusts** (normalized, [0, 1]): written straight to ``data.ctrl``; the first-order motor lag, thrust
  and rotor drag torque are modelled by the MJCF actuators, so :meth:`MujocoQuadrotor.advance` is a single
  ``mj_step(model, data, nstep)`` call with no Python per physics step.
- **motor speeds** (normalized RPM, [0, 1]; thrust ``w**2 * max_thrust``): the first-order lag acts on the rotor
  speed, as in most learned-flight simulators. With the command held over an ``advance`` the lag has a closed
  form, so the speeds of all its physics steps are computed in one numpy expression and written to the actuators
  step by step (their own thrust filter then does nothing); one short Python iteration per physics step, so
  slower than the thrust mode.
- **collective thrust + body rates** and **position**: like the real firmware, an onboard loop runs at
  ``onboard_rate_hz`` (default 500 Hz) in Python: :class:`rcs.flight.controllers.RateController` and
  :class:`rcs.flight.controllers.Mixer` (and, in position mode, :class:`rcs.flight.controllers.PositionController`
  first), with physics sub-stepped between onboard ticks. Onboard ticks are aligned to the physics step count,
  so ``advance`` calls that are not multiples of the onboard period keep the same tick schedule.

Motors spin only while armed: disarmed, every motor command is 0 (the rotors spin down with the motor lag).
Commands sent while disarmed are validated and then dropped; after :meth:`~rcs.devices.Quadrotor.arm` the
vehicle idles (all motors 0) until the next command. A collective-thrust setpoint of exactly 0 stops the
motors and resets the rate controller (as in the Crazyflie firmware).

Frames (REP-103): world ENU, body FLU; :class:`rcs.types.QuadrotorState` holds the linear velocity in the world
frame and the angular velocity in the body frame.

When the integration breaks down (MuJoCo's instability warnings, a non-finite state, or the body turning more
than :data:`MAX_ROTATION_PER_STEP` per physics step) :meth:`MujocoQuadrotor.advance` raises
:class:`rcs.errors.SimulationDivergedError` instead of returning meaningless numbers. It checks once per call,
after its last physics step and so before any :meth:`~rcs.devices.Quadrotor.read` of the new state: MuJoCo's
warning counters accumulate until checked, so nothing in between is missed.

Parameters and domain randomization
-----------------------------------
:data:`CRAZYFLIE_SPEC` (set A, Learning-to-Fly) is the single source of truth; the MJCF is checked against it
when loaded. The spread across the three published parameter sets (``shared/docs/robot-facts.md``) bounds the
randomization ranges, expressed as multiplicative scales of set A:

=====================  ====================  =================  =================  ============================
quantity               set A (nominal)       set B              set C              scale range (key)
=====================  ====================  =================  =================  ============================
mass                   0.027 kg              0.027              0.027              (1, 1) (``mass``)
inertia xx, yy, zz     3.85e-6, 5.97e-6      1.4e-5, 2.17e-5    2.4e-5, 3.23e-5    1 .. 6.2 (``extra["inertia"]``)
max thrust per rotor   0.149 N               0.149 (T/W 2.25)   0.0875 (0.35 / 4)  0.59 .. 1 (``motor_constant``)
drag torque / thrust   0.0251 m (from B)     0.0251             n/a                scaled with ``motor_constant``
motor time constant    0.15 s                none (0)           none (0)           0 .. 1 (``motor_time_constant``)
=====================  ====================  =================  =================  ============================

:data:`CRAZYFLIE_RANDOMIZATION` is that range with two practical cuts: a scale must be > 0, so the motor lag
goes down to 0.1 x (15 ms) rather than 0; and the thrust scale stops at 0.75 x, because the baseline
position controller's vertical integral (limit 4 m/s^2, a thrust scale of up to 1.41) holds altitude only down
to about 0.71 x (measured: 0.72 x holds 1 m, 0.70 x sags 1.5 cm, set C's 0.59 x sags ~20 cm). Over the whole
box (inertia 1..6.2 x, thrust 0.75..1 x, lag 0.1..1 x) the default onboard and baseline controllers were
checked to stay stable and to track the figure eight within a few mm once the integrators have settled.
``extra["inertia"]`` (a key only this backend reads) scales every body's inertia on top of ``mass``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from rcs.devices import Quadrotor
from rcs.errors import ActionError, ConfigError, SimulationDivergedError
from rcs.flight.controllers import Mixer, PositionController, RateController
from rcs.spec import DomainRandomization, QuadrotorSpec
from rcs.types import QuadrotorState
from rcs.validation import LimitPolicy, as_vector, enforce_bounds
from sim.mujoco.simulation import MujocoSimulation, now

log = logging.getLogger(__name__)

# -- Crazyflie 2.x, parameter set A (Learning-to-Fly); drag ratio from set B ------------------------------
_THRUST_COEFFICIENT = 3.16e-10  # N / RPM^2
_MAX_RPM = 21702.0
_DRAG_COEFFICIENT = 7.94e-12  # N m / RPM^2 (set B)
_ARM = 0.028  # m, rotor offset along body x and y (X layout)

CRAZYFLIE_SPEC = QuadrotorSpec(
    name="crazyflie",
    mass=0.027,
    inertia=(3.85e-6, 3.85e-6, 5.97e-6),
    # Crazyflie firmware order and spin (seen from above): m1 front right CCW, m2 back right CW, m3 back left CCW,
    # m4 front left CW. The firmware's mixer (power_distribution_quadrotor.c) gives m1 and m3 minus the yaw term:
    # speeding them up yaws the vehicle clockwise, which is the reaction torque of counter-clockwise rotors.
    rotor_positions=((_ARM, -_ARM), (-_ARM, -_ARM), (-_ARM, _ARM), (_ARM, _ARM)),
    rotor_directions=(1, -1, 1, -1),
    max_thrust=_THRUST_COEFFICIENT * _MAX_RPM**2,  # 0.1488 N
    torque_to_thrust=_DRAG_COEFFICIENT / _THRUST_COEFFICIENT,  # 0.02513 m
    motor_time_constant=0.15,
    max_body_rate=(math.radians(2000.0), math.radians(2000.0), math.radians(1000.0)),
    control_rate_hz=100.0,
)
"""Crazyflie 2.x, set A: the single source of truth for the MJCF ``sim/models/crazyflie/crazyflie.xml``."""

CRAZYFLIE_RANDOMIZATION = DomainRandomization(
    motor_constant=(0.75, 1.0),
    motor_time_constant=(0.1, 1.0),
    extra={"inertia": (1.0, 6.2)},
)
"""The spread across the published Crazyflie parameter sets, as randomization scales (see module docs)."""

MOTOR_ACTUATORS = ("m1", "m2", "m3", "m4")
"""MJCF actuator (and rotor site) names, in the spec's rotor order."""

DEFAULT_PHYSICS_DT = 0.001
"""Physics step (s): 1 kHz, two physics steps per 500 Hz onboard tick."""

MAX_ROTATION_PER_STEP = 0.5
"""rad: the most the body may turn in one physics step. The rotor thrust directions are sampled once per step, so
beyond this the trajectory no longer means anything (at 1 ms: 500 rad/s, far beyond any real multirotor; an
unbounded motor command can spin the drag-free model up to it)."""


class QuadrotorSimulation(MujocoSimulation):
    """:class:`MujocoSimulation` plus the motor parameters of :class:`rcs.spec.DomainRandomization`.

    On top of ``mass`` and ``friction`` (handled by the base class) each reset applies, to the motor
    actuators only: ``motor_constant`` to ``gainprm[0]`` (thrust per unit command; the rotor drag torque is
    ``gear[5]`` times the same force, so both scale together) and ``motor_time_constant`` to ``dynprm[0]``
    (the filter time constant); and ``extra["inertia"]``, if given, to every body's inertia.

    Attributes:
        motor_speed_decay: (rotors,) ``exp(-physics_dt / tau)`` of each rotor's time constant ``tau``: the
            factor by which a rotor's speed error shrinks per physics step in the speed mode. Recomputed with
            the time constants at each reset (the only place they change; the physics step is fixed at load).

    Args:
        model_path: MJCF (absolute, or relative to ``sim/models``).
        motor_actuators: names of the rotor actuators.
        physics_dt: physics step (s).
        randomization: ranges drawn at each :meth:`reset`.
        keyframe: keyframe to reset to.
    """

    def __init__(
        self,
        model_path: str | Path,
        motor_actuators: tuple[str, ...],
        physics_dt: float | None = None,
        randomization: DomainRandomization | None = None,
        keyframe: str | None = "home",
    ) -> None:
        self._motor_names = tuple(motor_actuators)  # needed by _apply_randomization during super().__init__
        super().__init__(model_path, physics_dt=physics_dt, randomization=randomization, keyframe=keyframe)

    @property
    def motor_ids(self) -> np.ndarray:
        """Actuator ids of the rotors, in command order."""
        return np.array([self.actuator_id(n) for n in self._motor_names], dtype=int)

    def _apply_randomization(self, rng: np.random.Generator | None) -> None:
        # the base class captured every nominal it restores before its first reset; the filter time constants
        # are captured here, on that first call, before anything modifies them
        self._nominal.setdefault("actuator_dynprm", self.model.actuator_dynprm.copy())
        super()._apply_randomization(rng)
        m, nom, scales = self.model, self._nominal, self.scales
        ids = self.motor_ids
        m.actuator_gainprm[ids, 0] = nom["actuator_gainprm"][ids, 0] * scales["motor_constant"]
        m.actuator_dynprm[:] = nom["actuator_dynprm"]
        m.actuator_dynprm[ids, 0] = nom["actuator_dynprm"][ids, 0] * scales["motor_time_constant"]
        if scales.get("inertia", 1.0) != 1.0:
            m.body_inertia[:] *= scales["inertia"]
            mujoco.mj_setConst(m, self.data)  # refresh the cached dof_M0 of the free body (see the base class)
        tau = m.actuator_dynprm[ids, 0]
        self.motor_speed_decay: np.ndarray = np.exp(-m.opt.timestep / np.maximum(tau, 1e-9))  # tau 0: no lag


def _as_index(ids: np.ndarray) -> slice | np.ndarray:
    """``ids`` as a slice when they are consecutive and ascending (indexing then gives a view), else unchanged."""
    if len(ids) and np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids))):
        return slice(int(ids[0]), int(ids[0]) + len(ids))
    return ids


def check_model_matches_spec(model: mujoco.MjModel, spec: QuadrotorSpec, body: str, motors: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` naming the first field where an (unrandomized) MJCF model disagrees with ``spec``.

    Checks: body mass and principal inertia (the body frame must be the principal, centre-of-mass frame),
    rotor site positions (in the body x-y plane through the centre of mass, frames aligned with the body),
    actuator gain (= max thrust), gear (thrust along +z, drag torque ``-direction * torque_to_thrust``),
    filter dynamics with the motor time constant, and control range [0, 1].
    """
    m = model

    def ident(obj: mujoco.mjtObj, name: str, kind: str) -> int:
        i = mujoco.mj_name2id(m, obj, name)
        if i < 0:
            raise ConfigError(f"MJCF has no {kind} {name!r}")
        return i

    def close(name: str, got: object, want: object, rtol: float = 1e-6, atol: float = 1e-12) -> None:
        if not np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=atol):
            raise ConfigError(
                f"MJCF {name}={np.asarray(got).tolist()} disagrees with spec {spec.name!r}: {np.asarray(want).tolist()}"
            )

    bid = ident(mujoco.mjtObj.mjOBJ_BODY, body, "body")
    close(f"body {body!r} mass", m.body_mass[bid], spec.mass)
    close(f"body {body!r} inertia", m.body_inertia[bid], spec.inertia)
    close(f"body {body!r} inertial frame quaternion", np.abs(m.body_iquat[bid]), [1.0, 0.0, 0.0, 0.0], atol=1e-9)
    close(f"body {body!r} centre of mass", m.body_ipos[bid], np.zeros(3), atol=1e-9)
    if len(motors) != spec.num_rotors:
        raise ConfigError(f"{len(motors)} motor actuators for {spec.num_rotors} rotors of {spec.name!r}")
    for i, name in enumerate(motors):
        aid = ident(mujoco.mjtObj.mjOBJ_ACTUATOR, name, "actuator")
        if int(m.actuator_trntype[aid]) != int(mujoco.mjtTrn.mjTRN_SITE):
            raise ConfigError(f"MJCF actuator {name!r} must act on a site")
        sid = int(m.actuator_trnid[aid, 0])
        if m.site_bodyid[sid] != bid:
            raise ConfigError(f"MJCF actuator {name!r} acts on a site outside body {body!r}")
        x, y = spec.rotor_positions[i]
        close(f"rotor site {name!r} position", m.site_pos[sid], [x, y, 0.0], atol=1e-9)
        close(f"rotor site {name!r} quaternion", np.abs(m.site_quat[sid]), [1.0, 0.0, 0.0, 0.0], atol=1e-9)
        close(f"actuator {name!r} gainprm[0] (max thrust)", m.actuator_gainprm[aid, 0], spec.max_thrust)
        gear = [0.0, 0.0, 1.0, 0.0, 0.0, -spec.rotor_directions[i] * spec.torque_to_thrust]
        close(f"actuator {name!r} gear", m.actuator_gear[aid], gear)
        close(f"actuator {name!r} ctrlrange", m.actuator_ctrlrange[aid], [0.0, 1.0])
        if int(m.actuator_dyntype[aid]) not in (int(mujoco.mjtDyn.mjDYN_FILTER), int(mujoco.mjtDyn.mjDYN_FILTEREXACT)):
            raise ConfigError(f"MJCF actuator {name!r} must have dyntype filter or filterexact (motor lag)")
        close(f"actuator {name!r} dynprm[0] (motor time constant)", m.actuator_dynprm[aid, 0], spec.motor_time_constant)


class MujocoQuadrotor(Quadrotor):
    """A simulated multirotor (default: Crazyflie 2.x) implementing :class:`rcs.devices.Quadrotor`,
    :class:`rcs.devices.Simulated` and :class:`rcs.devices.VehicleStateControl`.

    Args:
        spec: the vehicle; the MJCF must agree with it (checked at construction).
        model_path: scene MJCF (relative to ``sim/models``).
        physics_dt: physics step (s; ``None``: the MJCF's ``<option timestep>``); the onboard period must be a
            whole number of physics steps.
        randomization: domain randomization drawn at each :meth:`reset` with a seed.
        limit_policy: ``"raise"`` (default) or ``"clip"`` for out-of-limit commands.
        onboard_rate_hz: rate (Hz) of the emulated onboard rate and position loops.
        body: the vehicle's MJCF body (it must carry the free joint).
        motor_actuators: rotor actuator names in the spec's rotor order.
        rate_controller: onboard rate loop (default :class:`RateController` of ``spec``).
        position_controller: onboard position loop (default :class:`PositionController` of ``spec``).

    Attributes:
        simulation: the :class:`QuadrotorSimulation` (model, data, randomization scales).
        camera_names: the scene's camera names.
        mixer: onboard control allocation.
    """

    def __init__(
        self,
        spec: QuadrotorSpec = CRAZYFLIE_SPEC,
        model_path: str | Path = "crazyflie/scene.xml",
        physics_dt: float | None = DEFAULT_PHYSICS_DT,
        randomization: DomainRandomization | None = None,
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        onboard_rate_hz: float = 500.0,
        body: str = "crazyflie",
        motor_actuators: tuple[str, ...] = MOTOR_ACTUATORS,
        rate_controller: RateController | None = None,
        position_controller: PositionController | None = None,
    ) -> None:
        super().__init__(spec, limit_policy)
        self.simulation = QuadrotorSimulation(
            model_path, motor_actuators, physics_dt=physics_dt, randomization=randomization
        )
        sim = self.simulation
        check_model_matches_spec(sim.model, spec, body, motor_actuators)  # model is nominal until a seeded reset
        self.camera_names: tuple[str, ...] = tuple(sim.model.camera(i).name for i in range(sim.model.ncam))
        jid = int(sim.model.body_jntadr[sim.body_id(body)])
        if jid < 0 or int(sim.model.jnt_type[jid]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise ConfigError(f"body {body!r} must carry a free joint")
        self._qpos = int(sim.model.jnt_qposadr[jid])
        self._qvel = int(sim.model.jnt_dofadr[jid])
        self._motor_ids = sim.motor_ids
        self._motor_act = sim.model.actuator_actadr[self._motor_ids].copy()
        if (self._motor_act < 0).any():
            raise ConfigError("motor actuators need activation (dyntype filter/filterexact)")
        # the same indices as slices where they are contiguous (they are in the Crazyflie): a slice reads a view
        # and writes in place, about 3x cheaper than fancy indexing, on every command, read and speed-mode step
        self._motor_sel = _as_index(self._motor_ids)
        self._act_sel = _as_index(self._motor_act)
        qv = self._qvel
        self._body_rate = sim.data.qvel[qv + 3 : qv + 6]  # live view (MjData's buffers never move)
        self._max_rate_sq = (MAX_ROTATION_PER_STEP / sim.timestep) ** 2  # (rad/s)^2, the check without a sqrt

        if not onboard_rate_hz > 0:
            raise ConfigError(f"onboard_rate_hz={onboard_rate_hz} must be > 0")
        period = 1.0 / onboard_rate_hz
        k = int(round(period / sim.timestep))
        if k < 1 or abs(k * sim.timestep - period) > 1e-9 * max(1.0, period):
            raise ConfigError(
                f"onboard_rate_hz={onboard_rate_hz}: its period {period:.6g} s must be a whole number of "
                f"physics steps (physics_dt={sim.timestep:.6g} s)"
            )
        self.onboard_rate_hz = float(onboard_rate_hz)
        self._steps_per_tick = k
        self._onboard_dt = k * sim.timestep

        self.mixer = Mixer(spec)
        self.rate_controller = rate_controller or RateController(spec)
        self.position_controller = position_controller or PositionController(spec)

        self._armed = False
        self._mode = "idle"  # idle | motors | rpms | thrust_rates | position
        self._thrust_sp = 0.0
        self._rates_sp = np.zeros(3)
        self._rpm_sp = np.zeros(spec.num_rotors)
        self._position_sp = np.zeros(3)
        self._yaw_sp = 0.0
        self._step_count = 0
        self._apply_idle()

    # -- Simulated ------------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Simulated time since the last reset (s)."""
        return self.simulation.time

    @property
    def onboard_dt(self) -> float:
        """Period of the emulated onboard loops (s)."""
        return self._onboard_dt

    def reset(self, seed: int | None = None) -> None:
        """Return to the keyframe "home" (on the ground, motors and lag state at 0) and redraw the
        randomization from ``seed``. The armed flag is kept; setpoints are cleared (motors idle at 0)."""
        self.simulation.reset(seed)
        self._step_count = 0
        self._clear_setpoints()

    def advance(self, dt: float) -> None:
        """Integrate ``dt`` s (rounded to whole physics steps) with the current commands.

        Motor-thrust mode (or disarmed/idle): one :meth:`MujocoSimulation.step` call. Thrust+rates and position modes: the
        onboard loop runs every ``onboard_dt`` of simulated time, physics sub-stepped in between.
        """
        sim = self.simulation
        n = sim.steps_for(dt)
        if not self._armed or self._mode in ("idle", "motors"):
            sim.step(n, check=False)
            self._step_count += n
        elif self._mode == "rpms":
            self._spin_rotors(n)
            self._step_count += n
        else:
            k = self._steps_per_tick
            while n > 0:
                phase = self._step_count % k
                if phase == 0:
                    self._onboard_tick()
                s = min(n, k - phase)
                sim.step(s, check=False)
                self._step_count += s
                n -= s
        # once per call, before anything can read the new state (see the module docs)
        sim.check_diverged()
        self._check_resolvable()

    def _check_resolvable(self) -> None:
        """Raise :class:`SimulationDivergedError` when the body turns more than :data:`MAX_ROTATION_PER_STEP` per
        physics step (MuJoCo's own instability checks are :meth:`MujocoSimulation.check_diverged`). Checked on the
        state :meth:`advance` leaves, the one a read returns: it catches the unbounded spin-up it guards against
        (the rate keeps growing), not a transient that is back under the limit by the end of the call."""
        w = self._body_rate
        if w.dot(w) > self._max_rate_sq:
            sim = self.simulation
            rate = math.sqrt(w.dot(w))
            raise SimulationDivergedError(
                f"{self.spec.name}: simulation left its valid range at t={sim.time:.3f} s: body rate {rate:.0f} rad/s "
                f"turns the body {rate * sim.timestep:.2f} rad per {sim.timestep * 1e3:g} ms physics step (limit "
                f"{MAX_ROTATION_PER_STEP} rad); reset it"
            )

    # -- VehicleStateControl (simulation only) -----------------------------------------------------------
    def set_vehicle_state(
        self,
        position: np.ndarray,
        quaternion: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        motor_thrusts: np.ndarray | None = None,
    ) -> None:
        """Place the vehicle: position (m, world), quaternion (w, x, y, z, world from body), linear velocity
        (m/s, world), angular velocity (rad/s, body), and rotor thrusts (N, each in [0, current max thrust];
        ``None``: motors stopped) already spun up, i.e. the motor-lag state. The motor commands and the onboard
        controllers' memory are cleared (motors idle until the next command); time is not reset.

        Raises:
            ActionError: naming the field, for a wrong shape, a non-finite value, a non-unit quaternion or a
                thrust outside the rotor's range.
        """
        p = as_vector("position", position, 3)
        q = as_vector("quaternion", quaternion, 4)
        norm = float(np.linalg.norm(q))
        if not 0.9 < norm < 1.1:
            raise ActionError("quaternion", q.tolist(), "a unit quaternion (|q| within 10% of 1)")
        v = as_vector("linear_velocity", linear_velocity, 3)
        w = as_vector("angular_velocity", angular_velocity, 3)
        m, d = self.simulation.model, self.simulation.data
        gain = m.actuator_gainprm[self._motor_ids, 0]
        if motor_thrusts is None:
            act = np.zeros(self.spec.num_rotors)
        else:
            f = as_vector("motor_thrusts", motor_thrusts, self.spec.num_rotors)
            f = enforce_bounds("motor_thrusts", f, 0.0, gain, LimitPolicy.RAISE, unit="N")
            act = f / gain
        qp, qv = self._qpos, self._qvel
        d.qpos[qp : qp + 3] = p
        d.qpos[qp + 3 : qp + 7] = q / norm
        d.qvel[qv : qv + 3] = v
        d.qvel[qv + 3 : qv + 6] = w
        d.act[self._motor_act] = act
        self._clear_setpoints()
        mujoco.mj_forward(m, d)

    # -- Quadrotor hooks --------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._armed = False
        self._clear_setpoints()

    def _close(self) -> None:
        self._armed = False
        self._clear_setpoints()
        self.simulation.close()

    def _read(self) -> QuadrotorState:
        d = self.simulation.data
        qp, qv = self._qpos, self._qvel
        quat = d.qpos[qp + 3 : qp + 7].copy()
        quat /= math.sqrt(quat.dot(quat))  # what np.linalg.norm computes, without its dispatch (~1 us)
        if quat[0] < 0:
            quat = -quat
        return QuadrotorState(
            timestamp=now(),
            position=d.qpos[qp : qp + 3].copy(),
            quaternion=quat,
            linear_velocity=d.qvel[qv : qv + 3].copy(),  # free joint: world frame
            angular_velocity=d.qvel[qv + 3 : qv + 6].copy(),  # free joint: body frame
            motor_thrusts=self.motor_thrusts(),
            armed=self._armed,
        )

    def motor_thrusts(self) -> np.ndarray:
        """(n,) current (lagged) rotor thrusts (N): actuator gain times filter activation."""
        m, d = self.simulation.model, self.simulation.data
        return m.actuator_gainprm[self._motor_sel, 0] * d.act[self._act_sel]

    def _set_armed(self, armed: bool) -> None:
        if armed != self._armed:
            log.debug("%s %s", self.spec.name, "armed" if armed else "disarmed")
        self._armed = bool(armed)
        self._clear_setpoints()

    def _write_motor_thrusts(self, u: np.ndarray) -> None:
        if not self._armed:
            log.debug("motor command ignored: disarmed")
            return
        self._mode = "motors"
        self.simulation.data.ctrl[self._motor_sel] = u

    def _write_motor_rpms(self, w: np.ndarray) -> None:
        if not self._armed:
            log.debug("motor speed command ignored: disarmed")
            return
        self._mode = "rpms"
        self._rpm_sp = np.array(w, dtype=np.float64)

    def _spin_rotors(self, n: int) -> None:
        """Speed mode, ``n`` physics steps: the rotor speed ``w`` (normalized; thrust ``w**2 * gain``) lags its
        command ``c`` with the motor time constant ``tau``, integrated exactly. With ``c`` held, after ``k`` steps
        of ``h`` seconds

            w_k = c + (w_0 - c) * d**k,    d = exp(-h / tau)  (:attr:`QuadrotorSimulation.motor_speed_decay`),

        the same recursion ``w_k = c + (w_(k-1) - c) * d`` the speed obeys step by step, so all ``n`` speeds
        come from one numpy expression. ``w_0`` is the square root of the actuator's thrust state. Step ``k``
        writes its end thrust ``w_k**2`` to both the actuators' control and state, which makes MuJoCo's own
        thrust filter a no-op for the step, so the lag acts on speed, not on thrust."""
        sim = self.simulation
        c = self._rpm_sp
        w0 = np.sqrt(np.maximum(sim.data.act[self._act_sel], 0.0))
        k = np.arange(1.0, n + 1.0)[:, None]
        w = c + (w0 - c) * sim.motor_speed_decay**k  # (n, rotors)
        sim.step_controls(w * w, self._motor_sel, self._act_sel, check=False)

    def _write_thrust_rates(self, thrust: float, rates: np.ndarray) -> None:
        if not self._armed:
            log.debug("thrust/rates command ignored: disarmed")
            return
        if self._mode != "thrust_rates":
            self.rate_controller.reset()
            self._mode = "thrust_rates"
        self._thrust_sp = float(thrust)
        self._rates_sp = np.array(rates, dtype=np.float64)

    def _write_position(self, position: np.ndarray, yaw: float) -> None:
        if not self._armed:
            log.debug("position command ignored: disarmed")
            return
        if self._mode != "position":
            self.rate_controller.reset()
            self.position_controller.reset()
            self._mode = "position"
        self._position_sp = np.array(position, dtype=np.float64)
        self._yaw_sp = float(yaw)

    # -- onboard emulation ----------------------------------------------------------------------------
    def _clear_setpoints(self) -> None:
        self._mode = "idle"
        self._thrust_sp = 0.0
        self._rates_sp = np.zeros(3)
        self.rate_controller.reset()
        self.position_controller.reset()
        self._apply_idle()

    def _apply_idle(self) -> None:
        self.simulation.data.ctrl[self._motor_sel] = 0.0

    def _onboard_tick(self) -> None:
        """One tick of the emulated firmware: (position loop ->) rate loop -> mixer -> motor commands."""
        d = self.simulation.data
        qp, qv = self._qpos, self._qvel
        omega = d.qvel[qv + 3 : qv + 6]
        dt = self._onboard_dt
        if self._mode == "position":
            cmd = self.position_controller.update(
                d.qpos[qp : qp + 3],
                d.qvel[qv : qv + 3],
                d.qpos[qp + 3 : qp + 7],
                dt,
                self._position_sp,
                yaw_ref=self._yaw_sp,
            )
            thrust, rates = cmd.collective_thrust, cmd.body_rates
        else:
            thrust, rates = self._thrust_sp, self._rates_sp
        if thrust <= 0.0:
            self.rate_controller.reset()
            d.ctrl[self._motor_sel] = 0.0
            return
        torques = self.rate_controller.update(rates, omega, dt)
        d.ctrl[self._motor_sel] = self.mixer.allocate(thrust, torques).normalized


def make_crazyflie(
    physics_dt: float = DEFAULT_PHYSICS_DT,
    randomization: DomainRandomization | None = None,
    limit_policy: LimitPolicy | str = "raise",
    onboard_rate_hz: float = 500.0,
    **config: Any,
) -> MujocoQuadrotor:
    """Registry factory ``"sim/crazyflie"``: a simulated Crazyflie 2.x in open space (``crazyflie/scene.xml``).

    Args:
        physics_dt: physics step (s), default 0.001.
        randomization: domain randomization drawn at each seeded reset (e.g. :data:`CRAZYFLIE_RANDOMIZATION`).
        limit_policy: ``"raise"`` or ``"clip"`` for out-of-limit commands.
        onboard_rate_hz: emulated onboard rate/position loop rate (Hz), default 500.
        **config: further :class:`MujocoQuadrotor` keyword arguments (``model_path``,
            ``rate_controller``, ``position_controller``).
    """
    return MujocoQuadrotor(
        CRAZYFLIE_SPEC,
        physics_dt=physics_dt,
        randomization=randomization,
        limit_policy=limit_policy,
        onboard_rate_hz=onboard_rate_hz,
        **config,
    )
