"""Turning remote commands into control-rate plans, with every bad input rejected and named.

A remote client (the ROS 2 bridge, a script) sends *timed trajectories* (``time_from_start`` knots, like
``trajectory_msgs/JointTrajectory``) or *targets* (a TCP pose for an arm, a position + yaw for a quadrotor).
Here they are checked against the robot's limits and resampled to one value per control tick; the result is
submitted to the control loop's :class:`rcs.control.chunking.ChunkExecutor`, after which the watchdog and the
safety filter still apply. Nothing in this module touches a device.

Rejections (:class:`rcs.remote.wire.Reply` with ``ok=False``) carry a short code:
``names`` (unknown, missing or duplicate names), ``shape`` (lengths disagree), ``dtype``, ``non_finite``
(NaN/inf), ``timing`` (time_from_start not increasing or negative), ``too_long``, ``position_limit``,
``jump`` (the trajectory starts away from the current command, or needs more than the velocity limit between
two points), ``quaternion``, ``unreachable`` (IK), ``workspace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rcs.remote.wire import Reply, rejected


@dataclass(frozen=True)
class TrajectoryLimits:
    """What a trajectory may ask of the robot, per element of the command vector (SI units).

    Attributes:
        names: element names in command order (e.g. the arm's joints, then ``"gripper"``).
        lower, upper: (D,) position limits.
        max_velocity: (D,) |velocity| limits (``inf`` where there is none).
        optional: names a trajectory may leave out (held at their current command, e.g. the gripper).
        start_tolerance: largest |difference| allowed between a trajectory's value at its start and the
            current command (command units); larger is a ``jump``. Elements without a velocity limit (``inf``,
            e.g. a gripper's normalized width) are exempt.
        velocity_tolerance: relative slack on ``max_velocity`` between two points (0.05 = 5 %).
        max_duration_s: longest trajectory accepted.
        max_points: most knots accepted.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    optional: frozenset[str] = frozenset()
    start_tolerance: float = 0.05
    velocity_tolerance: float = 0.05
    max_duration_s: float = 60.0
    max_points: int = 10_000


def _name_order(limits: TrajectoryLimits, names: object) -> list[int] | Reply:
    """Index of each trajectory column in the command vector, or a rejection."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return rejected("names", "joint_names", f"got {names!r:.80}", "a list of strings")
    known = {n: i for i, n in enumerate(limits.names)}
    unknown = [n for n in names if n not in known]
    if unknown:
        return rejected("names", "joint_names", f"unknown names {unknown}", f"names among {list(limits.names)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        return rejected("names", "joint_names", f"duplicate names {dup}", "each name once")
    missing = [n for n in limits.names if n not in names and n not in limits.optional]
    if missing:
        return rejected(
            "names",
            "joint_names",
            f"missing names {missing}",
            f"all of {[n for n in limits.names if n not in limits.optional]}",
        )
    return [known[n] for n in names]


def _as_float_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray | Reply:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        return rejected("dtype", name, f"dtype {arr.dtype}", "a real numeric dtype")
    if arr.shape != shape:
        return rejected("shape", name, f"shape {arr.shape}", f"shape {shape}")
    return arr.astype(np.float64)


def plan_trajectory(
    limits: TrajectoryLimits,
    names: object,
    positions: object,
    time_from_start: object,
    current: np.ndarray,
    control_dt: float,
    velocities: object | None = None,
) -> np.ndarray | Reply:
    """Check a timed trajectory and resample it to one command per control tick.

    Args:
        limits: the robot's limits.
        names: the trajectory's element names (any order; optional names may be left out).
        positions: (N, len(names)) knot positions.
        time_from_start: (N,) knot times (s) from the trajectory start, strictly increasing, >= 0.
        current: (D,) the current command vector (where the trajectory must start from).
        control_dt: control period (s).
        velocities: optional (N, len(names)) knot velocities: cubic Hermite interpolation instead of linear.

    Returns:
        (K, D) float64 commands for the ticks ``0 .. K-1`` after the start (tick 0 = the start), or a
        rejection naming the field and the limit.
    """
    order = _name_order(limits, list(names) if isinstance(names, (list, tuple)) else names)
    if isinstance(order, Reply):
        return order
    t_in = np.asarray(time_from_start)
    if t_in.ndim != 1 or t_in.shape[0] < 1:
        return rejected("shape", "time_from_start", f"shape {t_in.shape}", "(N >= 1,)")
    n = t_in.shape[0]
    if n > limits.max_points:
        return rejected("too_long", "points", f"{n} points", f"<= {limits.max_points}")
    t = _as_float_array("time_from_start", t_in, (n,))
    if isinstance(t, Reply):
        return t
    q = _as_float_array("positions", positions, (n, len(order)))
    if isinstance(q, Reply):
        return q
    v: np.ndarray | None = None
    if velocities is not None:
        checked = _as_float_array("velocities", velocities, (n, len(order)))
        if isinstance(checked, Reply):
            return checked
        v = checked
    for label, arr in (("time_from_start", t), ("positions", q), ("velocities", v)):
        if arr is not None and not np.isfinite(arr).all():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            where = f"{label}[{idx[0]}" + (f", {limits.names[order[idx[1]]]}]" if len(idx) > 1 else "]")
            return rejected("non_finite", where, f"{arr[idx]} is not finite", "finite numbers (no NaN or inf)")
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        return rejected(
            "timing",
            "time_from_start",
            f"{np.array2string(t, precision=4, threshold=6)}",
            "non-negative and strictly increasing",
        )
    if t[-1] > limits.max_duration_s:
        return rejected("too_long", "time_from_start", f"ends at {t[-1]:.3f} s", f"<= {limits.max_duration_s} s")

    # Full command vectors: columns in command order, left-out (optional) elements held at the current command.
    full = np.tile(np.asarray(current, dtype=np.float64), (n, 1))
    full[:, order] = q
    lo, hi = limits.lower, limits.upper
    bad = np.argwhere((full < lo) | (full > hi))
    if len(bad):
        i, j = (int(x) for x in bad[0])
        return rejected(
            "position_limit", f"positions[{i}, {limits.names[j]}]", f"{full[i, j]:.6g}", f"[{lo[j]:.6g}, {hi[j]:.6g}]"
        )
    vel = None
    if v is not None:
        vel = np.zeros_like(full)
        vel[:, order] = v

    # Start: a first knot after t=0 is reached from the current command; a knot at t=0 must be (near) it.
    if t[0] > 0.5 * control_dt:
        t = np.concatenate([[0.0], t])
        full = np.vstack([current, full])
        if vel is not None:
            vel = np.vstack([np.zeros(len(current)), vel])
    else:
        # elements without a velocity limit (a gripper's width) may step; the others must start where they are
        dev = np.where(np.isfinite(limits.max_velocity), np.abs(full[0] - current), 0.0)
        j = int(np.argmax(dev))
        if dev[j] > limits.start_tolerance:
            return rejected(
                "jump",
                f"positions[0, {limits.names[j]}]",
                f"starts {dev[j]:.4g} away from the current command {current[j]:.6g}",
                f"<= {limits.start_tolerance} (start tolerance)",
            )
    if len(t) > 1:
        speed = np.abs(np.diff(full, axis=0)) / np.diff(t)[:, None]
        over = speed > limits.max_velocity * (1.0 + limits.velocity_tolerance)
        if over.any():
            i, j = (int(x) for x in np.argwhere(over)[0])
            return rejected(
                "jump",
                f"positions[{i}..{i + 1}, {limits.names[j]}]",
                f"needs {speed[i, j]:.4g}/s between t={t[i]:.4f} s and t={t[i + 1]:.4f} s",
                f"|velocity| <= {limits.max_velocity[j]:.6g}/s",
            )
    ticks = np.arange(math.floor(t[-1] / control_dt + 1e-9) + 1) * control_dt
    return resample(t, full, ticks, vel)


def resample(t: np.ndarray, q: np.ndarray, at: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
    """Values of the knots ``(t, q)`` at times ``at``: cubic Hermite with knot velocities ``v``, else linear.
    Held at the last knot after it."""
    if len(t) == 1:
        return np.repeat(q[:1], len(at), axis=0)
    if v is None:
        return np.stack([np.interp(at, t, q[:, j]) for j in range(q.shape[1])], axis=1)
    i = np.clip(np.searchsorted(t, at, side="right") - 1, 0, len(t) - 2)
    h = (t[i + 1] - t[i])[:, None]
    s = np.clip((at - t[i])[:, None] / h, 0.0, 1.0)
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * q[i]
        + (s3 - 2 * s2 + s) * h * v[i]
        + (-2 * s3 + 3 * s2) * q[i + 1]
        + (s3 - s2) * h * v[i + 1]
    )


def min_jerk_move(
    start: np.ndarray, goal: np.ndarray, max_velocity: np.ndarray, control_dt: float, min_duration_s: float = 0.2
) -> np.ndarray:
    """A minimum-jerk move from ``start`` to ``goal`` sampled per control tick (first row = ``start``).

    The duration is the shortest for which every element's peak velocity (1.875 x mean) stays within
    ``max_velocity``, and at least ``min_duration_s``.
    """
    delta = np.asarray(goal, dtype=np.float64) - np.asarray(start, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(np.isfinite(max_velocity), 1.875 * np.abs(delta) / max_velocity, 0.0)
    duration = max(min_duration_s, float(np.max(needed)) if len(needed) else 0.0)
    ticks = math.ceil(duration / control_dt - 1e-9)
    x = np.arange(ticks + 1) / ticks
    ramp = x**3 * (10.0 + x * (-15.0 + 6.0 * x))
    return start + ramp[:, None] * delta


def check_quaternion(field: str, quaternion: object) -> np.ndarray | Reply:
    """A (w, x, y, z) quaternion normalized, or a rejection if it is malformed or far from unit norm."""
    qt = _as_float_array(field, quaternion, (4,))
    if isinstance(qt, Reply):
        return qt
    if not np.isfinite(qt).all():
        return rejected("non_finite", field, f"{qt.tolist()}", "finite numbers (no NaN or inf)")
    norm = float(np.linalg.norm(qt))
    if not 0.9 < norm < 1.1:
        return rejected("quaternion", field, f"|q| = {norm:.4g}", "a unit quaternion (|q| within 10% of 1)")
    return qt / norm
