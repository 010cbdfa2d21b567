"""Cartesian TCP-pose action chunks on a joint-position control loop: the robot side of a pose policy.

A policy trained on Cartesian-absolute targets (``rcs_diffusion`` with ``action_target="tcp_pose_6d"``)
outputs, per step, the TCP position ``x y z`` (m, arm base frame), the TCP orientation as a 6D rotation
(the first two columns of its rotation matrix, :data:`rcs.geometry.ROTATION_6D_NAMES`; continuous, unlike a
rotation vector near pi or a quaternion's two signs) and, if the arm has one, the gripper target. The chunk
executor, watchdog and safety filter of an arm work on joint-position commands, so the robot side turns each
arriving chunk into joint targets with the arm's own inverse kinematics before the executor sees it: the
same IK that :meth:`rcs.devices.Arm.command_cartesian_pose` runs when demonstrations are recorded in
Cartesian mode. Each waypoint's solve starts from the previous waypoint's solution, the first from the joint
command the executor has planned for the chunk's start tick, so consecutive chunks keep the same
arm configuration (a 7-joint arm has a free elbow).

An unreachable waypoint gets the IK's best joint-limit-respecting solution and is counted in
:attr:`PoseChunkToJoints.ik_misses`; the safety filter bounds what follows, as for any command. A chunk with
a non-finite value or a degenerate rotation is refused as a whole (:class:`ValueError`), like any malformed
chunk: the robot keeps executing what it had and the watchdog acts if nothing valid follows.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

import numpy as np

from rcs.devices import Arm, Kinematics
from rcs.geometry import (
    ROTATION_6D_NAMES,
    matrix_from_rotation_6d,
    matrix_to_quat,
    quat_to_matrix,
    rotation_6d_from_matrix,
)

log = logging.getLogger(__name__)

#: entry names of a TCP pose action: position (m) then 6D rotation.
POSE_6D_NAMES: tuple[str, ...] = ("x", "y", "z", *ROTATION_6D_NAMES)
#: unit string of a pose action tensor on the wire (docs/protocol.md: units are compared as strings).
POSE_6D_UNIT = "m,rot6d"


def pose_6d_names(has_gripper: bool) -> tuple[str, ...]:
    """Action entry names of a pose policy for an arm with or without a gripper."""
    return (*POSE_6D_NAMES, *(("gripper",) if has_gripper else ()))


def is_pose_6d_layout(names: Sequence[str]) -> bool:
    """Whether action entry names are a TCP pose (:data:`POSE_6D_NAMES`, optionally + ``"gripper"``)."""
    names = tuple(names)
    return names[: len(POSE_6D_NAMES)] == POSE_6D_NAMES and names[len(POSE_6D_NAMES) :] in ((), ("gripper",))


class PoseChunkToJoints:
    """Converts TCP-pose chunks to the executor's joint layout, and joint commands back to poses.

    Args:
        kinematics: the arm's kinematics. Give it a private copy (``copy.deepcopy(arm.kinematics)``): IK
            runs in the thread that receives chunks, while the control thread's safety filter may use the
            arm's own instance.
        joint_names: the executor's joint order.
        has_gripper: whether both layouts end with ``"gripper"`` (passed through unchanged).
        measured_joints: returns the arm's measured joint positions (rad); the start of the first chunk's IK,
            before the executor has commanded anything.
    """

    def __init__(
        self,
        kinematics: Kinematics,
        joint_names: Sequence[str],
        has_gripper: bool,
        measured_joints: Callable[[], np.ndarray],
    ) -> None:
        self.kinematics = kinematics
        self.measured_joints = measured_joints
        self.dof = len(joint_names)
        #: the policy's action names (what the server must declare).
        self.names_in: tuple[str, ...] = pose_6d_names(has_gripper)
        #: the executor's action names.
        self.names_out: tuple[str, ...] = (*joint_names, *(("gripper",) if has_gripper else ()))
        #: waypoints whose IK did not converge (best-effort solution used).
        self.ik_misses = 0
        #: waypoints converted.
        self.waypoints = 0

    @classmethod
    def for_arm(cls, arm: Arm, measured_joints: Callable[[], np.ndarray]) -> PoseChunkToJoints:
        """The map for ``arm``'s executor layout, on a private copy of its kinematics."""
        return cls(copy.deepcopy(arm.kinematics), arm.spec.joint_names, arm.spec.gripper is not None, measured_joints)

    def to_executor(self, poses: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        """(H, 9[+1]) pose chunk -> (H, dof[+1]) joint chunk; ``seed``: the executor's command (rad) to start
        the IK from, ``None`` for the measured joints.

        Raises:
            ValueError: wrong shape, a non-finite value, or a degenerate 6D rotation (names the step).
        """
        poses = np.asarray(poses, dtype=np.float64)
        width = len(self.names_in)
        if poses.ndim != 2 or poses.shape[1] != width:
            raise ValueError(f"pose chunk shape {poses.shape}: expected (H, {width}) {self.names_in}")
        if not np.all(np.isfinite(poses)):
            step = int(np.flatnonzero(~np.all(np.isfinite(poses), axis=1))[0])
            raise ValueError(f"pose chunk step {step} is not finite: {poses[step].tolist()}")
        try:
            rotations = matrix_from_rotation_6d(poses[:, 3:9])
        except ValueError as e:
            raise ValueError(f"pose chunk: {e}") from None
        q = np.asarray(self.measured_joints() if seed is None else seed, dtype=np.float64)[: self.dof]
        out = np.empty((len(poses), len(self.names_out)))
        for k, (pose, rotation) in enumerate(zip(poses, rotations, strict=True)):
            result = self.kinematics.inverse(pose[:3], matrix_to_quat(rotation), q)
            if not result.converged:
                self.ik_misses += 1
                log.debug(
                    "pose chunk step %d: IK residual %.1f mm / %.1f deg (best effort)",
                    k,
                    1e3 * result.position_error,
                    np.rad2deg(result.orientation_error),
                )
            q = result.joint_positions
            out[k, : self.dof] = q
        out[:, self.dof :] = poses[:, 9:]
        self.waypoints += len(poses)
        return out

    def from_executor(self, values: np.ndarray) -> np.ndarray:
        """(K, dof[+1]) joint commands -> (K, 9[+1]) TCP poses by forward kinematics (e.g. the committed prefix)."""
        values = np.asarray(values, dtype=np.float64)
        out = np.empty((len(values), len(self.names_in)))
        for k, row in enumerate(values):
            position, quaternion = self.kinematics.forward(row[: self.dof])
            out[k, :3] = position
            out[k, 3:9] = rotation_6d_from_matrix(quat_to_matrix(quaternion))
        out[:, 9:] = values[:, self.dof :]
        return out
