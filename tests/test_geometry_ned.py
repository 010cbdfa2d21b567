"""NED/FRD (PX4, MAVLink) <-> ENU/FLU (rcs) conversions: round trips and known poses."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.geometry import (
    enu_to_ned,
    flu_to_frd,
    frd_to_flu,
    ned_to_enu,
    quat_angle,
    quat_enu_flu_to_ned_frd,
    quat_from_euler_rpy,
    quat_ned_frd_to_enu_flu,
    quat_normalize,
    quat_to_matrix,
    yaw_enu_to_ned,
    yaw_ned_to_enu,
    yaw_of,
)

R_ENU_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
R_FRD_FLU = np.diag([1.0, -1.0, -1.0])


def _random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return np.array([quat_normalize(x) for x in q])


def test_vectors_swap_east_north_and_flip_up():
    ned = np.array([1.0, 2.0, -3.0])  # 1 m north, 2 m east, 3 m up
    np.testing.assert_array_equal(ned_to_enu(ned), [2.0, 1.0, 3.0])
    np.testing.assert_array_equal(enu_to_ned([2.0, 1.0, 3.0]), ned)
    np.testing.assert_array_equal(frd_to_flu([1.0, 2.0, 3.0]), [1.0, -2.0, -3.0])
    v = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(enu_to_ned(ned_to_enu(v)), v)
    np.testing.assert_allclose(flu_to_frd(frd_to_flu(v)), v)


def test_level_nose_north_is_yaw_plus_half_pi_in_enu():
    q = quat_ned_frd_to_enu_flu(np.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(q, quat_from_euler_rpy(0.0, 0.0, np.pi / 2), atol=1e-12)
    assert yaw_of(q) == pytest.approx(np.pi / 2)


@pytest.mark.parametrize(
    ("yaw_ned", "yaw_enu"),
    [(0.0, np.pi / 2), (np.pi / 2, 0.0), (np.pi, -np.pi / 2), (-np.pi / 2, -np.pi), (np.pi / 4, np.pi / 4)],
)
def test_known_headings(yaw_ned, yaw_enu):
    """North, east, south, west, north-east."""
    assert np.isclose(np.cos(yaw_ned_to_enu(yaw_ned) - yaw_enu), 1.0)
    assert np.isclose(np.cos(yaw_enu_to_ned(yaw_enu) - yaw_ned), 1.0)
    q_ned = np.array([np.cos(yaw_ned / 2), 0.0, 0.0, np.sin(yaw_ned / 2)])
    assert np.isclose(np.cos(yaw_of(quat_ned_frd_to_enu_flu(q_ned)) - yaw_enu), 1.0)


def test_nose_north_pitched_up_points_the_nose_north_and_up():
    """PX4 pitch +0.3 rad (nose up, rotation about FRD y = right wing): the FLU nose axis points north and up."""
    q_ned = np.array([np.cos(0.15), 0.0, np.sin(0.15), 0.0])
    nose = quat_to_matrix(quat_ned_frd_to_enu_flu(q_ned)) @ [1.0, 0.0, 0.0]
    np.testing.assert_allclose(nose, [0.0, np.cos(0.3), np.sin(0.3)], atol=1e-12)


def test_right_wing_down_roll_is_positive_in_both():
    """PX4 roll +0.2 (right wing down) is rcs roll +0.2 (rotation about the forward axis), heading kept."""
    q_ned = np.array([np.cos(0.1), np.sin(0.1), 0.0, 0.0])
    left_wing = quat_to_matrix(quat_ned_frd_to_enu_flu(q_ned)) @ [0.0, 1.0, 0.0]
    # nose north, so the left wing points west (-x ENU), raised by the roll
    np.testing.assert_allclose(left_wing, [-np.cos(0.2), 0.0, np.sin(0.2)], atol=1e-12)


def test_quaternion_matches_the_rotation_matrices_and_round_trips():
    for q_ned in _random_quats(50):
        q_enu = quat_ned_frd_to_enu_flu(q_ned)
        np.testing.assert_allclose(quat_to_matrix(q_enu), R_ENU_NED @ quat_to_matrix(q_ned) @ R_FRD_FLU.T, atol=1e-12)
        assert quat_angle(quat_enu_flu_to_ned_frd(q_enu), q_ned) < 1e-9
        # a body vector expressed either way lands on the same world vector
        v_flu = np.array([0.3, -1.2, 0.7])
        world_enu = quat_to_matrix(q_enu) @ v_flu
        world_ned = quat_to_matrix(q_ned) @ flu_to_frd(v_flu)
        np.testing.assert_allclose(world_enu, ned_to_enu(world_ned), atol=1e-12)


def test_yaw_round_trip_wraps():
    for yaw in np.linspace(-3 * np.pi, 3 * np.pi, 37):
        back = yaw_ned_to_enu(yaw_enu_to_ned(yaw))
        assert -np.pi <= back < np.pi
        assert np.isclose(np.cos(back - yaw), 1.0) and np.isclose(np.sin(back - yaw), 0.0, atol=1e-9)
