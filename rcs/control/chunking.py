"""Executing action chunks from a policy that runs at its own rate, in another thread or process.

A policy observes the robot at control tick ``t`` and, some ticks later, delivers an :class:`ActionChunk`:
``H`` actions spaced ``policy_dt`` apart, the first one meant for tick ``t``. Everything is indexed by control
tick, never by wall-clock time, so a run is reproducible in simulation.

:class:`ChunkExecutor` turns chunks into one action per control tick:

1. :meth:`ChunkExecutor.submit` (any thread) validates the chunk (names and their order, shape, dtype,
   finiteness, dt, tick and timestamp freshness) and returns a :class:`Rejection` with a reason for bad input,
   then interpolates the policy-rate actions to control ticks (``"linear"`` or ``"minimum_jerk"``).
2. :meth:`ChunkExecutor.step` (control thread, once per tick) merges chunks that arrived with the selected
   strategy and returns this tick's action, or ``None`` when starved (no action; counted).
3. With :attr:`ExecutorConfig.limits` (the device's command limits, e.g. :func:`limits_of_safety_filter`),
   every action :meth:`ChunkExecutor.step` returns is inside them: position bounds (a gripper's [0, 1]
   included), per-tick velocity and acceleration relative to the commands actually executed, computed with
   the safety filter's own :class:`rcs.safety.limits.AxisLimiter`. Minimum-jerk interpolation and the splice
   correction may overshoot the actions they connect; this keeps the filter a last resort that a
   well-behaved policy never triggers.

Strategies (:data:`STRATEGIES`):

- ``"splice"`` (default, real-time-chunking style): the actions that executed while the policy was thinking
  stay committed; the new chunk takes over at the current tick and a quintic correction, fitted to the last
  three *executed* commands and decaying to zero over ``splice_ticks``, makes it continue from them with
  continuous position, velocity and acceleration. Two plans are never averaged. Policies that support
  inpainting can condition on :attr:`ChunkRequest.committed` so the correction stays small.
- ``"sync"``: the chunk is executed from its first action when it arrives (what a synchronous
  ``select_action`` loop does; the robot is starved while the policy thinks).
- ``"ensemble"``: ACT temporal ensembling: every tick averages the predictions of all chunks covering it
  with weights ``exp(-m * i)``, ``i = 0`` for the oldest (Zhao et al. 2023, ``m = ensemble_decay``).
- ``"blend"``: lerobot async inference's ``weighted_average`` aggregation: overlapping ticks become
  ``(1 - w) * old + w * new`` with ``w = 0.7``, new ticks are appended.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rcs.errors import ConfigError
from rcs.safety.arm import ArmSafetyFilter
from rcs.safety.interventions import InterventionLog
from rcs.safety.limits import AxisLimiter

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionChunk:
    """A sequence of actions from a policy, anchored to the control tick it was computed for.

    Attributes:
        start_tick: control tick of the observation the policy conditioned on; ``actions[0]`` is meant for
            this tick and ``actions[i]`` for ``start_tick + i * policy_dt / control_dt``.
        actions: (H, D) float array; columns ordered as ``names``.
        names: feature (joint) names of the columns; must equal the executor's, in the same order.
        policy_dt: seconds between consecutive actions.
        control_dt: control period (s) the tick index refers to (must match the executor's).
        timestamp: ``time.monotonic()`` (s) when the observation was captured.
    """

    start_tick: int
    actions: np.ndarray
    names: tuple[str, ...]
    policy_dt: float
    control_dt: float
    timestamp: float

    @property
    def ticks_per_action(self) -> float:
        """Control ticks between consecutive actions."""
        return self.policy_dt / self.control_dt

    @property
    def length_ticks(self) -> int:
        """Number of control ticks the chunk covers (the last action is held for its policy step)."""
        return max(1, math.ceil(len(self.actions) * self.ticks_per_action - 1e-9))


@dataclass(frozen=True)
class Rejection:
    """Why a chunk was not accepted.

    Attributes:
        reason: short code: ``type``, ``names``, ``dtype``, ``shape``, ``non_finite``, ``timing``,
            ``future_tick``, ``stale_tick``, ``expired``, ``future_timestamp`` or ``stale_timestamp``.
        message: human-readable details (field, value, limit).
    """

    reason: str
    message: str


@dataclass(frozen=True)
class ChunkRequest:
    """What a policy needs to produce a chunk that splices cleanly.

    Attributes:
        tick: control tick of the observation; use it as the chunk's ``start_tick``.
        committed: (K, D) actions the executor will run from ``tick`` on if nothing new arrives. The first
            ``delay_estimate_ticks`` of them will certainly execute before a new chunk can land (the frozen
            prefix of real-time chunking): an inpainting policy conditions on them.
        delay_estimate_ticks: ticks recent chunks took from ``start_tick`` to being merged.
    """

    tick: int
    committed: np.ndarray
    delay_estimate_ticks: int


@dataclass(frozen=True)
class Plan:
    """Actions for consecutive control ticks ``first_tick .. first_tick + len(values) - 1`` (immutable)."""

    first_tick: int
    values: np.ndarray

    @property
    def end_tick(self) -> int:
        """First tick *not* covered."""
        return self.first_tick + len(self.values)

    def at(self, tick: int) -> np.ndarray | None:
        """The action for ``tick``, or None outside the plan."""
        i = tick - self.first_tick
        return self.values[i] if 0 <= i < len(self.values) else None

    def from_tick(self, tick: int) -> np.ndarray:
        """Values for ticks >= ``tick`` (possibly empty)."""
        return self.values[max(0, tick - self.first_tick) :]


@dataclass(frozen=True)
class CommandLimits:
    """Per-axis limits the executor's output must respect, in the safety filter's per-tick units.

    The executor checks every action against them the way :class:`rcs.safety.limits.AxisLimiter` does (it
    uses that class), relative to the commands actually executed on the previous ticks, so a filter built
    from the same limits has nothing left to change. Build them from the filter itself with
    :func:`limits_of_safety_filter` so both use bit-identical numbers.

    Attributes:
        lower, upper: position bounds per axis, in command units (rad, m, normalized gripper width in
            [0, 1]); ``-inf``/``inf`` for none.
        max_step: largest ``|q_k - q_{k-1}|`` per tick (velocity limit (unit/s) x control_dt); ``inf`` for none.
        max_dv: largest ``|(q_k - q_{k-1}) - (q_{k-1} - q_{k-2})|`` per tick (acceleration limit (unit/s^2)
            x control_dt^2); ``inf`` for none.
        step_cap: optional extra cap on ``|q_k - q_{k-1}|`` per tick (the filter's ``max_joint_step``).
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_step: tuple[float, ...]
    max_dv: tuple[float, ...]
    step_cap: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.lower)
        fields = {"lower": self.lower, "upper": self.upper, "max_step": self.max_step, "max_dv": self.max_dv}
        if self.step_cap is not None:
            fields["step_cap"] = self.step_cap
        for name, values in fields.items():
            if len(values) != n:
                raise ConfigError(f"limits.{name} has {len(values)} axes, limits.lower has {n}")
            if any(math.isnan(v) for v in values):
                raise ConfigError(f"limits.{name}={values} contains NaN")
        bad = [i for i in range(n) if self.lower[i] > self.upper[i]]
        if bad:
            i = bad[0]
            raise ConfigError(f"limits.lower[{i}]={self.lower[i]} is above limits.upper[{i}]={self.upper[i]}")
        for name in ("max_step", "max_dv", "step_cap"):
            values = fields.get(name, ())
            if any(not v > 0 for v in values):
                raise ConfigError(f"limits.{name}={values} must be > 0 per tick on every axis")

    @property
    def size(self) -> int:
        """Number of axes."""
        return len(self.lower)

    @classmethod
    def from_limiters(cls, *limiters: AxisLimiter) -> CommandLimits:
        """The limits of the filter's limiters, concatenated in command order."""

        def cat(attr: str) -> tuple[float, ...]:
            return tuple(float(v) for lim in limiters for v in getattr(lim, attr))

        return cls(cat("lower"), cat("upper"), cat("max_step"), cat("max_dv"), cat("step_cap"))

    def limiter(self, names: tuple[str, ...]) -> AxisLimiter:
        """A fresh :class:`AxisLimiter` with these limits."""
        cap = None if self.step_cap is None else np.array(self.step_cap)
        return AxisLimiter(
            names, np.array(self.lower), np.array(self.upper), np.array(self.max_step), np.array(self.max_dv), cap
        )


def limits_of_safety_filter(safety: object) -> CommandLimits | None:
    """The command limits an arm safety filter enforces (joints, then the gripper if the arm has one).

    Returns ``None`` for filters whose limits are not per-axis boxes on the command vector (quadrotors:
    their yaw wraps around and their limits depend on the command mode and the measured state).
    """
    if not isinstance(safety, ArmSafetyFilter):
        return None
    limiters = (safety.joints, safety.gripper) if safety.has_gripper else (safety.joints,)
    return CommandLimits.from_limiters(*limiters)


# ---------------------------------------------------------------------------------------------------------
# Interpolation: policy-rate actions -> control-rate actions
# ---------------------------------------------------------------------------------------------------------


def interpolate_linear(actions: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of (H, D) ``actions`` at fractional knot positions ``u`` (M,)."""
    h = len(actions)
    if h == 1:
        return np.repeat(actions, len(u), axis=0)
    u = np.clip(u, 0.0, h - 1.0)
    i = np.minimum(np.floor(u).astype(int), h - 2)
    x = (u - i)[:, None]
    return actions[i] + x * (actions[i + 1] - actions[i])


def interpolate_minimum_jerk(actions: np.ndarray, u: np.ndarray) -> np.ndarray:
    """C2 interpolation of (H, D) ``actions`` at fractional knot positions ``u`` (M,).

    Each segment is the minimum-jerk (quintic) trajectory between two consecutive actions for boundary
    velocities and accelerations estimated by finite differences at the knots (second order, also at the
    ends), so position, velocity and acceleration are continuous across knots and the curve passes through
    every action.
    """
    h = len(actions)
    if h == 1:
        return np.repeat(actions, len(u), axis=0)
    vel = np.gradient(actions, axis=0, edge_order=2 if h >= 3 else 1)
    acc = np.zeros_like(actions)
    if h >= 3:
        acc[1:-1] = actions[2:] - 2.0 * actions[1:-1] + actions[:-2]
        acc[0], acc[-1] = acc[1], acc[-2]
    u = np.clip(u, 0.0, h - 1.0)
    i = np.minimum(np.floor(u).astype(int), h - 2)
    x = (u - i)[:, None]
    x2, x3 = x * x, x * x * x
    x4, x5 = x3 * x, x3 * x2
    h_p0 = 1 - 10 * x3 + 15 * x4 - 6 * x5
    h_v0 = x - 6 * x3 + 8 * x4 - 3 * x5
    h_a0 = 0.5 * (x2 - 3 * x3 + 3 * x4 - x5)
    h_a1 = 0.5 * (x3 - 2 * x4 + x5)
    h_v1 = -4 * x3 + 7 * x4 - 3 * x5
    h_p1 = 10 * x3 - 15 * x4 + 6 * x5
    return (
        h_p0 * actions[i]
        + h_v0 * vel[i]
        + h_a0 * acc[i]
        + h_a1 * acc[i + 1]
        + h_v1 * vel[i + 1]
        + h_p1 * actions[i + 1]
    )


Interpolator = Callable[[np.ndarray, np.ndarray], np.ndarray]

INTERPOLATORS: dict[str, Interpolator] = {
    "linear": interpolate_linear,
    "minimum_jerk": interpolate_minimum_jerk,
}


def chunk_to_ticks(chunk: ActionChunk, interpolation: str = "minimum_jerk") -> np.ndarray:
    """The chunk's actions at each control tick it covers: (``chunk.length_ticks``, D) float64."""
    ticks = np.arange(chunk.length_ticks, dtype=np.float64)
    return INTERPOLATORS[interpolation](np.asarray(chunk.actions, dtype=np.float64), ticks / chunk.ticks_per_action)


# ---------------------------------------------------------------------------------------------------------
# Seam correction for the splice strategy
# ---------------------------------------------------------------------------------------------------------


def seam_correction_basis(window: int) -> np.ndarray:
    """(window, 3) basis of the splice correction.

    The correction ``c`` is the quintic in the tick index ``j`` (``j = 0`` is the last executed tick) with
    ``c(0) = x0``, ``c(-1) = x1``, ``c(-2) = x2`` (the offsets between the executed commands and the new
    chunk on the last three ticks) and ``c = c' = c'' = 0`` at ``j = window``. It is linear in the offsets:
    ``c(j) = basis[j - 1] @ [x0, x1, x2]`` for ``j = 1 .. window``.
    """
    if window < 1:
        raise ConfigError(f"splice window={window} must be >= 1 tick")
    s_pts = np.array([0.0, -1.0, -2.0]) / window
    powers = np.arange(6)
    rows = [s**powers for s in s_pts]
    rows.append(np.ones(6))  # c(1) = 0
    rows.append(np.array([0, 1, 2, 3, 4, 5], dtype=np.float64))  # c'(1) = 0
    rows.append(np.array([0, 0, 2, 6, 12, 20], dtype=np.float64))  # c''(1) = 0
    system = np.array(rows)
    rhs = np.zeros((6, 3))
    rhs[0, 0] = rhs[1, 1] = rhs[2, 2] = 1.0
    coef = np.linalg.solve(system, rhs)  # (6, 3)
    s = np.arange(1, window + 1, dtype=np.float64) / window
    return (s[:, None] ** powers[None, :]) @ coef


# ---------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A validated chunk and its control-rate actions (``values[0]`` is for ``chunk.start_tick``)."""

    chunk: ActionChunk
    values: np.ndarray

    @property
    def plan(self) -> Plan:
        """The chunk's actions as a plan starting at its ``start_tick``."""
        return Plan(int(self.chunk.start_tick), self.values)


class History:
    """The last three commands executed, by tick (what the splice continues from)."""

    def __init__(self) -> None:
        self.ticks: list[int] = []
        self.values: list[np.ndarray] = []

    def record(self, tick: int, values: np.ndarray) -> None:
        """Record what was commanded at ``tick`` (replaces an entry for the same tick)."""
        if self.ticks and self.ticks[-1] == tick:
            self.values[-1] = np.array(values, dtype=np.float64)
            return
        self.ticks.append(tick)
        self.values.append(np.array(values, dtype=np.float64))
        if len(self.ticks) > 3:
            del self.ticks[0], self.values[0]

    def clear(self) -> None:
        """Forget everything."""
        self.ticks.clear()
        self.values.clear()


class Strategy(Protocol):
    """How a newly arrived chunk is merged with the current plan at ``tick``."""

    def merge(self, plan: Plan | None, new: Prepared, tick: int, history: History) -> Plan:
        """The plan from ``tick`` on after ``new`` arrived (``plan``: the current one, if any)."""


class SpliceStrategy:
    """Real-time-chunking splice: keep what executed, continue from it into the new chunk (no averaging)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.basis = seam_correction_basis(window)

    def merge(self, plan: Plan | None, new: Prepared, tick: int, history: History) -> Plan:
        """The new chunk from ``tick``, corrected to continue from the last executed commands."""
        values = new.plan.from_tick(tick).copy()
        if len(history.ticks) == 0 or len(values) == 0:
            return Plan(tick, values)
        executed = zip(reversed(history.ticks), reversed(history.values), strict=True)
        offsets = [v - _value_at(new.plan, t) for t, v in executed]  # newest first
        while len(offsets) < 3:  # fewer than three executed ticks: assume it was at rest
            offsets.append(offsets[-1])
        gap = tick - 1 - history.ticks[-1]
        basis = self.basis if gap == 0 else seam_correction_basis(self.window + gap)[gap:]
        n = min(len(values), len(basis))
        values[:n] += basis[:n] @ np.stack(offsets[:3])
        return Plan(tick, values)


class SyncStrategy:
    """Synchronous execution: the chunk starts from its first action at the tick it arrives."""

    def merge(self, plan: Plan | None, new: Prepared, tick: int, history: History) -> Plan:
        """The new chunk from its first action, starting at ``tick``."""
        return Plan(tick, new.values.copy())


class EnsembleStrategy:
    """ACT temporal ensembling over every chunk that covers a tick (oldest weighted most)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.chunks: list[Plan] = []

    def merge(self, plan: Plan | None, new: Prepared, tick: int, history: History) -> Plan:
        """Weighted average of every chunk covering each tick from ``tick`` on."""
        self.chunks = [c for c in self.chunks if c.end_tick > tick] + [new.plan]
        end = max(c.end_tick for c in self.chunks)
        span = end - tick
        dim = new.values.shape[1]
        stacked = np.zeros((len(self.chunks), span, dim))
        covered = np.zeros((len(self.chunks), span), dtype=bool)
        for i, c in enumerate(self.chunks):
            lo, hi = max(tick, c.first_tick), c.end_tick
            stacked[i, lo - tick : hi - tick] = c.values[lo - c.first_tick : hi - c.first_tick]
            covered[i, lo - tick : hi - tick] = True
        rank = np.cumsum(covered, axis=0) - 1
        weights = np.where(covered, np.exp(-self.decay * rank), 0.0)
        total = weights.sum(axis=0)
        values = np.einsum("cs,csd->sd", weights, stacked) / np.maximum(total, 1e-300)[:, None]
        first_uncovered = np.flatnonzero(total == 0)
        if len(first_uncovered):  # never leave a hole: stop the plan at the first uncovered tick
            values = values[: first_uncovered[0]]
        return Plan(tick, values)


class BlendStrategy:
    """lerobot async inference's aggregation: overlapping ticks ``(1 - w) * old + w * new``, new ones appended."""

    def __init__(self, new_weight: float) -> None:
        self.w = new_weight

    def merge(self, plan: Plan | None, new: Prepared, tick: int, history: History) -> Plan:
        """Blend the overlap, append the rest."""
        values = new.plan.from_tick(tick).copy()
        if plan is not None:
            old = plan.from_tick(tick)
            first_new = max(tick, new.plan.first_tick)
            # old ticks before the new chunk starts (cannot happen for a validated chunk) are kept as-is
            k = min(len(old), len(values))
            values[:k] = (1.0 - self.w) * old[:k] + self.w * values[:k]
            return Plan(first_new, values)
        return Plan(tick, values)


def _value_at(plan: Plan, tick: int) -> np.ndarray:
    """Plan value at ``tick``; before its start, the cubic through its first four values (Newton forward
    differences, lower order for shorter plans) so the extension is smooth up to jerk; held after its end."""
    v = plan.values
    x = tick - plan.first_tick
    if x >= 0:
        return v[min(x, len(v) - 1)]
    out = v[0].copy()
    diff = v[: min(4, len(v))]
    coef = 1.0
    for order in range(1, len(diff)):
        diff = np.diff(diff, axis=0)
        coef *= (x - (order - 1)) / order
        out += coef * diff[0]
    return out


# ---------------------------------------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutorConfig:
    """Settings of :class:`ChunkExecutor`.

    Attributes:
        names: feature (joint) names, in command order; chunks must match them exactly.
        control_dt: control period (s).
        strategy: one of :data:`STRATEGIES`.
        interpolation: one of :data:`INTERPOLATORS`.
        splice_ticks: ticks over which the splice correction decays to zero.
        max_age_s: chunks whose observation timestamp is older than this are rejected (s).
        max_future_s: tolerance (s) for a timestamp ahead of the executor's clock.
        max_delay_ticks: chunks whose ``start_tick`` is more than this many ticks in the past are rejected
            (default: ``max_age_s`` in ticks).
        ensemble_decay: ``m`` of ACT's ensembling weights ``exp(-m * i)``.
        blend_new_weight: weight of the new chunk in the ``"blend"`` strategy.
        dt_rel_tolerance: relative tolerance when comparing a chunk's ``control_dt`` with ours.
        limits: the device's command limits (per tick at ``control_dt``, axes in ``names`` order); when
            given, every action :meth:`ChunkExecutor.step` returns respects them (see the module docstring).
        hold_last_s: s the last action of the plan stays commanded after the plan ends, while the next chunk
            is on its way (zero-order hold, as a streamed setpoint holds until the next one arrives); a chunk
            is accepted until its hold ends. For policies that stream one action per request; 0 (default):
            starved at once (chunking policies ask for the next chunk long before the plan ends).
    """

    names: tuple[str, ...]
    control_dt: float
    strategy: str = "splice"
    interpolation: str = "minimum_jerk"
    splice_ticks: int = 16
    max_age_s: float = 1.0
    max_future_s: float = 0.01
    max_delay_ticks: int | None = None
    ensemble_decay: float = 0.01
    blend_new_weight: float = 0.7
    dt_rel_tolerance: float = 1e-6
    limits: CommandLimits | None = None
    hold_last_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        if not 0.0 <= self.hold_last_s <= self.max_age_s:
            raise ConfigError(f"hold_last_s={self.hold_last_s} must be in [0, max_age_s={self.max_age_s}] s")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r}; known: {sorted(STRATEGIES)}")
        if self.interpolation not in INTERPOLATORS:
            raise ConfigError(f"interpolation={self.interpolation!r}; known: {sorted(INTERPOLATORS)}")
        if len(set(self.names)) != len(self.names) or not self.names:
            raise ConfigError(f"names={self.names} must be unique and non-empty")
        if self.splice_ticks < 1:
            raise ConfigError(f"splice_ticks={self.splice_ticks} must be >= 1")
        if not self.max_age_s > 0:
            raise ConfigError(f"max_age_s={self.max_age_s} must be > 0")
        if self.limits is not None and self.limits.size != len(self.names):
            raise ConfigError(f"limits has {self.limits.size} axes but names has {len(self.names)}: {self.names}")

    @property
    def hold_last_ticks(self) -> int:
        """Ticks the last action is held after the plan ends (``hold_last_s`` rounded to ticks)."""
        return int(round(self.hold_last_s / self.control_dt))

    @property
    def delay_limit_ticks(self) -> int:
        """Largest accepted ``current tick - start_tick``."""
        if self.max_delay_ticks is not None:
            return self.max_delay_ticks
        return int(round(self.max_age_s / self.control_dt))


STRATEGIES: dict[str, Callable[[ExecutorConfig], Strategy]] = {
    "splice": lambda cfg: SpliceStrategy(cfg.splice_ticks),
    "sync": lambda cfg: SyncStrategy(),
    "ensemble": lambda cfg: EnsembleStrategy(cfg.ensemble_decay),
    "blend": lambda cfg: BlendStrategy(cfg.blend_new_weight),
}


class ChunkExecutor:
    """Turns asynchronously delivered action chunks into one action per control tick.

    Thread model: :meth:`submit` and :meth:`request` may be called from any thread; :meth:`step`,
    :meth:`record_executed` and :meth:`reset` only from the control thread. Plans are immutable once
    published, so the lock is held only to hand chunks over.

    Args:
        config: settings.
        clock: monotonic clock (s) for timestamp checks; ``time.monotonic`` by default.
    """

    def __init__(self, config: ExecutorConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.names = tuple(config.names)
        self.dim = len(self.names)
        self._strategy = STRATEGIES[config.strategy](config)
        self._lock = threading.Lock()
        self._inbox: list[Prepared] = []
        self._plan: Plan | None = None
        self._tick = -1
        self.history = History()
        self.rejections = InterventionLog("chunk executor")
        self.starved_ticks = 0
        #: ticks commanded with the plan's last action held past its end (``hold_last_s``)
        self.held_ticks = 0
        self.accepted = 0
        self.last_chunk_tick: int | None = None
        self.delays: list[int] = []
        self.seam_ticks: list[int] = []
        self._limiter = None if config.limits is None else config.limits.limiter(self.names)
        self._hold_ticks = config.hold_last_ticks  # read on every tick: derived once
        #: ticks on which the plan's action had to be changed to respect ``config.limits``
        self.limited_ticks = 0

    # -- policy side (any thread) ---------------------------------------------------------------------
    def submit(self, chunk: ActionChunk) -> Rejection | None:
        """Validate and queue a chunk; it is merged at the next :meth:`step`. Returns why it was rejected."""
        rejection = self._validate(chunk)
        if rejection is not None:
            with self._lock:
                self.rejections.record(rejection.reason, rejection.message)
            return rejection
        prepared = Prepared(chunk, chunk_to_ticks(chunk, self.config.interpolation))
        with self._lock:
            self._inbox.append(prepared)
        return None

    def request(self, tick: int | None = None) -> ChunkRequest:
        """Describe what is committed from ``tick`` (default: the current tick) for the next policy call."""
        tick = self._tick if tick is None else tick
        plan = self._plan
        committed = plan.from_tick(tick).copy() if plan is not None else np.zeros((0, self.dim))
        return ChunkRequest(tick, committed, self.delay_estimate_ticks)

    @property
    def delay_estimate_ticks(self) -> int:
        """Largest of the last 8 observed chunk delays (ticks from ``start_tick`` to merge)."""
        recent = self.delays[-8:]
        return max(recent) if recent else 0

    @property
    def tick(self) -> int:
        """The last tick passed to :meth:`step` (-1 before the first)."""
        return self._tick

    def remaining(self, tick: int | None = None) -> int:
        """Ticks of plan left from ``tick`` (inclusive)."""
        tick = self._tick if tick is None else tick
        plan = self._plan
        return 0 if plan is None else max(0, plan.end_tick - tick)

    # -- control side ----------------------------------------------------------------------------------
    def reset(self, tick: int, current: np.ndarray | None = None) -> None:
        """Drop every plan and queued chunk; optionally seed the executed history with ``current`` at rest."""
        with self._lock:
            self._inbox.clear()
        self._plan = None
        self._tick = tick - 1
        self.history.clear()
        self.last_chunk_tick = None
        self._strategy = STRATEGIES[self.config.strategy](self.config)
        if current is not None:
            self.seed(tick, current)

    def seed(self, tick: int, current: np.ndarray) -> None:
        """Record ``current`` as executed (at rest) on the three ticks before ``tick``; keeps queued chunks."""
        self.history.clear()
        for k in (tick - 3, tick - 2, tick - 1):
            self.history.record(k, np.asarray(current, dtype=np.float64))

    def step(self, tick: int) -> np.ndarray | None:
        """This tick's action ((D,) float64), or ``None`` if starved. Merges chunks that arrived."""
        self._tick = tick
        with self._lock:
            arrived, self._inbox = self._inbox, []
        for prepared in arrived:
            self._merge(prepared, tick)
        plan = self._plan
        value = None if plan is None else plan.at(tick)
        if value is None and plan is not None and len(plan.values):
            if plan.end_tick <= tick < plan.end_tick + self._hold_ticks:
                value = plan.values[-1]
                self.held_ticks += 1
        if value is None:
            if self.accepted:
                self.starved_ticks += 1
            return None
        value = value.copy() if self._limiter is None else self._within_limits(tick, value)
        self.history.record(tick, value)
        return value

    def record_executed(self, tick: int, values: np.ndarray) -> None:
        """Tell the executor what was actually commanded at ``tick`` (after the watchdog and safety filter)."""
        self.history.record(tick, values)

    def _merge(self, prepared: Prepared, tick: int) -> None:
        chunk = prepared.chunk
        late = self._tick_rejection(chunk, tick)
        if late is not None:
            with self._lock:
                self.rejections.record(late.reason, late.message)
            return
        if int(chunk.start_tick) + len(prepared.values) <= tick:  # arrived in its hold: its last action, held
            plan = Plan(tick, prepared.values[-1:].copy())
        else:
            plan = self._strategy.merge(self._plan, prepared, tick, self.history)
        if self._limiter is not None:  # interpolation and splice overshoot: keep the committed plan in bounds
            plan = Plan(plan.first_tick, np.clip(plan.values, self._limiter.lower, self._limiter.upper))
        self._plan = plan
        self.accepted += 1
        self.last_chunk_tick = tick
        self.delays.append(tick - int(chunk.start_tick))
        self.seam_ticks.append(tick)

    def _within_limits(self, tick: int, value: np.ndarray) -> np.ndarray:
        """``value`` moved as little as possible to respect ``config.limits`` after what executed before
        ``tick``: the safety filter's own limiter, started from the last executed command and step, so the
        filter (which tracks the same commands) finds nothing to change."""
        lim = self._limiter
        assert lim is not None
        h = self.history
        k = len(h.ticks)
        while k and h.ticks[k - 1] >= tick:  # a repeated step() for the same tick: ignore its own entry
            k -= 1
        if k and h.ticks[k - 1] == tick - 1:
            q = h.values[k - 1]
            consecutive = k >= 2 and h.ticks[k - 2] == tick - 2
            lim.reset(q, q - h.values[k - 2] if consecutive else None)
            out = lim.limit(value)
        else:  # nothing executed on the previous tick: only the position bounds are known
            out = np.clip(value, lim.lower, lim.upper)
        if np.any(np.abs(out - value) > 1e-9):
            self.limited_ticks += 1
        return out

    # -- validation ------------------------------------------------------------------------------------
    def _validate(self, chunk: object) -> Rejection | None:
        if not isinstance(chunk, ActionChunk):
            return Rejection("type", f"expected ActionChunk, got {type(chunk).__name__}")
        names = tuple(chunk.names)
        if names != self.names:
            order = "joint order differs" if sorted(names) == sorted(self.names) else "names differ"
            return Rejection("names", f"{order}: got {names}, expected {self.names}")
        actions = np.asarray(chunk.actions)
        if actions.dtype.kind != "f":
            return Rejection("dtype", f"actions.dtype={actions.dtype} must be floating point")
        if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != self.dim:
            return Rejection("shape", f"actions.shape={actions.shape} must be (H >= 1, {self.dim})")
        if not np.isfinite(actions).all():
            row, col = (int(x) for x in np.argwhere(~np.isfinite(actions))[0])
            return Rejection("non_finite", f"actions[{row}, {self.names[col]}]={actions[row, col]} is not finite")
        timing = self._timing_rejection(chunk)
        if timing is not None:
            return timing
        # A chunk may legitimately be submitted just before the control thread reaches its start tick.
        return self._tick_rejection(chunk, self._tick + 1)

    def _timing_rejection(self, chunk: ActionChunk) -> Rejection | None:
        cfg = self.config
        dt_error = abs(chunk.control_dt - cfg.control_dt)
        if not (math.isfinite(chunk.control_dt) and dt_error <= cfg.dt_rel_tolerance * cfg.control_dt):
            return Rejection("timing", f"control_dt={chunk.control_dt} must equal the executor's {cfg.control_dt}")
        if not (math.isfinite(chunk.policy_dt) and chunk.policy_dt > 0):
            return Rejection("timing", f"policy_dt={chunk.policy_dt} must be a positive number of seconds")
        if not isinstance(chunk.start_tick, (int, np.integer)) or isinstance(chunk.start_tick, bool):
            return Rejection("timing", f"start_tick={chunk.start_tick!r} must be an integer tick")
        ts = chunk.timestamp
        now = self.clock()
        if not math.isfinite(ts):
            return Rejection("stale_timestamp", f"timestamp={ts} is not finite")
        if ts > now + cfg.max_future_s:
            return Rejection("future_timestamp", f"timestamp={ts:.6f} is {ts - now:.4f} s in the future")
        if now - ts > cfg.max_age_s:
            return Rejection("stale_timestamp", f"timestamp={ts:.6f} is {now - ts:.3f} s old (limit {cfg.max_age_s} s)")
        return None

    def _tick_rejection(self, chunk: ActionChunk, tick: int) -> Rejection | None:
        start = int(chunk.start_tick)
        if start > tick:
            return Rejection("future_tick", f"start_tick={start} is after the current tick {tick}")
        if tick - start > self.config.delay_limit_ticks:
            return Rejection(
                "stale_tick", f"start_tick={start} is {tick - start} ticks old (limit {self.config.delay_limit_ticks})"
            )
        if start + chunk.length_ticks + self._hold_ticks <= tick:
            held = f" (held {self._hold_ticks} more)" if self._hold_ticks else ""
            return Rejection(
                "expired", f"chunk ends at tick {start + chunk.length_ticks - 1}{held} < current tick {tick}"
            )
        return None
