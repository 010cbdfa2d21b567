"""Joint-delta chunks (rcs record --relative --control-mode joint) -> joint targets (rcs.control.joint_deltas)."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.control.joint_deltas import JointDeltasToTargets, is_joint_delta_layout, joint_delta_names

JOINTS = ("j1", "j2", "j3")


def test_layout_names():
    assert joint_delta_names(JOINTS, True) == ("delta_j1", "delta_j2", "delta_j3", "gripper")
    assert is_joint_delta_layout(["delta_j1", "delta_j2", "gripper"]) and is_joint_delta_layout(["delta_j1"])
    assert not is_joint_delta_layout(["j1", "delta_j2", "gripper"]) and not is_joint_delta_layout(["gripper"])
    assert not is_joint_delta_layout(["delta_x", "gripper", "delta_y"])  # the gripper comes last


def test_deltas_are_integrated_from_the_chunk_start_command_and_back():
    m = JointDeltasToTargets(JOINTS, True, lambda: np.array([9.0, 9.0, 9.0]))
    deltas = np.array([[0.1, 0.0, -0.2, 1.0], [0.1, 0.05, 0.0, 0.5], [0.0, 0.05, 0.1, 0.0]])
    targets = m.to_executor(deltas, np.array([1.0, 2.0, 3.0, 0.7]))
    np.testing.assert_allclose(targets, [[1.1, 2.0, 2.8, 1.0], [1.2, 2.05, 2.8, 0.5], [1.2, 2.1, 2.9, 0.0]])
    # nothing commanded yet: from the measured joints
    np.testing.assert_allclose(m.to_executor(deltas[:1], None)[0, :3], [9.1, 9.0, 8.8])
    back = m.from_executor(targets)
    np.testing.assert_allclose(back[0, :3], 0.0)
    np.testing.assert_allclose(back[1:], deltas[1:], atol=1e-12)


def test_malformed_chunks_are_refused_naming_the_problem():
    m = JointDeltasToTargets(JOINTS, True, lambda: np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(2, 3\): expected \(H, 4\)"):
        m.to_executor(np.zeros((2, 3)), None)
    bad = np.zeros((3, 4))
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="step 2 is not finite"):
        m.to_executor(bad, None)
