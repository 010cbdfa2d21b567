"""The Isaac Lab simulation behind the Isaac robots: kit-less Newton physics, MuJoCo-Warp solver, one scene.

Imports Isaac Lab at module level: import it only in ``.venv-isaac`` (``sim.isaac.arm`` checks first).

Frames and units: world frame of the MuJoCo scene (REP-103, m, rad, s). Isaac Lab quaternions are (x, y, z, w);
this module takes and returns (w, x, y, z) like the rest of rcs.

Control: our MJCF position actuators (``timeconst`` target filters, gravity compensation counted as actuator
torque) reach the solver as MuJoCo actuators driven directly by ``control.mujoco.ctrl`` (Newton's CTRL_DIRECT);
this module writes that array and adds no Isaac Lab actuator model (an ``ImplicitActuatorCfg`` would add a
second PD servo on the same joints and fight them).

Isaac Lab allows one :class:`SimulationContext` per process, so there is one :class:`IsaacWorld` per process:
:func:`get_world` returns the existing one when the configuration is the same and rebuilds it otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import isaaclab.sim as sim_utils
import mujoco
import numpy as np
import torch
import warp as wp
from isaaclab.assets import ArticulationCfg, AssetBaseCfg, RigidObjectCfg
from isaaclab.scene import InteractiveScene, InteractiveSceneCfg
from isaaclab.sim import SimulationCfg, SimulationContext
from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg, NewtonManager

from rcs.errors import ConfigError
from sim.isaac.convert import convert_mjcf
from sim.isaac.scene import Box, PickCubeScene, read_pick_cube_scene

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda:0")


@dataclass(frozen=True)
class WorldConfig:
    """What one world is built from.

    Attributes:
        robot_mjcf: the robot alone (converted to USD; its actuators become the solver's ctrl).
        scene_mjcf: the MuJoCo scene the table, floor and cube are read from (and its solver options).
        default_joint_pos: joint name -> rad (m for slide joints), the pose written at every reset.
        physics_dt: s, physics step.
        device: ``"cpu"`` or ``"cuda:0"``.
        num_envs: copies of the scene (Isaac Lab's vectorization; the arm API drives env 0).
    """

    robot_mjcf: Path
    scene_mjcf: Path
    default_joint_pos: tuple[tuple[str, float], ...]
    physics_dt: float = 0.002
    device: str = "cpu"
    num_envs: int = 1


def _cuboid(box: Box, static: bool) -> sim_utils.CuboidCfg:
    material = sim_utils.RigidBodyMaterialCfg(static_friction=box.friction, dynamic_friction=box.friction)
    return sim_utils.CuboidCfg(
        size=tuple(2.0 * h for h in box.half_size),
        collision_props=sim_utils.UsdPhysicsCollisionCfg(),
        physics_material=material,
        **(
            {}
            if static
            else {"rigid_props": sim_utils.UsdPhysicsRigidBodyCfg(), "mass_props": sim_utils.MassCfg(mass=box.mass)}
        ),
    )


class IsaacWorld:
    """The simulation, the scene (robot ``"robot"``, table, floor, cube ``"cube"``) and direct solver access."""

    def __init__(self, config: WorldConfig) -> None:
        if config.device not in DEVICES:
            raise ConfigError(f"device={config.device!r}: expected one of {', '.join(DEVICES)}")
        if not 0.0 < config.physics_dt <= 0.01:
            raise ConfigError(f"physics_dt={config.physics_dt}: expected 0 < physics_dt <= 0.01 s")
        if config.num_envs < 1:
            raise ConfigError(f"num_envs={config.num_envs}: expected >= 1")
        self.config = config
        t0 = time.monotonic()
        usd = convert_mjcf(config.robot_mjcf)
        self.layout: PickCubeScene = read_pick_cube_scene(config.scene_mjcf)
        opt = mujoco.MjModel.from_xml_path(str(config.scene_mjcf)).opt  # the MuJoCo scene's solver options
        robot_model = mujoco.MjModel.from_xml_path(str(config.robot_mjcf))
        #: the robot's actuators in MJCF order: the order of the solver's ctrl (per env)
        self.actuator_names: tuple[str, ...] = tuple(robot_model.actuator(i).name for i in range(robot_model.nu))
        self._act_adr = np.array([robot_model.actuator_actadr[i] for i in range(robot_model.nu)])
        on_gpu = config.device.startswith("cuda")
        sim_cfg = SimulationCfg(
            dt=config.physics_dt,
            device=config.device,
            physics=NewtonCfg(
                solver_cfg=MJWarpSolverCfg(
                    integrator=mujoco.mjtIntegrator(opt.integrator).name.removeprefix("mjINT_").lower(),
                    cone=mujoco.mjtCone(opt.cone).name.removeprefix("mjCONE_").lower(),
                    impratio=float(opt.impratio),
                    njmax=100,
                    nconmax=50,
                ),
                use_cuda_graph=on_gpu,  # CUDA graphs exist only on a GPU; on the CPU every step runs eagerly
            ),
        )
        if SimulationContext.instance() is not None:
            SimulationContext.clear_instance()
        self.sim = SimulationContext(sim_cfg)
        joint_pos = dict(config.default_joint_pos)
        layout = self.layout
        scene_cfg = InteractiveSceneCfg(num_envs=config.num_envs, env_spacing=3.0)
        scene_cfg.robot = ArticulationCfg(
            prim_path="{ENV_REGEX_NS}/Robot",
            spawn=sim_utils.UsdFileCfg(usd_path=str(usd)),
            init_state=ArticulationCfg.InitialStateCfg(joint_pos=joint_pos),
            actuators={},  # the MJCF's own actuators drive the joints (see the module docstring)
        )
        scene_cfg.floor = AssetBaseCfg(
            prim_path="{ENV_REGEX_NS}/Floor",
            spawn=_cuboid(Box((0.0, 0.0, 0.0), (2.0, 2.0, 0.05), layout.table.friction), static=True),
            init_state=AssetBaseCfg.InitialStateCfg(pos=(0.0, 0.0, layout.floor_z - 0.05)),
        )
        scene_cfg.table = AssetBaseCfg(
            prim_path="{ENV_REGEX_NS}/Table",
            spawn=_cuboid(layout.table, static=True),
            init_state=AssetBaseCfg.InitialStateCfg(pos=layout.table.pos),
        )
        scene_cfg.cube = RigidObjectCfg(
            prim_path="{ENV_REGEX_NS}/Cube",
            spawn=_cuboid(layout.cube, static=False),
            init_state=RigidObjectCfg.InitialStateCfg(pos=layout.cube.pos),
        )
        self.scene = InteractiveScene(scene_cfg)
        self.sim.reset()
        self.robot = self.scene["robot"]
        self.cube = self.scene["cube"]
        #: the articulation's joints in Isaac Lab's order (the order of joint_pos/joint_vel)
        self.joint_names: tuple[str, ...] = tuple(self.robot.joint_names)
        missing = sorted(set(joint_pos) - set(self.joint_names))
        if missing:
            raise ConfigError(
                f"{config.robot_mjcf}: joints {missing} not found after conversion; found {self.joint_names}"
            )
        self._solver = NewtonManager._solver
        self._ctrl = NewtonManager.get_control().mujoco.ctrl
        self._env_origins = self.scene.env_origins.cpu().numpy().astype(float)  # (num_envs, 3) m
        self.steps = 0
        #: grows whenever the simulated state may have changed (a step, a restart, a placed cube): readers that copy
        #: the state (the MuJoCo mirror) skip the copy while it is unchanged
        self.version = 0
        self.build_seconds = time.monotonic() - t0
        log.info("Isaac world built in %.1f s (%s, %d env(s))", self.build_seconds, config.device, config.num_envs)

    # -- state --------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """(num_envs, n) rad (m for slide joints), in :attr:`joint_names` order."""
        return self.robot.data.joint_pos.torch.cpu().numpy().astype(float)

    def joint_velocities(self) -> np.ndarray:
        """(num_envs, n) rad/s (m/s for slide joints), in :attr:`joint_names` order."""
        return self.robot.data.joint_vel.torch.cpu().numpy().astype(float)

    def cube_pose(self, env: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The cube's (position (3,) m, quaternion (4,) wxyz) in the world frame of env ``env``."""
        position, quaternion = self.cube_poses()
        return position[env], quaternion[env]

    def cube_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Every env's cube: (num_envs, 3) m and (num_envs, 4) wxyz, each in its env's world frame."""
        return self._local(self.cube.data.root_pose_w.torch)

    def body_poses(self, body: str) -> tuple[np.ndarray, np.ndarray]:
        """The robot body ``body``'s frame in every env: (num_envs, 3) m and (num_envs, 4) wxyz, each in its env's
        world frame (the MJCF's body frame, as MuJoCo's ``xpos``/``xquat``)."""
        if body not in self.robot.body_names:
            raise ConfigError(f"body={body!r}: the robot's bodies are {', '.join(self.robot.body_names)}")
        return self._local(self.robot.data.body_link_pose_w.torch[:, self.robot.body_names.index(body)])

    def _local(self, pose_w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Isaac world poses (num_envs, 7) xyz + xyzw -> each env's frame: (num_envs, 3) m, (num_envs, 4) wxyz."""
        pose = pose_w.cpu().numpy().astype(float)
        return pose[:, :3] - self._env_origins, np.roll(pose[:, 3:7], 1, axis=1)

    def set_cube_pose(self, position: np.ndarray, quaternion: np.ndarray, env: int = 0) -> None:
        """Place the cube at rest: ``position`` (3,) m, ``quaternion`` (4,) wxyz, world frame of env ``env``."""
        self.set_cube_poses([env], np.asarray(position, float)[None], np.asarray(quaternion, float)[None])

    def set_cube_poses(self, env_ids: Sequence[int], position: np.ndarray, quaternion: np.ndarray) -> None:
        """Place the cubes of ``env_ids`` at rest: ``position`` (k, 3) m, ``quaternion`` (k, 4) wxyz, each in its
        env's world frame."""
        ids = np.asarray(env_ids, dtype=int)
        pose = np.concatenate([position + self._env_origins[ids], np.roll(quaternion, -1, axis=1)], axis=1)
        dev = self.config.device
        index = torch.tensor(ids, dtype=torch.int32, device=dev)
        self.cube.write_root_pose_to_sim_index(
            root_pose=torch.tensor(pose, dtype=torch.float32, device=dev), env_ids=index
        )
        self.cube.write_root_velocity_to_sim_index(root_velocity=torch.zeros((len(ids), 6), device=dev), env_ids=index)
        self.version += 1

    def actuator_forces(self) -> np.ndarray:
        """(num_envs, nu) N m (N for tendons/slides): each actuator's force of the last step, MJCF order."""
        return self._solver.mjw_data.actuator_force.numpy()[:, : len(self.actuator_names)].astype(float)

    # -- commands -----------------------------------------------------------------------------------
    def set_ctrl(self, values: Mapping[str, float] | Sequence[float], env: int = 0) -> None:
        """Set actuator controls (targets, rad or m) of env ``env``: a name -> value map or all, MJCF order."""
        ctrl = self.ctrl_all()
        if isinstance(values, Mapping):
            for name, v in values.items():
                ctrl[env, self.actuator_names.index(name)] = v
        else:
            ctrl[env] = values
        self.set_ctrl_rows(ctrl)

    def set_ctrl_all(self, values: Sequence[float]) -> None:
        """Set every env's actuator controls (targets, rad or m) to ``values`` (nu,), MJCF order."""
        self.set_ctrl_rows(np.tile(np.asarray(values, dtype=np.float64), (self.config.num_envs, 1)))

    def set_ctrl_rows(self, ctrl: np.ndarray) -> None:
        """Set the actuator controls of every env: ``ctrl`` (num_envs, nu), MJCF order (rad or m)."""
        c = np.ascontiguousarray(ctrl, dtype=np.float64).reshape(-1)
        wp.copy(self._ctrl, wp.array(c, dtype=self._ctrl.dtype, device=self._ctrl.device))

    def ctrl(self, env: int = 0) -> np.ndarray:
        """(nu,) the current actuator controls of env ``env``, MJCF order."""
        return self.ctrl_all()[env]

    def ctrl_all(self) -> np.ndarray:
        """(num_envs, nu) every env's current actuator controls, MJCF order (a copy)."""
        return self._ctrl.numpy().reshape(self.config.num_envs, -1).astype(float)

    # -- time -----------------------------------------------------------------------------------------
    def reset(self, joint_pos: Mapping[str, float], ctrl: Sequence[float]) -> None:
        """All envs back to ``joint_pos`` at rest (others: the configured defaults), the cube at its keyframe pose,
        the controls at ``ctrl`` (MJCF order); the step count restarts."""
        n = self.config.num_envs
        q = self.robot.data.default_joint_pos.torch.cpu().numpy().astype(float)
        for name, v in joint_pos.items():
            q[:, self.joint_names.index(name)] = v
        cube_q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        cube_p = np.tile(np.asarray(self.layout.cube.pos, dtype=float), (n, 1))
        self.reset_envs(range(n), q, np.tile(np.asarray(ctrl, dtype=float), (n, 1)), cube_p, cube_q)
        self.steps = 0

    def reset_envs(
        self,
        env_ids: Sequence[int],
        joint_pos: np.ndarray,
        ctrl: np.ndarray,
        cube_position: np.ndarray,
        cube_quaternion: np.ndarray,
    ) -> None:
        """Restart the envs ``env_ids`` (the others run on untouched): joints at ``joint_pos`` (k, n) at rest,
        :attr:`joint_names` order; controls ``ctrl`` (k, nu) MJCF order, each filtered actuator's state at its
        control; the cube at rest at ``cube_position`` (k, 3) m, ``cube_quaternion`` (k, 4) wxyz.

        Writing the joint state is needed: ``sim.reset()`` leaves the joints at zero, not at the configured
        default positions. The actuator filter state (MuJoCo ``act``) is written after the reset is applied
        (``sim.forward()``), because the solver clears it there for the reset envs; left at zero, the arm would
        first swing towards the zero pose.
        """
        ids = np.asarray(env_ids, dtype=int)
        dev = self.config.device
        q = torch.tensor(np.asarray(joint_pos, dtype=np.float32), device=dev)
        index = torch.tensor(ids, dtype=torch.int32, device=dev)
        self.robot.write_joint_state_to_sim_index(position=q, velocity=torch.zeros_like(q), env_ids=index)
        self.set_cube_poses(ids, np.asarray(cube_position, float), np.asarray(cube_quaternion, float))
        self.sim.forward()
        rows = self.ctrl_all()
        rows[ids] = ctrl
        self.set_ctrl_rows(rows)
        act = self._solver.mjw_data.act
        if act.shape[1] > 0:
            a = act.numpy()
            for i, adr in enumerate(self._act_adr):
                if adr >= 0:
                    a[ids, adr] = np.asarray(ctrl)[:, i]
            wp.copy(act, wp.array(a, dtype=act.dtype, device=act.device))
        self.scene.update(0.0)
        self.version += 1

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps with the controls held."""
        for _ in range(n):
            self.sim.step(render=False)
        self.steps += n
        self.scene.update(n * self.config.physics_dt)
        self.version += 1


_WORLD: IsaacWorld | None = None


def get_world(config: WorldConfig) -> IsaacWorld:
    """The process's world for ``config``: the existing one if its configuration is the same, else a new one."""
    global _WORLD
    if _WORLD is None or _WORLD.config != config:
        _WORLD = None
        _WORLD = IsaacWorld(config)
    return _WORLD
