"""The safety filter: the last stage before every robot write, independent of the policy.

Every command that reaches a robot passes through :class:`ArmSafetyFilter` or :class:`QuadrotorSafetyFilter`.
Limits come from the device spec (joint position/velocity/acceleration limits, body-rate and thrust limits);
everything scene-specific (workspace box, geofence, altitude ceiling) comes from a config object, never from
constants in this file. The filter never raises on bad input: NaN/inf or a wrongly shaped command is replaced by
a hold, and every intervention is counted with its reason in :class:`InterventionLog` and logged.

Units: all limits are SI (rad, rad/s, rad/s^2, m, m/s, N); internally the axis limiter works in *per-tick*
units (a velocity limit ``v`` becomes a step of ``v * dt`` per tick, an acceleration limit ``a`` a change of
step of ``a * dt**2`` per tick), so its guarantees hold exactly on the commanded sample sequence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rcs.errors import ConfigError
from rcs.geometry import quat_to_euler_rpy, quat_to_matrix
from rcs.spec import ArmSpec, QuadrotorSpec, WorkspaceBox
from rcs.types import ArmState, QuadrotorState

log = logging.getLogger(__name__)

#: Absolute tolerance (in the limited quantity's unit) used when checking interval feasibility.
_TOL = 1e-12
#: Changes smaller than this (rounding noise, e.g. 1.0000000000000002) are applied but not reported.
_REPORT_TOL = 1e-9


# ---------------------------------------------------------------------------------------------------------
# Commands and intervention bookkeeping
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A command for one of a device's command interfaces.

    Attributes:
        mode: the command interface, e.g. ``"joint_positions"`` (arms: joint targets in rad followed by the
            normalized gripper width if the arm has one), ``"position"`` (quadrotors: x, y, z in m, world
            frame, then yaw in rad), ``"thrust_rates"`` (collective thrust N, then body rates rad/s FLU),
            ``"motor_thrusts"`` (normalized per-rotor thrust), or ``"disarm"`` (no values).
        values: (n,) float64 command vector in the mode's layout.
    """

    mode: str
    values: np.ndarray


@dataclass
class InterventionLog:
    """Counts interventions per reason, over the whole run and per episode, and logs them sparingly.

    The first intervention of each reason *in an episode* is logged at WARNING (with its values), later ones
    at DEBUG only (a 500 Hz loop would otherwise write a line per tick); :meth:`end_episode` then logs one
    line with the episode's counts. Call :meth:`end_episode` at every episode boundary (or
    :meth:`start_episode` before one) so each episode's first intervention of a kind is visible again.

    Attributes:
        name: label used in log messages (e.g. ``"arm safety"``).
        counts: number of ticks on which each reason intervened, since construction.
        episode_counts: the same since the current episode started.
        episodes: episodes ended so far.
        last: message of the most recent intervention.
    """

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    episode_counts: dict[str, int] = field(default_factory=dict)
    episodes: int = 0
    last: str = ""

    def record(self, reason: str, detail: str) -> None:
        """Count one intervention of ``reason`` and log ``detail``."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        n = self.episode_counts.get(reason, 0) + 1
        self.episode_counts[reason] = n
        self.last = f"{reason}: {detail}"
        if n == 1:
            log.warning("%s intervened (%s): %s", self.name, reason, detail)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s intervened (%s, #%d this episode): %s", self.name, reason, n, detail)

    @property
    def total(self) -> int:
        """All interventions of every reason."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, int]:
        """A copy of the per-reason counts since construction."""
        return dict(self.counts)

    def episode_summary(self) -> dict[str, int]:
        """A copy of the per-reason counts of the current episode."""
        return dict(self.episode_counts)

    def end_episode(self, label: str = "") -> dict[str, int]:
        """Log the episode's counts in one line (INFO; WARNING if it had interventions), then start a new one.

        Args:
            label: how the episode is named in the line (e.g. ``"seed 3"``); default: its ordinal.

        Returns:
            The ended episode's per-reason counts.
        """
        counts = self.episode_summary()
        self.episodes += 1
        name = label or f"#{self.episodes}"
        if counts:
            parts = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
            log.warning("%s: episode %s: %d interventions (%s)", self.name, name, sum(counts.values()), parts)
        else:
            log.info("%s: episode %s: no interventions", self.name, name)
        self.episode_counts = {}
        return counts

    def start_episode(self) -> None:
        """Start counting a new episode; an episode that was not ended is ended (and logged) first."""
        if self.episode_counts:
            self.end_episode()
        else:
            self.episode_counts = {}


def format_distinct(*values: float) -> list[str]:
    """``values`` with the fewest significant digits (at least 6) that keep unequal values apart.

    ``1.00037`` against a bound of ``1`` prints as ``1.00037``, not ``1``: a message must show the violation.
    """
    floats = [float(v) for v in values]
    for digits in range(6, 18):
        out = [f"{v:.{digits}g}" for v in floats]
        if all((out[i] == out[j]) == (floats[i] == floats[j]) for i in range(len(out)) for j in range(i)):
            return out
    return [repr(v) for v in floats]


# ---------------------------------------------------------------------------------------------------------
# Pure per-axis math (per-tick units)
# ---------------------------------------------------------------------------------------------------------


def stopping_distance(speed: np.ndarray, max_dv: np.ndarray) -> np.ndarray:
    """Distance covered *after* the current tick when braking from ``speed`` by ``max_dv`` per tick.

    Args:
        speed: (n,) |step| per tick (>= 0).
        max_dv: (n,) largest change of step per tick (> 0, ``inf`` = instantaneous stop).

    Returns:
        (n,) ``sum_{i>=1} max(speed - i * max_dv, 0)``, the exact discrete stopping distance.
    """
    speed = np.abs(speed)
    finite = np.isfinite(max_dv)
    a = np.where(finite, max_dv, 1.0)
    n = np.floor(speed / a)
    dist = n * speed - a * n * (n + 1.0) / 2.0
    return np.where(finite, np.maximum(dist, 0.0), 0.0)


def max_step_within(room: np.ndarray, max_dv: np.ndarray) -> np.ndarray:
    """Largest step ``d >= 0`` such that ``d + stopping_distance(d, max_dv) <= room``.

    Taking at most this step towards a limit that is ``room`` away leaves enough distance to stop before it
    with the acceleration limit. The inverse of a continuous piecewise-linear function, in closed form.
    """
    room = np.maximum(room, 0.0)
    finite = np.isfinite(max_dv) & np.isfinite(room)
    a = np.where(finite, max_dv, 1.0)
    r = np.where(finite, room, 0.0)
    n = np.floor((np.sqrt(1.0 + 8.0 * r / a) - 1.0) / 2.0)
    d = r / (n + 1.0) + a * n / 2.0
    return np.where(finite, np.minimum(d, r), room)


def brake_step(step: np.ndarray, max_dv: np.ndarray) -> np.ndarray:
    """The step after ``step`` when decelerating as hard as allowed (towards zero, never past it)."""
    return np.sign(step) * np.maximum(np.abs(step) - max_dv, 0.0)


def braking_path(q: np.ndarray, step: np.ndarray, max_dv: np.ndarray) -> np.ndarray:
    """Every position commanded after ``q`` when braking from ``step`` as hard as ``max_dv`` allows.

    Args:
        q: (n,) the position commanded this tick.
        step: (n,) this tick's step (``q`` minus the previous command), per tick.
        max_dv: (n,) largest change of step per tick (``inf`` = instantaneous stop).

    Returns:
        (k, n) the positions of the following ``k`` ticks until every axis is at rest (row ``k - 1`` is
        ``q + sign(step) * stopping_distance(step, max_dv)``); ``(0, n)`` when ``q`` is already a rest point.
    """
    step = np.asarray(step, dtype=np.float64)
    speed = np.abs(step)
    with np.errstate(invalid="ignore", divide="ignore"):
        ticks = np.where(np.isfinite(max_dv) & (speed > 0), np.ceil(speed / max_dv), 0.0)
    k = int(ticks.max(initial=0.0))
    if k == 0:
        return np.empty((0, q.shape[0]))
    j = np.arange(1, k + 1, dtype=np.float64)[:, None]
    a = np.where(np.isfinite(max_dv), max_dv, np.inf)
    steps = np.sign(step) * np.maximum(speed - j * a, 0.0)
    moving = np.any(steps != 0.0, axis=1)
    return (q + np.cumsum(steps, axis=0))[moving]


class AxisLimiter:
    """Position box + step (velocity) + change-of-step (acceleration) limiter for n independent axes.

    Guarantees on every committed output, given a start inside the box at rest (or with a feasible speed):
    ``lower <= q <= upper``, ``|q_k - q_{k-1}| <= max_step`` and ``|(q_k - q_{k-1}) - (q_{k-1} - q_{k-2})| <=
    max_dv``. Steps towards a limit are bounded so that braking at ``max_dv`` always stops inside the box,
    which keeps the three constraints jointly feasible on every later tick. If the start state makes them
    infeasible (e.g. measured motion too fast near a limit) position and velocity win and the tick is
    reported as ``acceleration_infeasible``.

    Args:
        names: axis labels for messages.
        lower, upper: (n,) position bounds (``-inf``/``inf`` allowed).
        max_step: (n,) |step| per tick (velocity limit times dt), ``inf`` allowed.
        max_dv: (n,) |change of step| per tick (acceleration limit times dt^2), ``inf`` allowed.
        step_cap: (n,) optional extra per-tick delta cap, reported separately as ``step_cap``.
    """

    _HIGH_REASONS = ("position_limit", "velocity_limit", "step_cap", "braking", "acceleration_limit")

    def __init__(
        self,
        names: tuple[str, ...],
        lower: np.ndarray,
        upper: np.ndarray,
        max_step: np.ndarray,
        max_dv: np.ndarray,
        step_cap: np.ndarray | None = None,
    ) -> None:
        n = len(names)
        self.names = tuple(names)
        self.lower = _vec(lower, n)
        self.upper = _vec(upper, n)
        self.max_step = _vec(max_step, n)
        self.max_dv = _vec(max_dv, n)
        self.step_cap = _vec(np.inf if step_cap is None else step_cap, n)
        if np.any(self.lower > self.upper):
            raise ConfigError(f"axis limiter {self.names}: lower {self.lower} above upper {self.upper}")
        if np.any(self.max_step <= 0) or np.any(self.max_dv <= 0) or np.any(self.step_cap <= 0):
            raise ConfigError(f"axis limiter {self.names}: step and acceleration limits must be > 0")
        self.q = np.zeros(n)
        self.d = np.zeros(n)

    @property
    def size(self) -> int:
        """Number of axes."""
        return len(self.names)

    def reset(self, position: np.ndarray, step: np.ndarray | None = None) -> None:
        """Start from ``position`` moving by ``step`` per tick (default: at rest)."""
        self.q = np.array(position, dtype=np.float64).reshape(self.size)
        self.d = np.zeros(self.size) if step is None else np.array(step, dtype=np.float64).reshape(self.size)

    def interval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """The admissible step interval for the next tick.

        Returns:
            ``(lo, hi, feasible, highs)``: bounds on the next step, a per-axis feasibility mask, and the
            individual upper bounds in the order of ``_HIGH_REASONS`` (lower bounds are their mirror images)
            for attributing interventions.
        """
        room_up = self.upper - self.q
        room_down = self.q - self.lower
        hi_pos, lo_pos = np.maximum(room_up, 0.0), -np.maximum(room_down, 0.0)
        hi_brake = max_step_within(room_up, self.max_dv)
        lo_brake = -max_step_within(room_down, self.max_dv)
        hi_acc, lo_acc = self.d + self.max_dv, self.d - self.max_dv
        hi = np.minimum.reduce([hi_pos, self.max_step, self.step_cap, hi_brake, hi_acc])
        lo = np.maximum.reduce([lo_pos, -self.max_step, -self.step_cap, lo_brake, lo_acc])
        feasible = lo <= hi + _TOL
        return lo, hi, feasible, [hi_pos, self.max_step, self.step_cap, hi_brake, hi_acc]

    def limit(self, target: np.ndarray, report: InterventionLog | None = None, prefix: str = "") -> np.ndarray:
        """The admissible output closest (per axis) to ``target``; does not commit it (see :meth:`commit`)."""
        target = np.asarray(target, dtype=np.float64)
        clipped = np.clip(target, self.lower, self.upper)
        if report is not None and np.any(np.abs(clipped - target) > _REPORT_TOL):
            i = int(np.flatnonzero(np.abs(clipped - target) > _REPORT_TOL)[0])
            value, lower, upper = format_distinct(target[i], self.lower[i], self.upper[i])
            report.record(
                f"{prefix}position_limit", f"{self.names[i]}={value} outside [{lower}, {upper}]; clipped to the bound"
            )
        desired = clipped - self.q
        lo, hi, feasible, highs = self.interval()
        if not feasible.all():
            hard_lo = np.maximum(-np.maximum(self.q - self.lower, 0.0), -np.minimum(self.max_step, self.step_cap))
            hard_hi = np.minimum(np.maximum(self.upper - self.q, 0.0), np.minimum(self.max_step, self.step_cap))
            fallback = np.clip(brake_step(self.d, self.max_dv), hard_lo, hard_hi)
            lo = np.where(feasible, lo, fallback)
            hi = np.where(feasible, np.maximum(lo, hi), fallback)
            if report is not None:
                i = int(np.flatnonzero(~feasible)[0])
                report.record(
                    f"{prefix}acceleration_infeasible",
                    f"{self.names[i]}: cannot respect the acceleration limit and stay within position/velocity "
                    "limits; braking as hard as the hard limits allow",
                )
        step = np.clip(desired, lo, np.maximum(lo, hi))
        if report is not None:
            self._attribute(desired, step, lo, hi, highs, report, prefix)
        return self.q + step

    def _attribute(
        self,
        desired: np.ndarray,
        step: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        highs: list[np.ndarray],
        report: InterventionLog,
        prefix: str,
    ) -> None:
        changed = np.abs(step - desired) > _REPORT_TOL
        if not changed.any():
            return
        stacked = np.stack(highs)
        up = desired > hi
        # Lower bounds are mirror images: -lo_x equals the upper bound of the mirrored axis.
        mirrored = np.stack(
            [
                np.maximum(self.q - self.lower, 0.0),
                self.max_step,
                self.step_cap,
                max_step_within(self.q - self.lower, self.max_dv),
                -(self.d - self.max_dv),
            ]
        )
        which = np.where(up, np.argmin(stacked, axis=0), np.argmin(mirrored, axis=0))
        first: dict[str, int] = {}
        for i in np.flatnonzero(changed):
            first.setdefault(self._HIGH_REASONS[int(which[i])], int(i))
        for reason in sorted(first):
            i = first[reason]
            asked, got, low, high = format_distinct(desired[i], step[i], lo[i], hi[i])
            report.record(
                f"{prefix}{reason}",
                f"{self.names[i]}: step {asked} per tick asked, {got} commanded (allowed [{low}, {high}], "
                f"{_WHY[reason]})",
            )

    def commit(self, output: np.ndarray) -> None:
        """Record ``output`` as the value actually commanded this tick."""
        output = np.asarray(output, dtype=np.float64)
        self.d = output - self.q
        self.q = output.copy()


#: What bounds the step for each reason of :class:`AxisLimiter` (for messages).
_WHY = {
    "position_limit": "position limit",
    "velocity_limit": "velocity limit",
    "step_cap": "per-tick step cap",
    "braking": "room to brake before the position limit",
    "acceleration_limit": "acceleration limit: previous step +/- max change per tick",
}


def _vec(value: object, n: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    if np.isnan(arr).any():
        raise ConfigError(f"limit {arr} contains NaN")
    return arr


#: The arm filter keeps the TCP this far (m) inside the workspace box, so that floating-point rounding in the
#: forward kinematics can never leave it outside the configured box (found by the property test).
WORKSPACE_MARGIN = 1e-6


def box_violation(p: np.ndarray, box: WorkspaceBox, margin: float = 0.0) -> float:
    """Euclidean distance (m) of ``p`` outside ``box`` shrunk by ``margin`` on every side (0 inside)."""
    below = np.asarray(box.lower) + margin - p
    above = p - (np.asarray(box.upper) - margin)
    return float(np.linalg.norm(np.maximum(np.maximum(below, above), 0.0)))


def _hold_reason(values: object, size: int) -> str | None:
    """Why ``values`` cannot be used as a command of ``size`` elements (None if it can)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        return "bad_dtype"
    if arr.shape != (size,):
        return "bad_shape"
    if not np.isfinite(arr).all():
        return "non_finite"
    return None


class SafetyFilter(Protocol):
    """What the control loop needs from a safety filter."""

    log: InterventionLog

    def filter(self, command: Command, state: Any) -> Command:
        """A command that respects every limit, derived from ``command`` (never raises on bad values)."""
        ...

    def reset(self, state: Any) -> None:
        """Start from the measured ``state`` (at rest)."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Arms
# ---------------------------------------------------------------------------------------------------------

TcpPositionFn = Callable[[np.ndarray], np.ndarray]
"""Joint positions (n,) rad -> TCP position (3,) m in the workspace box's frame."""


@dataclass(frozen=True)
class ArmSafetyConfig:
    """Per-robot, per-scene settings of :class:`ArmSafetyFilter`. Joint limits themselves come from the spec.

    Attributes:
        control_dt: control period (s) the per-tick limits are computed for.
        velocity_scale: fraction (0, 1] of the spec's joint velocity limits allowed.
        acceleration_scale: fraction (0, 1] of the spec's joint acceleration limits allowed.
        position_margin: rad (m for prismatic joints) kept clear of the spec's position limits.
        max_joint_step: optional extra per-tick delta cap (rad per tick), scalar or per joint.
        workspace: box the TCP must stay in, or ``None`` for no Cartesian limit.
        tcp_position: forward kinematics to the TCP position in ``workspace.frame`` (required with a
            workspace); e.g. ``lambda q: arm.kinematics.forward(q)[0]`` for a box in the arm's base frame.
        gripper_max_step: optional cap on the change of normalized gripper width per tick.
        workspace_bisection_steps: bisection iterations when the workspace box shortens a step.
        tcp_lipschitz: optional bound on how far the TCP moves per joint motion: ``L`` (m per rad, or per m for
            prismatic joints), a scalar or one value per joint, with ``|tcp(q1) - tcp(q2)| <= sum_i L_i *
            |q1_i - q2_i|`` for all configurations (for a revolute joint: the largest distance between its axis
            and the TCP; see ``MinkKinematics.tcp_lipschitz``). With it, one FK evaluation proves a whole
            joint-space neighbourhood inside the box, which keeps the workspace check within
            ``workspace_fk_budget`` away from the box faces. ``None``: only evaluated points count as proven,
            so a braking path longer than the budget is never proven and the arm is slowed until it fits.
        workspace_fk_budget: most FK evaluations per tick (the check's real-time bound). A step whose braking
            path is not proven inside the box within it is shortened or replaced by braking, which needs no
            FK evaluation (it follows the previous step's proven braking path).
    """

    control_dt: float
    velocity_scale: float = 1.0
    acceleration_scale: float = 1.0
    position_margin: float = 0.0
    max_joint_step: float | tuple[float, ...] | None = None
    workspace: WorkspaceBox | None = None
    tcp_position: TcpPositionFn | None = None
    gripper_max_step: float | None = None
    workspace_bisection_steps: int = 8
    tcp_lipschitz: float | tuple[float, ...] | None = None
    workspace_fk_budget: int = 16

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        for name in ("velocity_scale", "acceleration_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be in (0, 1]")
        if self.position_margin < 0:
            raise ConfigError(f"position_margin={self.position_margin} must be >= 0")
        if self.workspace is not None and self.tcp_position is None:
            raise ConfigError("workspace given without tcp_position (forward kinematics to the box frame)")
        if self.tcp_lipschitz is not None:
            values = np.atleast_1d(np.asarray(self.tcp_lipschitz, dtype=np.float64))
            if values.ndim != 1 or not np.all((values >= 0) & np.isfinite(values)) or not np.any(values > 0):
                raise ConfigError(f"tcp_lipschitz={self.tcp_lipschitz} must be finite, >= 0 and not all 0 (m/rad)")
        if not (isinstance(self.workspace_fk_budget, int) and self.workspace_fk_budget >= 2):
            raise ConfigError(f"workspace_fk_budget={self.workspace_fk_budget} must be an integer >= 2")


class ArmSafetyFilter:
    """Joint-space safety filter for an arm commanded in ``"joint_positions"`` mode.

    Command layout: the spec's joints in order, then the normalized gripper width if the arm has a gripper
    (see :attr:`names`). Each tick:

    1. anything that is not a finite real vector of the right length is replaced by a hold (``bad_shape``,
       ``bad_dtype``, ``non_finite``, ``bad_mode``);
    2. joints: position limits (spec minus margin), velocity limit (spec x scale), optional per-tick step cap
       and acceleration limit (spec x scale), with braking before position limits (:class:`AxisLimiter`);
    3. workspace: unless the TCP at the step and on every tick of the braking that may follow is proven inside
       the box within ``workspace_fk_budget`` FK calls, the step is shortened along the segment towards the
       maximal-braking step (bisection, same budget), which keeps every joint limit satisfied; braking itself
       needs no FK call (it follows the committed step's proven braking path);
    4. gripper: clipped to [0, 1] and optionally rate limited.

    The filter tracks its own last output: call :meth:`reset` with the measured state before use.
    """

    mode = "joint_positions"

    def __init__(self, spec: ArmSpec, config: ArmSafetyConfig) -> None:
        self.spec = spec
        self.config = config
        dt = config.control_dt
        lower = spec.lower + config.position_margin
        upper = spec.upper - config.position_margin
        if np.any(lower >= upper):
            raise ConfigError(f"position_margin={config.position_margin} leaves no range for arm {spec.name!r}")
        cap = None if config.max_joint_step is None else np.asarray(config.max_joint_step, dtype=np.float64)
        self.joints = AxisLimiter(
            spec.joint_names,
            lower,
            upper,
            spec.max_velocity * config.velocity_scale * dt,
            spec.max_acceleration * config.acceleration_scale * dt * dt,
            cap,
        )
        self.has_gripper = spec.gripper is not None
        self.gripper = AxisLimiter(
            ("gripper",),
            np.zeros(1),
            np.ones(1),
            np.array([np.inf if config.gripper_max_step is None else config.gripper_max_step]),
            np.array([np.inf]),
        )
        self.log = InterventionLog(f"arm safety ({spec.name})")
        self._weights: np.ndarray | None = None
        if config.tcp_lipschitz is not None:
            weights = np.atleast_1d(np.asarray(config.tcp_lipschitz, dtype=np.float64))
            if weights.shape not in ((1,), (spec.dof,)):
                raise ConfigError(f"tcp_lipschitz has {weights.size} values; arm {spec.name!r} has {spec.dof} joints")
            self._weights = np.broadcast_to(weights, (spec.dof,)).copy()
        #: m: how far outside the box shrunk by WORKSPACE_MARGIN the committed command and its braking path
        #: are proven to stay at most (0 while inside); new steps must not go further out.
        self._workspace_violation = 0.0
        #: the committed command's braking path, proven within ``_workspace_violation`` (None: not proven).
        self._tail: np.ndarray | None = np.empty((0, spec.dof))
        # Ring buffer of FK certificates (joint position, signed distance), each proving a joint-space ball.
        self._cert_q = np.zeros((_CERTIFICATES, spec.dof))
        self._cert_s = np.zeros(_CERTIFICATES)
        self._cert_n = self._cert_next = 0
        self._fk_left = 0
        self.fk_calls = 0  #: FK evaluations of the workspace check since construction (for benchmarks)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the command vector's elements."""
        return self.spec.joint_names + (("gripper",) if self.has_gripper else ())

    @property
    def size(self) -> int:
        """Length of the command vector."""
        return len(self.names)

    def reset(self, state: ArmState | np.ndarray) -> None:
        """Start from a measured :class:`ArmState` (or a command vector), at rest."""
        values = command_vector_of_arm(state, self.has_gripper) if isinstance(state, ArmState) else np.asarray(state)
        values = np.asarray(values, dtype=np.float64)
        self.joints.reset(values[: self.spec.dof])
        if self.has_gripper:
            g = values[self.spec.dof]
            self.gripper.reset(np.array([0.0 if not np.isfinite(g) else float(np.clip(g, 0.0, 1.0))]))
        cfg = self.config
        self._workspace_violation = 0.0
        self._tail = np.empty((0, self.spec.dof))  # at rest: braking is holding still
        self._cert_n = self._cert_next = 0
        if cfg.workspace is not None and cfg.tcp_position is not None:
            self._workspace_violation = box_violation(
                np.asarray(cfg.tcp_position(self.joints.q)), cfg.workspace, WORKSPACE_MARGIN
            )

    @property
    def last_output(self) -> np.ndarray:
        """The most recently committed command vector."""
        return np.concatenate([self.joints.q, self.gripper.q]) if self.has_gripper else self.joints.q.copy()

    def filter(self, command: Command, state: object = None) -> Command:
        """Return a command within every limit; ``state`` is unused (the filter tracks its own output)."""
        reason = "bad_mode" if command.mode != self.mode else _hold_reason(command.values, self.size)
        if reason is not None:
            self.log.record(reason, f"replaced {command.mode!r} command {_short(command.values)} by a hold")
            values = self.last_output
        else:
            values = np.asarray(command.values, dtype=np.float64)
        dof = self.spec.dof
        q = self.joints.limit(values[:dof], self.log)
        if self.config.workspace is not None:
            q = self._limit_workspace(q)
        self.joints.commit(q)
        if not self.has_gripper:
            return Command(self.mode, q.copy())
        g = self.gripper.limit(values[dof:], self.log, prefix="gripper_")
        self.gripper.commit(g)
        return Command(self.mode, np.concatenate([q, g]))

    # -- workspace --------------------------------------------------------------------------------------
    def _signed_distance(self, q: np.ndarray) -> float:
        """One FK evaluation (counted against the tick's budget): the TCP's signed distance (m) to the box
        shrunk by WORKSPACE_MARGIN (> 0: that far outside, < 0: that far inside every face)."""
        self._fk_left -= 1
        self.fk_calls += 1
        cfg = self.config
        assert cfg.workspace is not None and cfg.tcp_position is not None
        return signed_box_distance(np.asarray(cfg.tcp_position(q)), cfg.workspace, WORKSPACE_MARGIN)

    def _workspace_check(self, q: np.ndarray, allowed: float) -> _WorkspaceCheck:
        """Whether committing ``q`` provably keeps the TCP no further than ``allowed`` (m) outside the box shrunk
        by WORKSPACE_MARGIN, now *and on every tick of the braking that may follow*, within the FK budget.

        Checking only ``q`` and the braking rest point is not enough: the TCP moves on a curve while the joints
        brake, and the curve can bulge out of the box between its ends (e.g. over the top of an arc). Points are
        evaluated adaptively (``q``, the rest point, then the middle of the longest unproven run); with a
        Lipschitz bound every evaluated point (and every certificate kept from earlier evaluations) proves all
        path points within a weighted joint distance of ``allowed - signed distance`` (the TCP moves at most
        that far). When the budget runs out first the step counts as not proven (``exhausted``).
        """
        path = np.vstack([q[None, :], braking_path(q, q - self.joints.q, self.joints.max_dv)])
        covered = np.zeros(len(path), dtype=bool)
        weights = self._weights
        if weights is not None and self._cert_n:
            qc, sc = self._cert_q[: self._cert_n], self._cert_s[: self._cert_n]
            useful = sc < allowed
            if useful.any():
                dist = np.abs(path[:, None, :] - qc[None, useful, :]) @ weights
                covered |= np.any(dist <= allowed - sc[useful], axis=1)
        if self._workspace_violation > 0:
            covered[0] = False  # evaluate q itself, so that the level can come down when moving back inside
        order = [0, len(path) - 1]
        worst, ahead, at_q = -math.inf, 0, None
        while True:
            todo = [i for i in order if not covered[i]]
            if not todo:
                runs = _uncovered_runs(covered)
                if not runs:
                    return _WorkspaceCheck(True, False, path, at_q, worst, ahead)
                start, stop = max(runs, key=lambda r: r[1] - r[0])
                todo = [(start + stop - 1) // 2]
            i = todo[0]
            if self._fk_left <= 0:
                return _WorkspaceCheck(False, True, path, at_q, worst, ahead)
            s = self._signed_distance(path[i])
            covered[i] = True
            if i == 0:
                at_q = s
            if s > worst:
                worst, ahead = s, i
            if s > allowed:
                return _WorkspaceCheck(False, False, path, at_q, worst, ahead)
            if weights is not None:
                covered |= np.abs(path - path[i]) @ weights <= allowed - s
                slot = self._cert_next % _CERTIFICATES
                self._cert_q[slot], self._cert_s[slot] = path[i], s
                self._cert_next += 1
                self._cert_n = min(self._cert_n + 1, _CERTIFICATES)

    def _commit_checked(self, check: _WorkspaceCheck, allowed: float) -> np.ndarray:
        """Make ``check``'s candidate the committed one: its braking path is the proven tail from now on."""
        self._tail = check.path[1:]
        self._workspace_violation = max(check.at_q, 0.0) if check.at_q is not None else allowed
        return check.path[0]

    def _limit_workspace(self, q: np.ndarray) -> np.ndarray:
        """``q`` if it and its whole braking path provably stay in the box, else the largest proven fraction of
        the way from the maximal-braking step towards it, else braking.

        Braking needs no FK call: the committed command's braking path was proven, and braking from it follows
        the rest of that same path (up to rounding, far below WORKSPACE_MARGIN), so the box holds by induction
        from the rest state of :meth:`reset`. Where the braking command is not that path's next point (never
        expected; the joint limiter would have had to cut braking short) it is checked like any candidate.
        """
        self._fk_left = self.config.workspace_fk_budget
        allowed = self._workspace_violation  # no further out than now (0 while the TCP is inside)
        asked = self._workspace_check(q, allowed)
        if asked.ok:
            return self._commit_checked(asked, allowed)
        lo, hi, _, _ = self.joints.interval()
        braking = self.joints.q + np.clip(brake_step(self.joints.d, self.joints.max_dv), lo, np.maximum(lo, hi))
        tail = self._tail
        expected = self.joints.q if tail is None or len(tail) == 0 else tail[0]
        inductive = tail is not None and float(np.max(np.abs(braking - expected), initial=0.0)) <= _BRAKING_TOL
        brake: _WorkspaceCheck | None = None
        if not inductive:
            brake = self._workspace_check(braking, allowed)
        best: _WorkspaceCheck | None = None
        fraction, low, high = 0.0, 0.0, 1.0
        for _ in range(self.config.workspace_bisection_steps):
            if self._fk_left <= 0:
                break
            mid = 0.5 * (low + high)
            check = self._workspace_check(braking + mid * (q - braking), allowed)
            if check.ok:
                low, best, fraction = mid, check, mid
            else:
                high = mid
        box = self.config.workspace
        assert box is not None
        where = "at the commanded step" if asked.ticks_ahead == 0 else f"{asked.ticks_ahead} ticks into braking"
        reason = "workspace"  # a violation found, or none found but the budget ran out before the proof
        if asked.exhausted:
            why = (f"could not prove the TCP stays in the workspace box {list(box.lower)}..{list(box.upper)} "
                   f"({box.frame} frame) over the step's braking path within {self.config.workspace_fk_budget} "
                   "FK evaluations")
        else:
            why = (f"TCP would leave the workspace box {list(box.lower)}..{list(box.upper)} ({box.frame} frame) "
                   f"by {_mm(asked.worst - allowed)} {where}")
        if best is not None:
            self.log.record(reason, f"{why}; step shortened to {fraction:.3g} of the way from braking to the request")
            return self._commit_checked(best, allowed)
        if inductive:
            self.log.record(reason, f"{why}; braking along the proven path")
            self._tail = tail[1:] if tail is not None and len(tail) else tail
            return braking
        assert brake is not None
        if brake.ok:
            self.log.record(reason, f"{why}; braking")
            return self._commit_checked(brake, allowed)
        self.log.record(
            "workspace_unrecoverable",
            f"TCP leaves (or is not proven to stay in) the workspace box {list(box.lower)}..{list(box.upper)} "
            f"({box.frame} frame) even when braking as hard as allowed (worst point found {_mm(brake.worst - allowed)} "
            f"beyond the allowed, {brake.ticks_ahead} ticks ahead); braking anyway",
        )
        self._tail = None
        if brake.at_q is not None:
            self._workspace_violation = max(brake.at_q, allowed, 0.0)
        return braking


#: FK certificates (joint position, signed distance) kept across ticks: each proves a joint-space ball.
_CERTIFICATES = 32
#: rad: a braking command this close to the proven path's next point is that point up to rounding (cumulative
#: sums over long paths differ by ~1e-13 rad; 1e-9 rad moves a TCP by far less than WORKSPACE_MARGIN).
_BRAKING_TOL = 1e-9


@dataclass(frozen=True)
class _WorkspaceCheck:
    """Outcome of :meth:`ArmSafetyFilter._workspace_check` (distances in m, signed: > 0 outside)."""

    ok: bool  #: the candidate and its whole braking path are proven within the allowed distance
    exhausted: bool  #: not proven because the FK budget ran out (no violation found)
    path: np.ndarray  #: (k + 1, n) the candidate, then its braking path
    at_q: float | None  #: signed distance at the candidate itself, if it was evaluated
    worst: float  #: largest signed distance evaluated (-inf if none)
    ticks_ahead: int  #: where ``worst`` is: 0 = the candidate itself, k = k ticks into braking


def _uncovered_runs(covered: np.ndarray) -> list[tuple[int, int]]:
    """Maximal ``[start, stop)`` index ranges of ``False`` in ``covered``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], covered.astype(np.int8), [1]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def signed_box_distance(p: np.ndarray, box: WorkspaceBox, margin: float = 0.0) -> float:
    """Signed distance (m) of ``p`` to ``box`` shrunk by ``margin``: Euclidean distance outside (> 0), minus the
    distance to the nearest face inside (<= 0). It is 1-Lipschitz, so the TCP provably stays in the box while
    it moves less than ``-distance``."""
    lower = np.asarray(box.lower) + margin
    upper = np.asarray(box.upper) - margin
    outside = box_violation(p, box, margin)
    if outside > 0:
        return outside
    return -float(min(np.min(p - lower), np.min(upper - p)))


def _mm(metres: float) -> str:
    """A distance in m as mm with 3 significant digits (never rounds a real violation to 0)."""
    return f"{metres * 1000.0:.3g} mm"


def command_vector_of_arm(state: ArmState, with_gripper: bool) -> np.ndarray:
    """The ``"joint_positions"`` command vector that holds the arm where ``state`` measured it."""
    q = np.asarray(state.joint_positions, dtype=np.float64)
    if not with_gripper:
        return q.copy()
    g = state.gripper if np.isfinite(state.gripper) else 0.0
    return np.concatenate([q, [float(g)]])


# ---------------------------------------------------------------------------------------------------------
# Quadrotors
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuadrotorSafetyConfig:
    """Per-vehicle, per-site settings of :class:`QuadrotorSafetyFilter` (world frame, SI units).

    Attributes:
        control_dt: control period (s).
        geofence: box (``frame="world"``) the vehicle and its position setpoints must stay in.
        max_altitude: ceiling (m, world z) for the vehicle and its setpoints; lowers the geofence top.
        max_tilt: largest angle (rad) between body z and world z before the filter levels the vehicle.
        max_speed: largest setpoint speed (m/s): position setpoints move at most ``max_speed * dt`` per tick.
        max_acceleration: largest setpoint acceleration (m/s^2).
        max_yaw_rate: largest yaw setpoint rate (rad/s); ``None`` uses the spec's yaw body-rate limit.
        max_thrust_ratio: fraction (0, 1] of the spec's maximum collective thrust allowed.
        min_airborne_thrust_ratio: while airborne, collective thrust stays >= this fraction of hover thrust
            (thrust is never cut in the air).
        ground_z: world z (m) of the ground under the vehicle.
        airborne_height: the vehicle counts as airborne above ``ground_z + airborne_height`` (m).
        fence_lookahead_s: the fence is enforced on ``position + velocity * lookahead`` (s) for direct
            thrust modes, where the filter has no setpoint to clip.
        level_gain: body-rate gain (1/s) used to level the vehicle when the tilt limit is exceeded.
    """

    control_dt: float
    geofence: WorkspaceBox
    max_altitude: float
    max_tilt: float = math.radians(35.0)
    max_speed: float = 1.0
    max_acceleration: float = 4.0
    max_yaw_rate: float | None = None
    max_thrust_ratio: float = 1.0
    min_airborne_thrust_ratio: float = 0.3
    ground_z: float = 0.0
    airborne_height: float = 0.03
    fence_lookahead_s: float = 0.5
    level_gain: float = 5.0

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        if self.geofence.frame != "world":
            raise ConfigError(f"geofence.frame={self.geofence.frame!r} must be 'world'")
        if not self.max_altitude > self.geofence.lower[2]:
            raise ConfigError(f"max_altitude={self.max_altitude} must be above the geofence floor")
        if not 0 < self.max_tilt < math.pi / 2:
            raise ConfigError(f"max_tilt={self.max_tilt} must be in (0, pi/2) rad")
        if not 0 < self.max_thrust_ratio <= 1:
            raise ConfigError(f"max_thrust_ratio={self.max_thrust_ratio} must be in (0, 1]")
        for name in ("max_speed", "max_acceleration", "level_gain"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")


def tilt_of(quaternion: np.ndarray) -> float:
    """Angle (rad) between the body z axis and world z of a (w, x, y, z) orientation."""
    x, y = float(quaternion[1]), float(quaternion[2])
    return float(np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0)))


def yaw_of(quaternion: np.ndarray) -> float:
    """Yaw (rad) of a (w, x, y, z) orientation (REP-103 roll-pitch-yaw)."""
    return float(quat_to_euler_rpy(np.asarray(quaternion, dtype=np.float64))[2])


def _wrap(angle: float) -> float:
    return float((angle + math.pi) % (2.0 * math.pi) - math.pi)


class _QuadMode(Protocol):
    names: tuple[str, ...]

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray: ...


class _PositionMode:
    """``"position"`` setpoints: geofence and ceiling, speed/acceleration limits and yaw-rate limit."""

    names: tuple[str, ...] = ("x", "y", "z", "yaw")

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig) -> None:
        dt = cfg.control_dt
        lower = np.array([*cfg.geofence.lower, -np.inf])
        upper = np.array([*cfg.geofence.upper[:2], min(cfg.geofence.upper[2], cfg.max_altitude), np.inf])
        yaw_rate = spec.max_body_rate[2] if cfg.max_yaw_rate is None else cfg.max_yaw_rate
        self.dt = dt
        self.max_tilt = cfg.max_tilt
        self.limiter = AxisLimiter(
            self.names,
            lower,
            upper,
            np.array([cfg.max_speed * dt] * 3 + [yaw_rate * dt]),
            np.array([cfg.max_acceleration * dt * dt] * 3 + [np.inf]),
        )
        self.active = False

    def reset(self, state: QuadrotorState) -> None:
        pos = np.asarray(state.position, dtype=np.float64)
        start = np.clip(pos, self.limiter.lower[:3], self.limiter.upper[:3])
        vel = np.asarray(state.linear_velocity, dtype=np.float64) * self.dt
        # The vehicle's own velocity is kept only if it is within the setpoint limits.
        step = np.clip(vel, -self.limiter.max_step[:3], self.limiter.max_step[:3])
        self.limiter.reset(np.array([*start, yaw_of(state.quaternion)]), np.array([*step, 0.0]))
        self.active = True

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        if not self.active:
            self.reset(state)
        target = values.copy()
        target[3] = self.limiter.q[3] + _wrap(target[3] - self.limiter.q[3])  # shortest way round
        if tilt_of(state.quaternion) > self.max_tilt:
            log.record("tilt", f"tilt {math.degrees(tilt_of(state.quaternion)):.1f} deg: setpoint held")
            target = self.limiter.q.copy()
        out = self.limiter.limit(target, log)
        self.limiter.commit(out)
        out = out.copy()
        out[3] = _wrap(out[3])
        return out


class _ThrustRatesMode:
    """``"thrust_rates"``: thrust within [airborne minimum, maximum], body rates within the spec, levelling."""

    names: tuple[str, ...] = ("collective_thrust", "roll_rate", "pitch_rate", "yaw_rate")

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.rate_limit = np.asarray(spec.max_body_rate, dtype=np.float64)

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        lo_t = _min_thrust(self.spec, self.cfg, state)
        hi_t = self.cfg.max_thrust_ratio * self.spec.max_collective_thrust
        lower = np.array([lo_t, *(-self.rate_limit)])
        upper = np.array([hi_t, *self.rate_limit])
        out = _clip_logged(values, lower, upper, self.names, log, {0: "thrust"}, "body_rate")
        tilt = tilt_of(state.quaternion)
        if tilt > self.cfg.max_tilt:
            level = _levelling_rates(state.quaternion, self.cfg.level_gain)
            out[1:3] = np.clip(level, -self.rate_limit[:2], self.rate_limit[:2])
            log.record("tilt", f"tilt {math.degrees(tilt):.1f} deg > {math.degrees(self.cfg.max_tilt):.1f}: levelling")
        return out


class _MotorMode:
    """``"motor_thrusts"``: normalized rotor commands within [airborne minimum, maximum ratio]."""

    def __init__(self, spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.names: tuple[str, ...] = tuple(f"motor_{i}" for i in range(spec.num_rotors))

    def limit(self, values: np.ndarray, state: QuadrotorState, log: InterventionLog) -> np.ndarray:
        n = self.spec.num_rotors
        lo = _min_thrust(self.spec, self.cfg, state) / (n * self.spec.max_thrust)
        lower, upper = np.full(n, lo), np.full(n, self.cfg.max_thrust_ratio)
        return _clip_logged(values, lower, upper, self.names, log, {}, "thrust")


def _min_thrust(spec: QuadrotorSpec, cfg: QuadrotorSafetyConfig, state: QuadrotorState) -> float:
    airborne = float(state.position[2]) > cfg.ground_z + cfg.airborne_height
    return cfg.min_airborne_thrust_ratio * spec.hover_thrust if airborne else 0.0


def _levelling_rates(quaternion: np.ndarray, gain: float) -> np.ndarray:
    """Body rates (roll, pitch) that rotate body z back towards world z."""
    rot = quat_to_matrix(np.asarray(quaternion, dtype=np.float64))
    z_body_in_world = rot[:, 2]
    axis_world = np.cross(z_body_in_world, np.array([0.0, 0.0, 1.0]))
    s = float(np.linalg.norm(axis_world))
    if s < 1e-9:
        return np.zeros(2)
    angle = math.atan2(s, float(z_body_in_world[2]))
    axis_body = rot.T @ (axis_world / s)
    return gain * angle * axis_body[:2]


def _clip_logged(
    values: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    names: tuple[str, ...],
    log: InterventionLog,
    reason_by_index: dict[int, str],
    default_reason: str,
) -> np.ndarray:
    out = np.clip(values, lower, upper)
    changed = np.flatnonzero(np.abs(out - values) > _REPORT_TOL)
    for reason in sorted({reason_by_index.get(int(i), default_reason) for i in changed}):
        i = int(next(j for j in changed if reason_by_index.get(int(j), default_reason) == reason))
        value, low, high = format_distinct(values[i], lower[i], upper[i])
        log.record(reason, f"{names[i]}={value} outside [{low}, {high}]; clipped to the bound")
    return out


class QuadrotorSafetyFilter:
    """Safety filter for every quadrotor command mode.

    Shared by all modes: non-finite or malformed commands become a position hold; a ``"disarm"`` command
    while airborne becomes a landing setpoint (thrust is never cut in the air). Per mode:

    - ``"position"``: setpoints clipped to the geofence and ceiling, speed/acceleration/yaw-rate limited;
      a tilt beyond ``max_tilt`` freezes the setpoint.
    - ``"thrust_rates"``: thrust within [airborne minimum, maximum], body rates within the spec; a tilt beyond
      ``max_tilt`` overrides roll/pitch rates with levelling rates.
    - ``"motor_thrusts"``: rotor commands within [airborne minimum, maximum]; a tilt beyond ``max_tilt`` hands
      over to a position hold (the onboard position loop levels the vehicle).

    For the direct modes, a predicted fence or ceiling violation (position + velocity * lookahead) hands the
    vehicle to a position hold at the nearest point inside the fence until the policy's commands are safe
    again.
    """

    def __init__(self, spec: QuadrotorSpec, config: QuadrotorSafetyConfig) -> None:
        self.spec = spec
        self.config = config
        self.position = _PositionMode(spec, config)
        self.modes: dict[str, _QuadMode] = {
            "position": self.position,
            "thrust_rates": _ThrustRatesMode(spec, config),
            "motor_thrusts": _MotorMode(spec, config),
        }
        self.log = InterventionLog(f"quadrotor safety ({spec.name})")
        fence = config.geofence
        self._fence_lower = np.asarray(fence.lower, dtype=np.float64)
        self._fence_upper = np.array([*fence.upper[:2], min(fence.upper[2], config.max_altitude)])

    def names(self, mode: str) -> tuple[str, ...]:
        """Element names of a mode's command vector."""
        return self.modes[mode].names

    def reset(self, state: QuadrotorState) -> None:
        """Start from a measured state (position setpoints start at the current position)."""
        self.position.reset(state)
        self.position.active = False

    def airborne(self, state: QuadrotorState) -> bool:
        """Whether the vehicle is above the ground by more than ``airborne_height``."""
        return float(state.position[2]) > self.config.ground_z + self.config.airborne_height

    def filter(self, command: Command, state: QuadrotorState) -> Command:
        """Return a command within every limit for the measured ``state``."""
        if command.mode == "disarm":
            if not self.airborne(state):
                self.position.active = False
                return Command("disarm", np.zeros(0))
            self.log.record("disarm_in_air", f"disarm refused at z={float(state.position[2]):.2f} m: landing")
            return self._position(self._landing_setpoint(state), state)
        mode = self.modes.get(command.mode)
        reason = "bad_mode" if mode is None else _hold_reason(command.values, len(mode.names))
        if mode is None or reason is not None:
            detail = f"replaced {command.mode!r} command {_short(command.values)} by a position hold"
            self.log.record(reason or "bad_mode", detail)
            return self._position(self._hold_setpoint(state), state)
        values = np.asarray(command.values, dtype=np.float64)
        if command.mode != "position":
            breach = self._fence_breach(state)
            if breach is not None:
                self.log.record(breach, f"predicted position outside the geofence/ceiling at {state.position}: holding")
                return self._position(self._fence_setpoint(state), state)
            if command.mode == "motor_thrusts" and tilt_of(state.quaternion) > self.config.max_tilt:
                # No body rates to level with: hand over to the onboard position loop, which levels the
                # vehicle (the position mode records the "tilt" intervention and holds).
                return self._position(self._fence_setpoint(state), state)
            self.position.active = False
            return Command(command.mode, mode.limit(values, state, self.log))
        return self._position(values, state)

    def _position(self, values: np.ndarray, state: QuadrotorState) -> Command:
        return Command("position", self.position.limit(values, state, self.log))

    def _hold_setpoint(self, state: QuadrotorState) -> np.ndarray:
        if self.position.active:
            return self.position.limiter.q.copy()
        return np.array([*state.position, yaw_of(state.quaternion)], dtype=np.float64)

    def _landing_setpoint(self, state: QuadrotorState) -> np.ndarray:
        sp = self._hold_setpoint(state)
        sp[2] = self.config.ground_z
        return sp

    def _fence_setpoint(self, state: QuadrotorState) -> np.ndarray:
        p = np.clip(np.asarray(state.position, dtype=np.float64), self._fence_lower, self._fence_upper)
        return np.array([*p, yaw_of(state.quaternion)])

    def _fence_breach(self, state: QuadrotorState) -> str | None:
        p = np.asarray(state.position, dtype=np.float64)
        ahead = p + np.asarray(state.linear_velocity, dtype=np.float64) * self.config.fence_lookahead_s
        for point in (p, ahead):
            if point[2] > self.config.max_altitude:
                return "altitude"
            if np.any(point < self._fence_lower) or np.any(point > self._fence_upper):
                return "geofence"
        return None


def _short(values: object) -> str:
    text = np.array2string(np.asarray(values), precision=4, threshold=8) if hasattr(values, "__len__") else repr(values)
    return text if len(text) <= 80 else text[:77] + "..."
