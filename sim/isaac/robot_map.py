"""Where an arm's named quantities live in the Isaac world: joints, actuators, the gripper transmission, the
home pose and the TCP. Shared by the one-env arm (:mod:`sim.isaac.arm`, env 0) and the batched pick-cube env
(:mod:`sim.isaac.pick_cube_vector`, every env), so both read and drive the robot the same way.

Units: rad (m for slide joints), m; quaternions (w, x, y, z). Frames: each env's world frame (the MuJoCo scene's),
TCP poses in the arm's base frame ``spec.base_frame``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np

from rcs.errors import ConfigError
from rcs.geometry import quat_conjugate, quat_multiply, quat_rotate
from rcs.spec import ArmSpec

if TYPE_CHECKING:
    from sim.isaac.world import IsaacWorld

GRIPPER = "gripper"


def keyframe_home(robot_model: mujoco.MjModel, scene_model: mujoco.MjModel) -> dict[str, float]:
    """Joint name -> rad (m) of every robot joint (arm and fingers) in the scene's keyframe ``"home"``."""
    key = mujoco.MjData(scene_model)
    mujoco.mj_resetDataKeyframe(scene_model, key, scene_model.key("home").id)
    return {
        name: float(key.joint(name).qpos[0]) for name in (robot_model.joint(j).name for j in range(robot_model.njnt))
    }


class RobotMap:
    """An arm's spec mapped onto the world's joint and actuator order.

    The gripper actuator (named ``"gripper"``) drives a fixed tendon, ``length = sum(coef_i * q_i)`` over the finger
    joints, whose control range ``[closed, opened]`` maps to the normalized width 0..1 (0 closed, 1 open).

    Args:
        spec: the arm (joint names, home, gripper, TCP site, base body).
        robot_model: the robot MJCF the world's USD was converted from.
        scene_model: the scene MJCF whose keyframe ``"home"`` holds every robot joint (arm and fingers).
        world: the Isaac world.
    """

    def __init__(
        self, spec: ArmSpec, robot_model: mujoco.MjModel, scene_model: mujoco.MjModel, world: IsaacWorld
    ) -> None:
        self.spec = spec
        #: world joint index of each spec joint; world actuator index of each spec joint's actuator
        self.joints = np.array([world.joint_names.index(n) for n in spec.joint_names])
        self.actuators = np.array([world.actuator_names.index(n) for n in spec.joint_names])
        self.grip_joints: list[tuple[int, float]] = []  # (world joint index, tendon coefficient)
        self.grip_range = np.zeros(2)
        self.grip_actuator = -1
        if spec.gripper is not None:
            a = robot_model.actuator(GRIPPER)
            if int(a.trntype[0]) != int(mujoco.mjtTrn.mjTRN_TENDON):
                raise ConfigError(f"actuator {GRIPPER!r} of the robot MJCF must drive a fixed tendon")
            t = int(a.trnid[0])
            adr, num = robot_model.tendon_adr[t], robot_model.tendon_num[t]
            for w in range(adr, adr + num):
                name = robot_model.joint(int(robot_model.wrap_objid[w])).name
                self.grip_joints.append((world.joint_names.index(name), float(robot_model.wrap_prm[w])))
            self.grip_range = a.ctrlrange.copy()
            self.grip_actuator = world.actuator_names.index(GRIPPER)
        #: joint name -> rad (m): the scene keyframe's pose of every robot joint
        self.home_joints = keyframe_home(robot_model, scene_model)
        self.home_joint_row = np.array([self.home_joints.get(n, 0.0) for n in world.joint_names])
        home_ctrl = world.ctrl(0)
        home_ctrl[self.actuators] = spec.home
        if self.grip_actuator >= 0:
            home_ctrl[self.grip_actuator] = self.grip_range[1]  # open
        #: (nu,) the controls that hold the home pose with the fingers open, MJCF order
        self.home_ctrl = home_ctrl
        site = robot_model.site(spec.tcp_frame)
        self.tcp_body = robot_model.body(int(site.bodyid[0])).name
        self.tcp_offset = site.pos.copy()  # m, in the TCP body's frame
        self.tcp_rotation = site.quat.copy()  # wxyz, TCP site in its body's frame

    # -- gripper ------------------------------------------------------------------------------------
    def grip_ctrl(self, width: np.ndarray) -> np.ndarray:
        """Tendon control (m) for the normalized width(s) ``width`` (0 closed, 1 open)."""
        closed, opened = self.grip_range
        return closed + np.asarray(width, dtype=float) * (opened - closed)

    def grip_width(self, q: np.ndarray) -> np.ndarray:
        """Normalized width(s) in [0, 1] from world joint rows ``q`` (..., n); NaN without a gripper."""
        q = np.asarray(q, dtype=float)
        if not self.grip_joints:
            return np.full(q.shape[:-1], np.nan)
        closed, opened = self.grip_range
        length = sum(c * q[..., i] for i, c in self.grip_joints)
        return np.clip((length - closed) / (opened - closed), 0.0, 1.0)

    # -- TCP ----------------------------------------------------------------------------------------
    def tcp_poses(self, world: IsaacWorld) -> tuple[np.ndarray, np.ndarray]:
        """Every env's TCP in the base frame, from Isaac's body poses: (num_envs, 3) m, (num_envs, 4) wxyz.

        ``p = R_b^T (p_h + R_h o - p_b)``, ``q = q_b^* q_h q_o``: ``(p_h, R_h)`` the TCP body's pose, ``(o, q_o)`` the
        site in that body, ``(p_b, R_b)`` the base body's pose, all in the env's world frame.
        """
        body_p, body_q = world.body_poses(self.tcp_body)
        base_p, base_q = world.body_poses(self.spec.base_frame)
        tcp_world = body_p + quat_rotate(body_q, np.broadcast_to(self.tcp_offset, body_p.shape))
        base_inv = quat_conjugate(base_q)
        position = quat_rotate(base_inv, tcp_world - base_p)
        quaternion = quat_multiply(base_inv, quat_multiply(body_q, self.tcp_rotation))
        quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
        quaternion *= np.where(quaternion[:, :1] < 0.0, -1.0, 1.0)  # w >= 0, as rcs.geometry.quat_normalize
        return position, quaternion
