"""Trajectory checks and resampling (rcs.remote.commands): every bad input rejected with its field and limit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rcs.remote.commands import TrajectoryLimits, check_quaternion, min_jerk_move, plan_trajectory, resample
from rcs.remote.wire import Reply

NAMES = ("a", "b", "gripper")
LIMITS = TrajectoryLimits(
    NAMES,
    np.array([-1.0, -1.0, 0.0]),
    np.array([1.0, 1.0, 1.0]),
    np.array([2.0, 2.0, math.inf]),
    frozenset({"gripper"}),
    start_tolerance=0.05,
)
DT = 0.01
CURRENT = np.array([0.1, -0.2, 0.5])


def plan(names, positions, times, velocities=None, current=CURRENT):
    return plan_trajectory(LIMITS, names, positions, times, current, DT, velocities)


def rejected_code(result) -> str:
    assert isinstance(result, Reply) and not result.ok, result
    return result.code


def test_linear_resampling_from_the_current_command_to_the_last_point() -> None:
    out = plan(["a", "b"], [[0.3, -0.2]], [0.5])
    assert isinstance(out, np.ndarray) and out.shape == (51, 3)
    np.testing.assert_allclose(out[0], CURRENT)  # prepended: starts where the robot is
    np.testing.assert_allclose(out[-1], [0.3, -0.2, 0.5])  # the gripper (optional) is held
    np.testing.assert_allclose(out[25, 0], 0.2, atol=1e-12)  # halfway


def test_names_in_any_order_are_reordered() -> None:
    out = plan(["b", "gripper", "a"], [[-0.2, 0.9, 0.1], [-0.2, 0.9, 0.3]], [0.0, 0.5])
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out[-1], [0.3, -0.2, 0.9])


def test_hermite_with_knot_velocities_passes_through_the_knots() -> None:
    t = np.array([0.0, 0.2, 0.4])
    q = np.array([[0.0], [0.1], [0.3]])
    v = np.array([[0.0], [0.75], [0.0]])
    at = np.linspace(0, 0.4, 41)
    out = resample(t, q, at, v)
    np.testing.assert_allclose(out[[0, 20, 40], 0], [0.0, 0.1, 0.3], atol=1e-12)
    assert np.all(np.diff(out[:, 0]) >= 0)


@pytest.mark.parametrize(
    ("names", "positions", "times", "code", "needle"),
    [
        (["a", "x"], [[0.1, 0.0]], [1.0], "names", "unknown names ['x']"),
        (["a", "a"], [[0.1, 0.1]], [1.0], "names", "duplicate"),
        (["a"], [[0.1]], [1.0], "names", "missing names ['b']"),
        (["a", "b"], [[0.1, 0.2, 0.3]], [1.0], "shape", "shape (1, 3)"),
        (["a", "b"], [[0.1, 0.2]], [1.0, 2.0], "shape", "shape (1, 2)"),
        (["a", "b"], [[math.nan, 0.2]], [1.0], "non_finite", "positions[0, a]"),
        (["a", "b"], [[0.1, 0.2]], [math.inf], "non_finite", "time_from_start[0]"),
        (["a", "b"], [[0.1, 0.2], [0.1, 0.2]], [1.0, 1.0], "timing", "strictly increasing"),
        (["a", "b"], [[0.1, 0.2]], [-1.0], "timing", "non-negative"),
        (["a", "b"], [[0.1, 0.2]], [100.0], "too_long", "<= 60.0 s"),
        (["a", "b"], [[1.5, 0.2]], [2.0], "position_limit", "positions[0, a]"),
        (["a", "b"], [[0.5, -0.2]], [0.0], "jump", "start tolerance"),
        (["a", "b"], [[0.9, -0.2]], [0.1], "jump", "|velocity| <= 2/s"),
        (["a", "b"], [["x", "y"]], [1.0], "dtype", "positions"),
        ("ab", [[0.1, 0.2]], [1.0], "names", "a list of strings"),
    ],
)
def test_bad_trajectories_are_rejected_with_field_and_limit(names, positions, times, code, needle) -> None:
    result = plan(names, positions, times)
    assert rejected_code(result) == code
    assert needle in str(result)


def test_velocity_check_uses_the_slack() -> None:
    # 2.0 rad/s limit with 5 % slack: 0.2 rad in 0.1 s (2.0/s) passes, 0.22 rad (2.2/s) does not
    assert isinstance(plan(["a", "b"], [[0.3, -0.2]], [0.1]), np.ndarray)
    assert rejected_code(plan(["a", "b"], [[0.32, -0.2]], [0.1])) == "jump"


def test_min_jerk_move_respects_velocity_limits_and_ends_at_the_goal() -> None:
    start, goal = np.array([0.0, 0.0]), np.array([1.0, -0.5])
    vmax = np.array([1.0, 1.0])
    out = min_jerk_move(start, goal, vmax, DT)
    np.testing.assert_allclose(out[0], start)
    np.testing.assert_allclose(out[-1], goal)
    assert np.max(np.abs(np.diff(out, axis=0)) / DT) <= 1.0 + 1e-6


def test_quaternion_checks() -> None:
    np.testing.assert_allclose(check_quaternion("q", [1.02, 0, 0, 0]), [1.0, 0, 0, 0])
    assert rejected_code(check_quaternion("q", [0.0, 0, 0, 0])) == "quaternion"
    assert rejected_code(check_quaternion("q", [math.nan, 0, 0, 1])) == "non_finite"
    assert rejected_code(check_quaternion("q", [1.0, 0, 0])) == "shape"
