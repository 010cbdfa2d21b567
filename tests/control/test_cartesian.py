"""TCP-pose chunks -> joint chunks with the simulated Panda's real kinematics (rcs.control.cartesian)."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.control.cartesian import (
    DELTA_POSE,
    POSE_6D_NAMES,
    ROTATION_6D_POSE,
    ROTATION_VECTOR_POSE,
    PoseChunkToJoints,
    pose_layout_of,
)
from rcs.geometry import quat_to_matrix, quat_to_rotvec, rotation_6d_from_matrix


@pytest.fixture(scope="module")
def panda():
    import gymnasium as gym

    import rcs.envs  # noqa: F401

    env = gym.make("rcs/PandaPickCube-v0")
    env.reset(seed=0)
    yield env.unwrapped.arm
    env.close()


def _mapper(arm) -> PoseChunkToJoints:
    m = PoseChunkToJoints.for_arm(arm, lambda: arm.read().joint_positions.copy())
    assert m.kinematics is not arm.kinematics  # a private copy: the control thread's safety filter uses the arm's
    return m


def _pose_chunk(kin, joints: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    rows = []
    for q, g in zip(joints, gripper, strict=True):
        p, quat = kin.forward(q)
        rows.append([*p, *rotation_6d_from_matrix(quat_to_matrix(quat)), g])
    return np.array(rows)


def test_layout_names():
    assert pose_layout_of([*POSE_6D_NAMES, "gripper"]) is ROTATION_6D_POSE is pose_layout_of(POSE_6D_NAMES)
    assert pose_layout_of([*POSE_6D_NAMES, "joint1"]) is None
    assert pose_layout_of(["x", "y", "z", "rx", "ry", "rz", "gripper"]) is ROTATION_VECTOR_POSE
    assert pose_layout_of(["x", "y", "z", "rx", "ry"]) is None and pose_layout_of(["joint1", "gripper"]) is None
    assert (ROTATION_6D_POSE.unit, ROTATION_VECTOR_POSE.unit) == ("m,rot6d", "m,rotvec")


def test_pose_chunk_becomes_joint_targets_that_reach_the_poses(panda):
    """A chunk of reachable TCP poses (from a joint path) -> joints whose forward kinematics are those poses."""
    m = _mapper(panda)
    assert m.names_out == (*panda.spec.joint_names, "gripper") and m.names_in == (*POSE_6D_NAMES, "gripper")
    q0 = panda.read().joint_positions.copy()
    path = q0 + np.linspace(0.0, 1.0, 16)[:, None] * np.array([0.3, 0.2, -0.2, -0.3, 0.1, 0.2, 0.4])
    gripper = np.linspace(1.0, 0.0, 16)
    poses = _pose_chunk(m.kinematics, path, gripper)
    joints = m.to_executor(poses, np.r_[q0, 1.0])
    assert joints.shape == (16, 8)
    np.testing.assert_allclose(joints[:, 7], gripper)
    for q, pose in zip(joints, poses, strict=True):
        p, quat = m.kinematics.forward(q[:7])
        assert np.linalg.norm(p - pose[:3]) < 1.5e-3
        assert np.linalg.norm(rotation_6d_from_matrix(quat_to_matrix(quat)) - pose[3:9]) < 0.02
    # each solve starts from the previous one: the joint path is continuous (no elbow flip between waypoints)
    # and starts at the seed; the path steps are <= 0.027 rad per joint
    assert np.abs(np.diff(joints[:, :7], axis=0)).max() < 0.1
    np.testing.assert_allclose(joints[0, :7], q0, atol=1e-3)
    assert m.ik_misses == 0 and m.waypoints == 16
    # and back: the committed prefix goes to the policy as poses
    np.testing.assert_allclose(m.from_executor(joints)[:, :3], poses[:, :3], atol=1.5e-3)
    np.testing.assert_allclose(m.from_executor(joints)[:, 9], gripper)


def test_rotation_vector_poses_as_rcs_record_writes_them_reach_the_poses(panda):
    """The Cartesian layout of rcs record (x y z rx ry rz gripper, rotation vector): what lerobot-train policies
    trained on such a dataset output. Includes orientations near pi (a tool pointing down), where the rotation
    vector jumps between equivalent values."""
    m = PoseChunkToJoints.for_arm(panda, lambda: panda.read().joint_positions.copy(), ROTATION_VECTOR_POSE)
    assert m.names_in == ("x", "y", "z", "rx", "ry", "rz", "gripper")
    q0 = panda.read().joint_positions.copy()
    path = q0 + np.linspace(0.0, 1.0, 12)[:, None] * np.array([0.3, 0.2, -0.2, -0.3, 0.1, 0.2, 0.4])
    rows = []
    for q in path:
        p, quat = m.kinematics.forward(q)
        rows.append([*p, *quat_to_rotvec(quat), 0.5])
    poses = np.array(rows)
    assert np.linalg.norm(poses[:, 3:6], axis=1).max() > 2.5  # the gripper points down: angles near pi
    joints = m.to_executor(poses, np.r_[q0, 1.0])
    assert joints.shape == (12, 8) and m.ik_misses == 0
    for q, pose in zip(joints, poses, strict=True):
        p, quat = m.kinematics.forward(q[:7])
        assert np.linalg.norm(p - pose[:3]) < 1.5e-3
        target = quat_to_matrix(ROTATION_VECTOR_POSE.to_quaternions(pose[None, 3:6])[0])
        assert np.linalg.norm(quat_to_matrix(quat) - target) < 0.02
    assert np.abs(np.diff(joints[:, :7], axis=0)).max() < 0.1
    back = m.from_executor(joints)
    np.testing.assert_allclose(back[:, :3], poses[:, :3], atol=1.5e-3)
    np.testing.assert_allclose(back[:, 6], 0.5)


def test_relative_pose_steps_are_integrated_from_the_chunk_start_command(panda):
    """rcs record --relative (Cartesian): per-step TCP changes, position added and rotation applied in the base
    frame, from the pose of the executor's command at the chunk start; the joints reach the integrated poses."""
    from rcs.geometry import quat_conjugate, quat_multiply

    m = PoseChunkToJoints.for_arm(panda, lambda: panda.read().joint_positions.copy(), DELTA_POSE)
    assert m.names_in == ("delta_x", "delta_y", "delta_z", "delta_rx", "delta_ry", "delta_rz", "gripper")
    q0 = panda.read().joint_positions.copy()
    path = q0 + np.linspace(0.0, 1.0, 11)[:, None] * np.array([0.3, 0.2, -0.2, -0.3, 0.1, 0.2, 0.4])
    poses = [m.kinematics.forward(q) for q in path]
    deltas = np.array(
        [
            [*(p1 - p0), *quat_to_rotvec(quat_multiply(r1, quat_conjugate(r0))), 0.25]
            for (p0, r0), (p1, r1) in zip(poses[:-1], poses[1:], strict=True)
        ]
    )
    joints = m.to_executor(deltas, np.r_[q0, 1.0])  # the chunk continues from q0's pose
    assert joints.shape == (10, 8) and m.ik_misses == 0
    np.testing.assert_allclose(joints[:, 7], 0.25)
    for q, (p, quat) in zip(joints, poses[1:], strict=True):
        p_reached, quat_reached = m.kinematics.forward(q[:7])
        assert np.linalg.norm(p_reached - p) < 1.5e-3
        assert np.linalg.norm(quat_to_matrix(quat_reached) - quat_to_matrix(quat)) < 0.02
    # and back: each row of the prefix is the change from the row before (the first: none)
    back = m.from_executor(joints)
    np.testing.assert_allclose(back[0, :6], 0.0, atol=1e-12)
    np.testing.assert_allclose(back[1:, :3], deltas[1:, :3], atol=1.5e-3)


def test_first_chunk_starts_from_the_measured_joints(panda):
    m = _mapper(panda)
    q0 = panda.read().joint_positions.copy()
    poses = _pose_chunk(m.kinematics, np.stack([q0, q0]), np.ones(2))
    np.testing.assert_allclose(m.to_executor(poses, None)[:, :7], np.stack([q0, q0]), atol=1e-3)


def test_unreachable_pose_is_best_effort_and_counted(panda):
    m = _mapper(panda)
    q0 = panda.read().joint_positions.copy()
    pose = _pose_chunk(m.kinematics, q0[None], np.ones(1))
    pose[0, :3] = [3.0, 0.0, 0.5]  # 3 m away: out of reach
    joints = m.to_executor(pose, np.r_[q0, 1.0])
    assert np.all(np.isfinite(joints)) and m.ik_misses == 1
    kin = m.kinematics
    assert np.all(joints[0, :7] >= kin.lower - 1e-9) and np.all(joints[0, :7] <= kin.upper + 1e-9)


def test_malformed_pose_chunks_are_refused_naming_the_problem(panda):
    m = _mapper(panda)
    q0 = panda.read().joint_positions.copy()
    good = _pose_chunk(m.kinematics, np.stack([q0, q0]), np.ones(2))
    bad = good.copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="step 1 is not finite"):
        m.to_executor(bad, None)
    flat = good.copy()
    flat[0, 3:9] = 0.0
    with pytest.raises(ValueError, match="6D rotation"):
        m.to_executor(flat, None)
    with pytest.raises(ValueError, match=r"expected \(H, 10\)"):
        m.to_executor(good[:, :9], None)


def test_bridge_requires_the_pose_layout_from_the_server(panda):
    """A robot bridge with a pose map checks the server's action names against the pose layout, and the
    map's output against the executor's joint order."""
    from rcs.control.task import make_policy_task
    from rcs.serving.chunk_feed import ChunkFeed
    from rcs.serving.client import PolicyClient, SchemaMismatchError
    from rcs.serving.protocol import Schema, TensorSpec

    task = make_policy_task(panda, 100.0)
    m = _mapper(panda)
    obs = (TensorSpec("observation.state", (15,), "float32", ""),)

    def client(names):
        schema = Schema(obs, TensorSpec("action", (16, len(names)), "float32", "", tuple(names)), 0.05)
        return PolicyClient("tcp://127.0.0.1:1", schema)

    joint_client = client(task.executor.names)
    with pytest.raises(SchemaMismatchError, match="differ from the robot's"):
        ChunkFeed(joint_client, task.executor, lambda: None, action_map=m)
    joint_client.close()
    pose_client = client(m.names_in)
    ChunkFeed(pose_client, task.executor, lambda: None, action_map=m)  # accepted
    with pytest.raises(SchemaMismatchError, match="differ from the robot's"):
        ChunkFeed(pose_client, task.executor, lambda: None)
    m.names_out = tuple(reversed(m.names_out))
    with pytest.raises(SchemaMismatchError, match="action map output"):
        ChunkFeed(pose_client, task.executor, lambda: None, action_map=m)
    pose_client.close()
