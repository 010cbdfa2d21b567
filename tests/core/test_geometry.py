import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rcs.geometry import (
    Pose,
    matrix_to_quat,
    quat_angle,
    quat_from_euler_rpy,
    quat_from_rotvec,
    quat_multiply,
    quat_to_euler_rpy,
    quat_to_matrix,
    quat_to_rotvec,
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
