"""Pixels for the Isaac backend: Isaac's physics state drawn by our MuJoCo renderer from the same scene MJCF.

Isaac Lab kit-less (no Isaac Sim) has no renderer usable here, so :class:`IsaacMirror` is a
:class:`sim.mujoco.simulation.MujocoSimulation` of the pick-cube scene MJCF that is never stepped: right before
each live :meth:`render`, :meth:`snapshot` or :meth:`camera_pose_world` it copies the state of env 0 of the
:class:`sim.isaac.world.IsaacWorld` (every robot joint, fingers included, and the cube's pose) into its
``qpos`` and runs ``mj_forward`` (kinematics only). The target marker is a mocap body set by the arm
(:meth:`set_marker`), as :class:`sim.mujoco.arm.MujocoArm` does. So physics comes from Isaac Lab, pixels from
MuJoCo, and everything that renders a MuJoCo-simulated robot (``make_camera("sim/mujoco", ...)``, ``rcs eval``'s
render thread) works unchanged on ``isaac/panda``.

Frames: the MuJoCo scene's world frame (the robot base at the origin), the same as the Isaac world's env frame.
Units: rad and m (joints), m and quaternion (w, x, y, z) (cube).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from rcs.errors import ConfigError
from sim.mujoco.simulation import MujocoSimulation

if TYPE_CHECKING:
    from sim.isaac.world import IsaacWorld


class IsaacMirror(MujocoSimulation):
    """A MuJoCo model and data of ``scene_mjcf`` kept in step with ``world`` (env 0) for rendering only.

    Args:
        world: the Isaac world whose state is drawn (its ``joint_names``, ``joint_positions``, ``cube_pose``).
        scene_mjcf: the MuJoCo scene the world was built from (it names the same robot joints and a free-jointed
            body ``"cube"`` and a mocap body ``"target"``).
        physics_dt: s, recorded as the model's timestep (never integrated here).

    Raises:
        ConfigError: a robot joint of the world, the cube or the target is missing from ``scene_mjcf``.
    """

    def __init__(self, world: IsaacWorld, scene_mjcf: str | Path, physics_dt: float | None = None) -> None:
        super().__init__(scene_mjcf, physics_dt=physics_dt, keyframe="home")
        self.world = world
        m = self.model
        qadr, jidx = [], []
        for i, name in enumerate(world.joint_names):
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise ConfigError(f"{scene_mjcf}: no joint {name!r} (a joint of the Isaac robot) to mirror")
            qadr.append(int(m.jnt_qposadr[jid]))
            jidx.append(i)
        self._qadr = np.array(qadr, dtype=int)
        self._jidx = np.array(jidx, dtype=int)
        cube = self.body_id("cube")
        if m.body_jntnum[cube] != 1 or int(m.jnt_type[m.body_jntadr[cube]]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise ConfigError(f"{scene_mjcf}: body 'cube' needs exactly one free joint")
        self._cube_qadr = int(m.jnt_qposadr[m.body_jntadr[cube]])
        target = self.body_id("target")
        if m.body_mocapid[target] < 0:
            raise ConfigError(f"{scene_mjcf}: body 'target' must be a mocap body")
        self._target = int(m.body_mocapid[target])
        self.syncs = 0  #: how many times the state was copied from Isaac (for tests and profiling)
        self._synced_version = -1
        self.sync()

    # -- synchronisation ------------------------------------------------------------------------------
    def sync(self) -> None:
        """Copy env 0's joint positions and cube pose from the Isaac world, then ``mj_forward`` (no dynamics); skipped
        while the world's state is the one last copied (:attr:`IsaacWorld.version`: one copy per camera frame, not
        one per render and per camera pose query)."""
        if self._synced_version == self.world.version:
            return
        self._synced_version = self.world.version
        d = self.data
        q = self.world.joint_positions()[0]
        d.qpos[self._qadr] = q[self._jidx]
        position, quaternion = self.world.cube_pose()
        a = self._cube_qadr
        d.qpos[a : a + 3] = position
        d.qpos[a + 3 : a + 7] = quaternion
        d.qvel[:] = 0.0  # a drawing needs no velocities; zero keeps mj_forward's derived quantities finite
        mujoco.mj_forward(self.model, d)
        self.syncs += 1

    def set_marker(self, position: np.ndarray) -> None:
        """Put the target marker (mocap body ``"target"``) at ``position`` (3,) m, world frame."""
        self.data.mocap_pos[self._target] = position
        mujoco.mj_forward(self.model, self.data)

    # -- rendering (synchronised first) ---------------------------------------------------------------------
    def snapshot(self) -> mujoco.MjData:
        """A copy of Isaac's current state as MuJoCo data (render it later with ``render(..., data=snapshot)``)."""
        self.sync()
        return super().snapshot()

    def render(self, camera: str, width: int, height: int, data: mujoco.MjData | None = None) -> np.ndarray:
        """RGB image (height, width, 3) uint8 of Isaac's current state (or of ``data``, a :meth:`snapshot`,
        which is drawn as it is: a snapshot may be rendered in another thread, which must not touch Isaac)."""
        if data is None:
            self.sync()
        return super().render(camera, width, height, data)

    def camera_pose_world(self, camera: str) -> np.ndarray:
        """4x4 pose of the camera's optical frame in the world frame (wrist cameras move with Isaac's arm)."""
        self.sync()
        return super().camera_pose_world(camera)

    # -- no dynamics here: physics belongs to Isaac ------------------------------------------------------------
    def step(self, n: int, check: bool = True) -> None:
        """Refused: the mirror only draws Isaac's state; advance the Isaac arm instead."""
        raise ConfigError("the Isaac backend's MuJoCo mirror is for pixels only; advance the Isaac arm instead")

    def step_controls(self, *args: Any, **kwargs: Any) -> None:
        """Refused (see :meth:`step`)."""
        self.step(0)

    def step_raw(self, n: int) -> None:
        """Refused (see :meth:`step`)."""
        self.step(n)
