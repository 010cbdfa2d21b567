import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rcs.geometry import (
    Pose,
    matrix_from_rotation_6d,
    matrix_to_quat,
    quat_angle,
    quat_from_euler_rpy,
    quat_from_rotvec,
    quat_multiply,
    quat_to_euler_rpy,
    quat_to_matrix,
    quat_to_rotvec,
    rotation_6d_from_matrix,
    rotvec_to_matrix,
)

angles = st.floats(-np.pi + 1e-3, np.pi - 1e-3)


@given(angles, st.floats(-1.5, 1.5), angles)
@settings(max_examples=200, deadline=None)
def test_euler_round_trip(r, p, y):
    q = quat_from_euler_rpy(r, p, y)
    np.testing.assert_allclose(quat_to_euler_rpy(q), [r, p, y], atol=1e-9)


@given(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3))
@settings(max_examples=200, deadline=None)
def test_rotvec_and_matrix_round_trip(v):
    v = np.asarray(v)
    q = quat_from_rotvec(v)
    assert quat_angle(matrix_to_quat(quat_to_matrix(q)), q) < 1e-6
    assert quat_angle(quat_from_rotvec(quat_to_rotvec(q)), q) < 1e-6


def test_rep103_yaw_rotates_x_to_y():
    # +90 deg yaw (about world z, REP-103 counter-clockwise seen from above) maps x forward to y left.
    q = quat_from_euler_rpy(0, 0, np.pi / 2)
    np.testing.assert_allclose(quat_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_pose_compose_inverse_identity():
    a = Pose([0.1, -0.2, 0.3], quat_from_euler_rpy(0.3, -0.2, 1.0))
    i = a.compose(a.inverse())
    np.testing.assert_allclose(i.position, 0, atol=1e-12)
    assert quat_angle(i.quaternion, [1, 0, 0, 0]) < 1e-9
    np.testing.assert_allclose(Pose.from_matrix(a.as_matrix()).position, a.position)


def test_quat_multiply_matches_matrices():
    a, b = quat_from_euler_rpy(0.1, 0.2, 0.3), quat_from_euler_rpy(-0.5, 0.4, 2.0)
    np.testing.assert_allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12)


@given(st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3))
@settings(max_examples=200, deadline=None)
def test_rotvec_to_matrix_and_6d_round_trip(v):
    v = np.asarray(v)
    m = rotvec_to_matrix(v)
    np.testing.assert_allclose(m, quat_to_matrix(quat_from_rotvec(v)), atol=1e-12)
    np.testing.assert_allclose(matrix_from_rotation_6d(rotation_6d_from_matrix(m)), m, atol=1e-12)


def test_6d_rotation_is_continuous_where_the_rotation_vector_jumps():
    """A tool pointing down is a half turn: its rotation vector flips sign as the tool tilts through vertical
    (0.2 mrad apart here); the 6D representation moves by as little as the orientation does."""
    a, b = (quat_to_matrix(quat_from_euler_rpy(np.pi + d, 0.0, 0.3)) for d in (-1e-4, 1e-4))
    assert np.linalg.norm(quat_to_rotvec(matrix_to_quat(a)) - quat_to_rotvec(matrix_to_quat(b))) > 3.0
    assert np.linalg.norm(rotation_6d_from_matrix(a) - rotation_6d_from_matrix(b)) < 1e-3
    # batched, and an unnormalized vector (a regressed one) is orthonormalized
    r6 = rotation_6d_from_matrix(np.stack([a, b])) * np.array([[2.0], [0.5]])
    r6[:, 3:] += 0.1 * r6[:, :3]
    for m, expected in zip(matrix_from_rotation_6d(r6), (a, b), strict=True):
        np.testing.assert_allclose(m, expected, atol=1e-12)


def test_degenerate_6d_rotations_are_refused():
    import pytest

    with pytest.raises(ValueError, match="first column"):
        matrix_from_rotation_6d(np.zeros(6))
    with pytest.raises(ValueError, match="parallel"):
        matrix_from_rotation_6d(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        matrix_from_rotation_6d(np.array([np.nan, 0, 0, 0, 1.0, 0]))
