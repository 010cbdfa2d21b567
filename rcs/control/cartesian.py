"""Cartesian TCP-pose action chunks on a joint-position control loop: the robot side of a pose policy.

A policy trained on Cartesian-absolute targets outputs, per step, the TCP position ``x y z`` (m, arm base
frame), the TCP orientation and, if the arm has one, the gripper target. Two orientation layouts
(:class:`PoseLayout`): the 6D rotation of ``rcs_diffusion`` with ``action_target="tcp_pose_6d"`` (the first two
columns of the rotation matrix, :data:`rcs.geometry.ROTATION_6D_NAMES`; continuous, unlike a rotation vector near
pi or a quaternion's two signs), and the rotation vector ``rx ry rz`` that ``rcs record`` writes in Cartesian
mode, which any policy trained directly on such a dataset (lerobot's ``lerobot-train`` included) outputs. The chunk
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
from dataclasses import dataclass

import numpy as np

from rcs.devices import Arm, Kinematics
from rcs.geometry import (
    ROTATION_6D_NAMES,
    matrix_from_rotation_6d,
    matrix_to_quat,
    quat_conjugate,
    quat_from_rotvec,
    quat_multiply,
    quat_to_matrix,
    quat_to_rotvec,
    rotation_6d_from_matrix,
)
from rcs.validation import as_chunk

log = logging.getLogger(__name__)


def _quats_from_6d(block: np.ndarray) -> np.ndarray:
    return np.array([matrix_to_quat(m) for m in matrix_from_rotation_6d(block)])


def _6d_from_quat(q: np.ndarray) -> np.ndarray:
    return rotation_6d_from_matrix(quat_to_matrix(q))


def _quats_from_rotvecs(block: np.ndarray) -> np.ndarray:
    return np.array([quat_from_rotvec(v) for v in block])


@dataclass(frozen=True)
class PoseLayout:
    """A TCP-pose action layout: a position block (3, m, arm base frame), then an orientation block, then
    optionally ``gripper`` (normalized width target, passed through).

    Attributes:
        rotation_names: entry names of the orientation block.
        unit: unit string of the action tensor on the wire (docs/protocol.md: units are compared as strings).
        to_quaternions: (H, k) orientation block -> (H, 4) quaternions (w x y z); ValueError if degenerate.
        from_quaternion: (4,) quaternion -> (k,) orientation block.
        position_names: entry names of the position block.
        relative: each step is a change of the previous step's target (``rcs record --relative``): position
            added (m), rotation applied in the base frame (``q_k = dq_k q_(k-1)``), as
            :class:`rcs.envs.arm_actions.CartesianRelative` does.
    """

    rotation_names: tuple[str, ...]
    unit: str
    to_quaternions: Callable[[np.ndarray], np.ndarray]
    from_quaternion: Callable[[np.ndarray], np.ndarray]
    position_names: tuple[str, ...] = ("x", "y", "z")
    relative: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Entry names without the gripper."""
        return (*self.position_names, *self.rotation_names)

    def names_for(self, has_gripper: bool) -> tuple[str, ...]:
        """Entry names for an arm with or without a gripper."""
        return (*self.names, *(("gripper",) if has_gripper else ()))

    def matches(self, names: Sequence[str]) -> bool:
        """Whether ``names`` are this layout (optionally + ``"gripper"``)."""
        names = tuple(names)
        return names[: len(self.names)] == self.names and names[len(self.names) :] in ((), ("gripper",))


#: what ``rcs train --pose-targets`` policies output: the continuous 6D rotation (:data:`ROTATION_6D_NAMES`).
ROTATION_6D_POSE = PoseLayout(ROTATION_6D_NAMES, "m,rot6d", _quats_from_6d, _6d_from_quat)
#: what ``rcs record`` writes in Cartesian mode (absolute targets): a rotation vector (axis * angle, rad), so a
#: policy trained on such a dataset (lerobot's own ``lerobot-train`` included) outputs it.
ROTATION_VECTOR_POSE = PoseLayout(("rx", "ry", "rz"), "m,rotvec", _quats_from_rotvecs, quat_to_rotvec)
#: what ``rcs record --relative`` writes in Cartesian mode: per-step changes of the TCP target (m, rotation vector).
DELTA_POSE = PoseLayout(
    ("delta_rx", "delta_ry", "delta_rz"),
    "m,rotvec/step",
    _quats_from_rotvecs,
    quat_to_rotvec,
    ("delta_x", "delta_y", "delta_z"),
    relative=True,
)
POSE_LAYOUTS: tuple[PoseLayout, ...] = (ROTATION_6D_POSE, ROTATION_VECTOR_POSE, DELTA_POSE)

#: entry names of a 6D TCP pose action: position (m) then 6D rotation.
POSE_6D_NAMES: tuple[str, ...] = ROTATION_6D_POSE.names
#: unit string of a 6D pose action tensor on the wire.
POSE_6D_UNIT = ROTATION_6D_POSE.unit


def pose_layout_of(names: Sequence[str]) -> PoseLayout | None:
    """The TCP-pose layout of action entry names, ``None`` for anything else (e.g. joint targets)."""
    return next((layout for layout in POSE_LAYOUTS if layout.matches(names)), None)


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
        layout: the policy's pose layout (default the 6D rotation).
    """

    def __init__(
        self,
        kinematics: Kinematics,
        joint_names: Sequence[str],
        has_gripper: bool,
        measured_joints: Callable[[], np.ndarray],
        layout: PoseLayout = ROTATION_6D_POSE,
    ) -> None:
        self.kinematics = kinematics
        self.measured_joints = measured_joints
        self.layout = layout
        self.dof = len(joint_names)
        #: the policy's action names (what the server must declare).
        self.names_in: tuple[str, ...] = layout.names_for(has_gripper)
        #: the executor's action names.
        self.names_out: tuple[str, ...] = (*joint_names, *(("gripper",) if has_gripper else ()))
        #: waypoints whose IK did not converge (best-effort solution used).
        self.ik_misses = 0
        #: waypoints converted.
        self.waypoints = 0

    @classmethod
    def for_arm(
        cls, arm: Arm, measured_joints: Callable[[], np.ndarray], layout: PoseLayout = ROTATION_6D_POSE
    ) -> PoseChunkToJoints:
        """The map for ``arm``'s executor layout, on a private copy of its kinematics."""
        return cls(
            copy.deepcopy(arm.kinematics), arm.spec.joint_names, arm.spec.gripper is not None, measured_joints, layout
        )

    def to_executor(self, poses: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        """(H, 3 + k[+1]) pose chunk (k: the layout's orientation block) -> (H, dof[+1]) joint chunk; ``seed``:
        the executor's command (rad) to start the IK from, ``None`` for the measured joints. A relative layout's
        steps are integrated from the TCP pose of that command (the target the chunk continues from).

        Raises:
            ValueError: wrong shape, a non-finite value, or a degenerate 6D rotation (names the step).
        """
        poses = as_chunk("pose chunk", poses, self.names_in)
        end = len(self.layout.names)
        try:
            quaternions = self.layout.to_quaternions(poses[:, 3:end])
        except ValueError as e:
            raise ValueError(f"pose chunk: {e}") from None
        q = np.asarray(self.measured_joints() if seed is None else seed, dtype=np.float64)[: self.dof]
        positions = poses[:, :3]
        if self.layout.relative:
            positions, quaternions = self._integrate(q, poses[:, :3], quaternions)
        out = np.empty((len(poses), len(self.names_out)))
        for k, (position, quaternion) in enumerate(zip(positions, quaternions, strict=True)):
            result = self.kinematics.inverse(position, quaternion, q)
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
        out[:, self.dof :] = poses[:, end:]
        self.waypoints += len(poses)
        return out

    def _integrate(self, start: np.ndarray, steps: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Absolute TCP poses of per-step changes, from the pose of joints ``start``: (H, 3) m, (H, 4) wxyz."""
        position, quaternion = self.kinematics.forward(start)
        positions, quaternions = np.empty((len(steps), 3)), np.empty((len(steps), 4))
        for k, (step, rotation) in enumerate(zip(steps, rotations, strict=True)):
            position = position + step
            quaternion = quat_multiply(rotation, quaternion)
            positions[k], quaternions[k] = position, quaternion
        return positions, quaternions

    def from_executor(self, values: np.ndarray) -> np.ndarray:
        """(K, dof[+1]) joint commands -> (K, 3 + k[+1]) TCP poses by forward kinematics (e.g. the committed
        prefix). For a relative layout each row is the change from the row before; the first row, whose
        predecessor the prefix does not hold, is no change."""
        values = np.asarray(values, dtype=np.float64)
        end = len(self.layout.names)
        out = np.empty((len(values), len(self.names_in)))
        previous: tuple[np.ndarray, np.ndarray] | None = None
        for k, row in enumerate(values):
            position, quaternion = self.kinematics.forward(row[: self.dof])
            if self.layout.relative:
                before = previous or (position, quaternion)
                out[k, :3] = position - before[0]
                out[k, 3:end] = self.layout.from_quaternion(quat_multiply(quaternion, quat_conjugate(before[1])))
                previous = (position, quaternion)
            else:
                out[k, :3] = position
                out[k, 3:end] = self.layout.from_quaternion(quaternion)
        out[:, end:] = values[:, self.dof :]
        return out
