"""The Panda in Isaac Lab behind :class:`rcs.devices.Arm`, registered as ``"isaac/panda"``.

Same robot data as the MuJoCo Panda (:data:`sim.mujoco.arm.PANDA`: spec, MJCF, pick-cube scene); physics from
Isaac Lab 3 (Newton, MuJoCo-Warp solver), kit-less. Frames: the base frame ``link0`` is the world origin, as in
the MuJoCo scene; TCP poses come from the same MJCF's forward kinematics evaluated at the simulated joint
positions. Units: rad, m, s; quaternions (w, x, y, z).

This module is light: Isaac Lab is imported when a robot is built, after checking that it is installed, so
``rcs.make_robot("isaac/panda")`` in a Python without it is one clear error naming ``scripts/setup_isaac.sh``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from rcs.devices import Arm, Kinematics
from rcs.errors import ConfigError, UnknownNameError
from rcs.types import ArmState
from rcs.validation import LimitPolicy, as_vector
from sim.isaac.availability import require_isaaclab
from sim.isaac.robot_map import GRIPPER, RobotMap, keyframe_home

if TYPE_CHECKING:
    from sim.isaac.world import IsaacWorld
    from sim.mujoco.arm import ArmDescription

_FACTORY_KEYS = ("device", "physics_dt", "limit_policy", "scene", "num_envs")


class IsaacArm(Arm):
    """An arm simulated by Isaac Lab in the pick-cube scene (env 0 of the world).

    Implements :class:`rcs.devices.Arm` plus the ``Simulated`` and ``ObjectTracker``/``SceneControl`` protocols
    like :class:`sim.mujoco.arm.MujocoArm`. The simulation is the process's :class:`sim.isaac.world.IsaacWorld`
    (Isaac Lab allows one per process); a new arm with the same configuration reuses it and resets it.

    Args:
        description: the robot's data (spec, robot MJCF, scenes), shared with the MuJoCo backend.
        scene: scene name (``"pick_cube"``).
        physics_dt: s, physics step.
        device: ``"cpu"`` (default) or ``"cuda:0"``.
        limit_policy: ``"raise"`` or ``"clip"``.
        num_envs: copies of the scene simulated together (Isaac Lab's vectorization); this arm reads and drives
            env 0, :attr:`world` gives batched access to all of them (e.g. :meth:`IsaacWorld.set_ctrl_all`).

    Attributes:
        simulation: an :class:`sim.isaac.mirror.IsaacMirror`, the scene MJCF drawn by MuJoCo at env 0's Isaac state
            (pixels only: physics is Isaac's), so ``make_camera("sim/mujoco", robot=arm, ...)`` works unchanged.
        camera_names: the scene MJCF's cameras.
    """

    def __init__(
        self,
        description: ArmDescription,
        scene: str = "pick_cube",
        physics_dt: float = 0.002,
        device: str = "cpu",
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        num_envs: int = 1,
    ) -> None:
        super().__init__(description.spec, limit_policy)
        if scene != "pick_cube" or scene not in description.scenes:
            raise ConfigError(f"scene={scene!r}: the Isaac backend has the scene 'pick_cube' only")
        import mujoco

        from sim.isaac.world import WorldConfig, get_world
        from sim.mujoco.kinematics import MinkKinematics
        from sim.mujoco.simulation import MODELS_DIR

        spec = self.spec
        self.description = description
        self.scene_name = scene
        self.scene = description.scenes[scene].layout
        robot_mjcf = MODELS_DIR / description.robot_model
        scene_mjcf = MODELS_DIR / description.scenes[scene].model
        robot_model = mujoco.MjModel.from_xml_path(str(robot_mjcf))
        scene_model = mujoco.MjModel.from_xml_path(str(scene_mjcf))
        self._kinematics = MinkKinematics(robot_model, spec.joint_names, spec.tcp_frame, spec.base_frame)
        self.world: IsaacWorld = get_world(
            WorldConfig(
                robot_mjcf=robot_mjcf,
                scene_mjcf=scene_mjcf,
                default_joint_pos=tuple(keyframe_home(robot_model, scene_model).items()),
                physics_dt=float(physics_dt),
                device=device,
                num_envs=int(num_envs),
            )
        )
        w = self.world
        #: the spec's joints, actuators, gripper and TCP in the world's order (shared with the batched env)
        self.map = RobotMap(spec, robot_model, scene_model, w)
        self._target = np.asarray(w.layout.target, dtype=float)
        from sim.isaac.mirror import IsaacMirror

        #: pixels: the scene MJCF drawn by MuJoCo at Isaac's state (sim.isaac.mirror); cameras render it
        self.simulation = IsaacMirror(w, scene_mjcf, physics_dt)
        m = self.simulation.model
        self.camera_names: tuple[str, ...] = tuple(m.camera(i).name for i in range(m.ncam))
        self.reset()

    # -- Arm hooks ----------------------------------------------------------------------------------
    @property
    def kinematics(self) -> Kinematics:
        """FK/IK of the TCP in the base frame, on the robot MJCF (the same model the USD was converted from)."""
        return self._kinematics

    def _connect(self) -> None:
        pass

    def _close(self) -> None:
        pass  # the world outlives the arm (one per process); the next arm resets it

    def _read(self) -> ArmState:
        w, m = self.world, self.map
        q = w.joint_positions()[0]
        qd = w.joint_velocities()[0]
        position, quaternion = self._kinematics.forward(q[m.joints])
        return ArmState(
            timestamp=time.monotonic(),
            joint_positions=q[m.joints].copy(),
            joint_velocities=qd[m.joints].copy(),
            joint_efforts=w.actuator_forces()[0][m.actuators].copy(),
            gripper=float(m.grip_width(q)),
            tcp_position=position,
            tcp_quaternion=quaternion,
        )

    def _write_joint_positions(self, q: np.ndarray) -> None:
        self.world.set_ctrl(dict(zip(self.spec.joint_names, (float(v) for v in q), strict=True)))

    def _write_gripper(self, width: float) -> None:
        self.world.set_ctrl({GRIPPER: float(self.map.grip_ctrl(width))})

    # -- Simulated ----------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Simulated time since reset (s)."""
        return self.world.steps * self.world.config.physics_dt

    def advance(self, dt: float) -> None:
        """Integrate ``dt`` seconds (rounded to whole physics steps) with the current commands held."""
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ConfigError(f"dt={dt}: expected a finite duration >= 0 s")
        self.world.step(int(round(dt / self.world.config.physics_dt)))

    def reset(self, seed: int | None = None) -> None:
        """Back to the home pose at rest (fingers open), commands at home, the cube at its keyframe pose.

        ``seed`` is accepted for the ``Simulated`` protocol; this backend has no domain randomization yet.
        """
        self.world.reset(self.map.home_joints, self.map.home_ctrl)
        self.set_marker("target", np.asarray(self.world.layout.target, dtype=float))

    # -- ObjectTracker / SceneControl -------------------------------------------------------------------
    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) m, quaternion (4,) wxyz) of ``"cube"`` or the marker ``"target"``, world frame."""
        if name == "cube":
            return self.world.cube_pose()
        if name == "target":
            return self._target.copy(), np.array([1.0, 0.0, 0.0, 0.0])
        raise UnknownNameError("object", name, ["cube", "target"])

    def set_object_pose(self, name: str, position: np.ndarray, quaternion: np.ndarray) -> None:
        """Place the cube at rest: ``position`` (3,) m and ``quaternion`` (4,) wxyz, world frame."""
        if name != "cube":
            raise UnknownNameError("object", name, ["cube"])
        p = as_vector(f"{name}.position", position, 3)
        q = as_vector(f"{name}.quaternion", quaternion, 4)
        norm = float(np.linalg.norm(q))
        if not norm > 0.0:
            raise ConfigError(f"{name}.quaternion={q.tolist()}: a non-zero quaternion")
        self.world.set_cube_pose(p, q / norm)
        self.world.sim.forward()

    def set_marker(self, name: str, position: np.ndarray) -> None:
        """Move the visual marker ``"target"`` to ``position`` (3,) m, world frame (drawn by :attr:`simulation`;
        Isaac simulates no marker)."""
        if name != "target":
            raise UnknownNameError("marker", name, ["target"])
        self._target = as_vector(f"{name}.position", position, 3)
        self.simulation.set_marker(self._target)


def make_isaac_panda(**config: Any) -> IsaacArm:
    """Registry factory ``"isaac/panda"``: the Franka Panda with hand in Isaac Lab 3 (kit-less, Newton, MuJoCo-Warp).

    Keyword config: ``device`` (``"cpu"`` default, or ``"cuda:0"``), ``physics_dt`` (s, 0.002), ``scene``
    (``"pick_cube"``), ``limit_policy`` (``"raise"``/``"clip"``), ``num_envs`` (1; the arm drives env 0). Needs ``.venv-isaac`` (``bash scripts/setup_isaac.sh``).
    """
    unknown = sorted(set(config) - set(_FACTORY_KEYS))
    if unknown:
        raise ConfigError(f"isaac/panda: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(_FACTORY_KEYS)}")
    require_isaaclab("isaac/panda")
    from sim.mujoco.arm import PANDA

    return IsaacArm(
        PANDA,
        scene=str(config.get("scene", "pick_cube")),
        physics_dt=float(config.get("physics_dt", 0.002)),
        device=str(config.get("device", "cpu")),
        limit_policy=config.get("limit_policy", LimitPolicy.RAISE),
        num_envs=int(config.get("num_envs", 1)),
    )
