"""Per-axis limiter math: position box, velocity and acceleration limits with braking before the box.

Units: all limits given to the filters are SI (rad, rad/s, rad/s^2, m, m/s, N); the axis limiter works in
*per-tick* units (a velocity limit ``v`` becomes a step of ``v * dt`` per tick, an acceleration limit ``a`` a
change of step of ``a * dt**2`` per tick), so its guarantees hold exactly on the commanded sample sequence.
"""

from __future__ import annotations

import numpy as np

from rcs.errors import ConfigError
from rcs.safety.interventions import REPORT_TOL, InterventionLog, format_distinct

#: Absolute tolerance (in the limited quantity's unit) used when checking interval feasibility.
_TOL = 1e-12


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
    reported as ``acceleration_infeasible``. From a start outside the box (a position measured past a limit)
    every output heads back towards the box at the velocity and acceleration limits' pace, never further out.

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
        self.q: np.ndarray = np.zeros(n)
        self.d: np.ndarray = np.zeros(n)

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
        if report is not None and np.any(np.abs(clipped - target) > REPORT_TOL):
            i = int(np.flatnonzero(np.abs(clipped - target) > REPORT_TOL)[0])
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

    def outside(self) -> np.ndarray:
        """(n,) how far the current position is outside the position box per axis (0 inside), beyond the
        reporting tolerance."""
        beyond = np.maximum(np.maximum(self.lower - self.q, self.q - self.upper), 0.0)
        return np.where(beyond > REPORT_TOL, beyond, 0.0)

    def brake(self) -> np.ndarray:
        """The output that stops as hard as the limits allow: the admissible output closest to standing still.

        An axis outside its position box (an arm measured past a joint limit, e.g. after it fell with its
        motors off) cannot stand still, which is not admissible: it heads back into the box as fast as the
        velocity and acceleration limits allow. Does not commit (see :meth:`commit`) and reports nothing.
        """
        return self.limit(np.clip(self.q, self.lower, self.upper))

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
        changed = np.abs(step - desired) > REPORT_TOL
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
