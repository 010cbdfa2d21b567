"""Joint-delta action chunks on a joint-position control loop: the robot side of a policy trained on
``rcs record --relative --control-mode joint`` data.

Each step of such a policy is the change of every joint's target since the previous step (rad), plus the gripper
target (normalized width, absolute, as in every arm action mode). The env added each change to its previous joint
*target* (:class:`rcs.envs.arm_actions.JointRelative`); here a chunk is integrated from the joint command the
executor has planned for the chunk's start tick (the target it continues from), so the executor, watchdog and
safety filter see joint targets as from any other policy. Entry names: ``delta_<joint>`` per joint, then
``gripper``; unit ``rad/step``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rcs.validation import as_chunk

#: prefix of a joint-delta entry name (``delta_joint1``).
DELTA_PREFIX = "delta_"
#: unit string of a joint-delta action tensor on the wire.
JOINT_DELTA_UNIT = "rad/step"


def joint_delta_names(joint_names: Sequence[str], has_gripper: bool) -> tuple[str, ...]:
    """Entry names of a joint-delta action for an arm with these joints (and gripper)."""
    return (*(DELTA_PREFIX + j for j in joint_names), *(("gripper",) if has_gripper else ()))


def is_joint_delta_layout(names: Sequence[str]) -> bool:
    """Whether action entry names are joint deltas (``delta_<joint>``..., optionally + ``"gripper"``)."""
    joints = [n for n in names if n != "gripper"]
    return bool(joints) and all(n.startswith(DELTA_PREFIX) for n in joints) and list(names[: len(joints)]) == joints


class JointDeltasToTargets:
    """Converts joint-delta chunks to the executor's joint targets, and joint commands back to deltas.

    Args:
        joint_names: the executor's joint order.
        has_gripper: whether both layouts end with ``"gripper"`` (passed through unchanged).
        measured_joints: the arm's measured joint positions (rad): the start of the first chunk, before the
            executor has commanded anything.
    """

    def __init__(
        self, joint_names: Sequence[str], has_gripper: bool, measured_joints: Callable[[], np.ndarray]
    ) -> None:
        self.dof = len(joint_names)
        self.measured_joints = measured_joints
        #: the policy's action names (what the server must declare).
        self.names_in: tuple[str, ...] = joint_delta_names(joint_names, has_gripper)
        #: the executor's action names.
        self.names_out: tuple[str, ...] = (*joint_names, *(("gripper",) if has_gripper else ()))

    def to_executor(self, deltas: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        """(H, dof[+1]) deltas -> (H, dof[+1]) joint targets, integrated from ``seed`` (the executor's command at
        the chunk start, rad) or, for ``None``, the measured joints.

        Raises:
            ValueError: wrong shape or a non-finite value (names the step).
        """
        deltas = as_chunk("joint-delta chunk", deltas, self.names_in)
        start = np.asarray(self.measured_joints() if seed is None else seed, dtype=np.float64)[: self.dof]
        out = deltas.copy()
        out[:, : self.dof] = start + np.cumsum(deltas[:, : self.dof], axis=0)
        return out

    def from_executor(self, values: np.ndarray) -> np.ndarray:
        """(K, dof[+1]) joint commands -> (K, dof[+1]) deltas from the row before (the first row: no change)."""
        values = np.asarray(values, dtype=np.float64)
        out = values.copy()
        out[:, : self.dof] = np.diff(values[:, : self.dof], axis=0, prepend=values[:1, : self.dof])
        return out
