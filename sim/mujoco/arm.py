"""Simulated arms on MuJoCo: one :class:`MujocoArm` class, per-robot data in :class:`ArmDescription`.

A robot is described by data only: its :class:`rcs.spec.ArmSpec` (joint names, limits, gripper, frames,
home), the MJCF file of the robot alone (used for kinematics) and, per scene, the scene MJCF and its
:class:`rcs.spec.TableSceneSpec`. Everything robot-specific lives in those descriptions and the model files;
:class:`MujocoArm` is generic. Conventions the MJCF files follow (checked when a scene is loaded):

- every arm joint named in the spec has a position actuator of the same name (ctrl = joint target, rad,
  possibly low-pass filtered by the actuator's ``timeconst``);
- the gripper (if any) is the position actuator ``"gripper"``; its ``ctrlrange`` is (closed, open), and the
  normalized width read and commanded through the API is linear in that actuator's transmission (finger
  opening in m for the Panda's tendon, jaw angle in rad for the SO-101);
- the TCP is the site named ``spec.tcp_frame``; Cartesian poses are in the body ``spec.base_frame``;
- the scene has a keyframe ``"home"`` with the arm (qpos, ctrl and filter state act) at ``spec.home``;
- movable objects are bodies with a free joint named in ``TableSceneSpec.objects``; markers are mocap
  bodies (e.g. ``"target"``);
- MJCF joint ranges equal the spec limits.

Registry factories: ``make_panda`` (``"sim/panda"``) and ``make_so101`` (``"sim/so101"``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from types import MappingProxyType
from typing import Any

import mujoco
import numpy as np

from rcs.devices import Arm
from rcs.errors import ConfigError, UnknownNameError
from rcs.geometry import quat_normalize
from rcs.spec import (
    ArmSpec,
    DomainRandomization,
    GripperSpec,
    JointSpec,
    TableSceneSpec,
    WorkspaceBox,
)
from rcs.types import ArmState
from rcs.validation import LimitPolicy, as_vector
from sim.mujoco.actuation_delay import ActuationDelay
from sim.mujoco.kinematics import MinkKinematics
from sim.mujoco.simulation import MODELS_DIR, MujocoSimulation, now

log = logging.getLogger(__name__)

#: the ``DomainRandomization.extra`` keys a simulated arm reads: ``object_mass`` scales the scene objects' mass and
#: inertia (on top of ``mass``), ``actuator_damping`` the arm servos' damping alone (on top of ``actuator_gain``)
ARM_EXTRAS = ("object_mass", "actuator_damping")

GRIPPER_ACTUATOR = "gripper"
HOME_KEYFRAME = "home"


@dataclass(frozen=True)
class SceneDescription:
    """One scene of a robot.

    Attributes:
        model: scene MJCF, relative to ``sim/models`` (it includes the robot).
        layout: the table layout in the world frame (m), used by tasks, experts and the safety layer.
    """

    model: str
    layout: TableSceneSpec


@dataclass(frozen=True)
class ArmDescription:
    """Everything robot-specific about a simulated arm.

    Attributes:
        spec: the arm's spec (joints in command order, limits, gripper, base/TCP frame names, home pose).
        robot_model: MJCF of the robot alone, relative to ``sim/models`` (used for kinematics).
        scenes: scene name -> :class:`SceneDescription`.
    """

    spec: ArmSpec
    robot_model: str
    scenes: Mapping[str, SceneDescription] = field(default_factory=dict)


class MujocoArm(Arm):
    """A MuJoCo-simulated arm in a tabletop scene.

    Implements :class:`rcs.devices.Arm` plus the :class:`rcs.devices.Simulated`,
    :class:`rcs.devices.ObjectTracker` and :class:`rcs.devices.SceneControl` protocols. The base frame is
    ``spec.base_frame``; in the shipped scenes it coincides with the world frame.

    Args:
        description: the robot's data.
        scene: scene name, one of ``description.scenes``.
        physics_dt: physics time step (s).
        randomization: parameter ranges redrawn at each :meth:`reset` with a seed (arms read the extras
            ``object_mass``, the scene objects' mass, and ``actuator_damping``, the arm servos' damping alone).
        limit_policy: ``"raise"`` or ``"clip"`` for out-of-limit commands.
        actuation_delay_s: s of simulated time between a command and the actuators applying it
            (:mod:`sim.mujoco.actuation_delay`); 0: the next physics step.
        camera_offsets: camera name -> (dx, dy, dz m, droll, dpitch, dyaw rad) off its modelled pose
            (:class:`MujocoSimulation`).

    Attributes:
        simulation: the :class:`MujocoSimulation` (model, data, rendering).
        scene: the scene's :class:`TableSceneSpec`.
        scene_name: the scene's name.
        camera_names: the MJCF cameras of the scene (for ``make_camera("sim/mujoco", robot=..., name=...)``).
    """

    def __init__(
        self,
        description: ArmDescription,
        scene: str = "pick_cube",
        physics_dt: float = 0.002,
        randomization: DomainRandomization | None = None,
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        actuation_delay_s: float = 0.0,
        camera_offsets: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__(description.spec, limit_policy)
        unknown = sorted(set((randomization or DomainRandomization()).extra) - set(ARM_EXTRAS))
        if unknown:
            raise ConfigError(
                f"randomization.extra: {', '.join(unknown)} not read by a simulated arm; known: {', '.join(ARM_EXTRAS)}"
            )
        self._delay = ActuationDelay(actuation_delay_s) if actuation_delay_s else None
        if scene not in description.scenes:
            raise ConfigError(
                f"scene={scene!r} is not a scene of {description.spec.name!r}; known scenes: "
                f"{', '.join(sorted(description.scenes)) or '(none)'}"
            )
        self.description = description
        self.scene_name = scene
        scene_desc = description.scenes[scene]
        self.scene: TableSceneSpec = scene_desc.layout
        spec = self.spec
        has_gripper = spec.gripper is not None
        actuators = (*spec.joint_names, *((GRIPPER_ACTUATOR,) if has_gripper else ()))
        self.simulation = MujocoSimulation(
            scene_desc.model,
            physics_dt=physics_dt,
            randomization=randomization,
            keyframe=HOME_KEYFRAME,
            gain_actuators=actuators,
            object_bodies=tuple(scene_desc.layout.objects),
            camera_offsets=camera_offsets,
        )
        sim, m = self.simulation, self.simulation.model

        jids = [sim.joint_id(n) for n in spec.joint_names]
        self._qadr = _as_index([m.jnt_qposadr[j] for j in jids])
        self._dadr = _as_index([m.jnt_dofadr[j] for j in jids])
        self._act = _as_index([sim.actuator_id(n) for n in spec.joint_names])
        self._grip = sim.actuator_id(GRIPPER_ACTUATOR) if has_gripper else -1
        self._grip_range = m.actuator_ctrlrange[self._grip].copy() if has_gripper else np.zeros(2)
        self._tcp = sim.site_id(spec.tcp_frame)
        self._base = sim.body_id(spec.base_frame)
        # A base welded to the world at the origin with identity orientation needs no transform per read.
        self._base_at_origin = bool(
            m.body_weldid[self._base] == 0
            and np.allclose(sim.data.xpos[self._base], 0.0)
            and np.allclose(sim.data.xmat[self._base], np.eye(3).ravel())
        )
        self._objects: dict[str, tuple[int, int, int]] = {}
        for name in self.scene.objects:
            bid = sim.body_id(name)
            jadr = m.body_jntadr[bid]
            if m.body_jntnum[bid] != 1 or int(m.jnt_type[jadr]) != int(mujoco.mjtJoint.mjJNT_FREE):
                raise ConfigError(f"object {name!r}: needs exactly one free joint in {scene_desc.model}")
            self._objects[name] = (bid, int(m.jnt_qposadr[jadr]), int(m.jnt_dofadr[jadr]))
        self._markers: dict[str, int] = {
            m.body(b).name: int(m.body_mocapid[b]) for b in range(m.nbody) if m.body_mocapid[b] >= 0
        }
        self.camera_names: tuple[str, ...] = tuple(m.camera(i).name for i in range(m.ncam))
        self._check_model(scene_desc.model)

        robot_model = mujoco.MjModel.from_xml_path(str(MODELS_DIR / description.robot_model))
        self._kinematics = MinkKinematics(robot_model, spec.joint_names, spec.tcp_frame, spec.base_frame)

    def _check_model(self, path: str) -> None:
        """The MJCF and the spec must agree: joint ranges, home keyframe, gripper range, cube size."""
        sim, m, spec = self.simulation, self.simulation.model, self.spec
        for j, jid in zip(spec.joints, (sim.joint_id(n) for n in spec.joint_names), strict=True):
            lo, hi = m.jnt_range[jid]
            same = math.isclose(lo, j.lower, abs_tol=1e-6) and math.isclose(hi, j.upper, abs_tol=1e-6)
            if not (m.jnt_limited[jid] and same):
                raise ConfigError(
                    f"{path}: joint {j.name!r} range [{lo}, {hi}] differs from the spec [{j.lower}, {j.upper}]"
                )
        kid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, HOME_KEYFRAME)
        if kid < 0:
            raise ConfigError(f"{path}: no keyframe {HOME_KEYFRAME!r}")
        home = np.asarray(spec.home)
        if not (
            np.allclose(m.key_qpos[kid][self._qadr], home, atol=1e-6)
            and np.allclose(m.key_ctrl[kid][self._act], home, atol=1e-6)
        ):
            raise ConfigError(f"{path}: keyframe {HOME_KEYFRAME!r} arm qpos/ctrl differ from spec.home {spec.home}")
        for name, a, q in zip(spec.joint_names, np.arange(m.nu)[self._act], home, strict=True):
            adr = m.actuator_actadr[a]  # a filtered target (act) must start at home, or the arm swings at reset
            if adr >= 0 and not math.isclose(m.key_act[kid][adr], q, abs_tol=1e-6):
                raise ConfigError(f"{path}: keyframe {HOME_KEYFRAME!r} act of actuator {name!r} differs from home")
        if self._grip >= 0 and not self._grip_range[0] < self._grip_range[1]:
            raise ConfigError(
                f"{path}: actuator {GRIPPER_ACTUATOR!r} needs ctrlrange (closed, open) with closed < open"
            )
        for name, (bid, _, _) in self._objects.items():
            gid = m.body_geomadr[bid]
            if int(m.geom_type[gid]) == int(mujoco.mjtGeom.mjGEOM_BOX) and not np.allclose(
                m.geom_size[gid], self.scene.cube_half_size, atol=1e-6
            ):
                raise ConfigError(
                    f"{path}: object {name!r} half size {m.geom_size[gid]} differs from "
                    f"cube_half_size={self.scene.cube_half_size}"
                )

    # -- Arm hooks ----------------------------------------------------------------------------------
    @property
    def kinematics(self) -> MinkKinematics:
        """FK/IK of the TCP in the base frame (on a private copy of the robot model)."""
        return self._kinematics

    def _connect(self) -> None:
        mujoco.mj_forward(self.simulation.model, self.simulation.data)

    def _close(self) -> None:
        # The simulation (and its GL contexts) belongs to whoever holds this arm: see MujocoSimulation.close().
        pass

    def _read(self) -> ArmState:
        d = self.simulation.data
        position, quaternion = self._tcp_pose()
        return ArmState(
            timestamp=now(),
            joint_positions=d.qpos[self._qadr].copy(),
            joint_velocities=d.qvel[self._dadr].copy(),
            joint_efforts=d.qfrc_actuator[self._dadr].copy(),
            gripper=self._gripper_reading(),
            tcp_position=position,
            tcp_quaternion=quaternion,
        )

    def _write_joint_positions(self, q: np.ndarray) -> None:
        self._write_ctrl(self._act, q)

    def _write_gripper(self, width: float) -> None:
        closed, opened = self._grip_range
        self._write_ctrl(self._grip, closed + width * (opened - closed))

    def _write_ctrl(self, index: np.ndarray | int, values: np.ndarray | float) -> None:
        """``ctrl[index] = values`` now, or ``actuation_delay_s`` later."""
        if self._delay is None:
            self.simulation.data.ctrl[index] = values
        else:
            self._delay.push(self.simulation.time, index, values)

    def _gripper_reading(self) -> float:
        if self._grip < 0:
            return float("nan")
        closed, opened = self._grip_range
        length = float(self.simulation.data.actuator_length[self._grip])
        return min(1.0, max(0.0, (length - closed) / (opened - closed)))

    def _tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP (position m, quaternion wxyz) in the base frame, from the current (forwarded) data."""
        d = self.simulation.data
        if self._base_at_origin:  # the shipped scenes: base frame == world frame
            position = d.site_xpos[self._tcp].copy()
            rotation = d.site_xmat[self._tcp]
        else:
            r_base = d.xmat[self._base].reshape(3, 3)
            position = r_base.T @ (d.site_xpos[self._tcp] - d.xpos[self._base])
            rotation = (r_base.T @ d.site_xmat[self._tcp].reshape(3, 3)).ravel()
        quaternion = np.empty(4)
        mujoco.mju_mat2Quat(quaternion, rotation)  # unit norm already
        if quaternion[0] < 0:  # the stack's convention: non-negative scalar part
            quaternion = -quaternion
        return position, quaternion

    # -- Simulated ----------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Simulated time since reset (s)."""
        return self.simulation.time

    def advance(self, dt: float) -> None:
        """Integrate ``dt`` seconds (rounded to whole physics steps) with the current commands held.

        A following :meth:`read` describes the state at the new time (see :meth:`MujocoSimulation.advance`);
        ``joint_efforts`` are the actuator torques of the last physics step.
        """
        if self._delay is None:
            self.simulation.advance(dt)
            return
        sim, delay, ctrl = self.simulation, self._delay, self.simulation.data.ctrl
        h = sim.timestep
        left = sim.steps_for(dt)
        while left > 0:
            after = delay.blend_due(ctrl, sim.time, h)
            if after is not None:  # a command switches inside this step: one step on the blend
                sim.step(1, check=False)
                ctrl[:] = after
                left -= 1
                continue
            due = delay.next_due()
            n = left if due == math.inf else min(left, max(1, math.floor((due - sim.time) / h + 1e-6)))
            sim.step(n, check=False)
            left -= n
        sim.check_diverged()

    def reset(self, seed: int | None = None) -> None:
        """Back to the "home" keyframe (arm, gripper targets, objects); redraw randomization from ``seed``; pending
        delayed commands are dropped.

        The same seed followed by the same commands gives a bit-identical trajectory.
        """
        if self._delay is not None:
            self._delay.clear()
        self.simulation.reset(seed)

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Place the arm at ``q`` (n,) rad at rest, its servo targets (and their filter states) at ``q`` too, so it
        stays there; pending delayed commands are dropped. For replaying a log from its first measured state."""
        sim, m, d = self.simulation, self.simulation.model, self.simulation.data
        q = self.check_joint_positions(q, LimitPolicy.RAISE)
        d.qpos[self._qadr] = q
        d.qvel[self._dadr] = 0.0
        d.ctrl[self._act] = q
        adr = m.actuator_actadr[self._act]
        d.act[adr[adr >= 0]] = q[adr >= 0]
        if self._delay is not None:
            self._delay.clear()
        sim.forward()

    # -- ObjectTracker / SceneControl -------------------------------------------------------------------
    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) m, quaternion (4,) wxyz) of an object or marker in the world frame."""
        d = self.simulation.data
        if name in self._objects:
            bid = self._objects[name][0]
            return d.xpos[bid].copy(), d.xquat[bid].copy()
        if name in self._markers:
            mid = self._markers[name]
            return d.mocap_pos[mid].copy(), d.mocap_quat[mid].copy()
        raise UnknownNameError("object", name, [*self._objects, *self._markers])

    def set_object_pose(self, name: str, position: np.ndarray, quaternion: np.ndarray) -> None:
        """Place a movable object at rest: ``position`` (3,) m and ``quaternion`` (4,) wxyz, world frame."""
        if name not in self._objects:
            raise UnknownNameError("object", name, self._objects)
        p = as_vector(f"{name}.position", position, 3)
        q = as_vector(f"{name}.quaternion", quaternion, 4)
        try:
            q = quat_normalize(q)
        except ValueError as e:
            raise ConfigError(f"{name}.quaternion={q.tolist()}: {e}") from None
        _, qadr, dadr = self._objects[name]
        d = self.simulation.data
        d.qpos[qadr : qadr + 3] = p
        d.qpos[qadr + 3 : qadr + 7] = q
        d.qvel[dadr : dadr + 6] = 0.0
        self.simulation.forward()

    def place_arm(self, joint_positions: np.ndarray, gripper: float | None = None, settle_s: float = 0.3) -> None:
        """Start from a measured configuration (a physical arm's twin): joints at ``joint_positions`` (rad, at
        rest), commanded to stay there, the gripper commanded to ``gripper`` (normalized width; ``None`` or NaN:
        as it is), then ``settle_s`` s of simulated time so the gripper gets there and contacts settle."""
        q = as_vector("joint_positions", joint_positions, len(self.spec.joint_names))
        d = self.simulation.data
        d.qpos[self._qadr] = q
        d.qvel[self._dadr] = 0.0
        d.ctrl[self._act] = q
        if gripper is not None and self._grip >= 0 and np.isfinite(gripper):
            self._write_gripper(float(np.clip(gripper, 0.0, 1.0)))
        self.simulation.forward()
        self.simulation.advance(settle_s)

    def set_marker(self, name: str, position: np.ndarray) -> None:
        """Move a visual marker (mocap body, e.g. ``"target"``) to ``position`` (3,) m, world frame."""
        if name not in self._markers:
            raise UnknownNameError("marker", name, self._markers)
        d = self.simulation.data
        d.mocap_pos[self._markers[name]] = as_vector(f"{name}.position", position, 3)
        self.simulation.forward()


def _as_index(ids: list[int]) -> slice | np.ndarray:
    """A slice when ``ids`` are consecutive (faster, still copied by the readers), else an index array."""
    if ids and all(b == a + 1 for a, b in itertools.pairwise(ids)):
        return slice(int(ids[0]), int(ids[-1]) + 1)
    return np.array(ids, dtype=int)


# -- robot descriptions ----------------------------------------------------------------------------------

_PI = math.pi

#: the Panda's table scene (base frame at the world origin): cube spawn area, goal volume, workspace box.
_PANDA_TABLE = TableSceneSpec(
    table_height=0.0,
    cube_half_size=0.02,
    cube_spawn_low=(0.40, -0.20),
    cube_spawn_high=(0.60, 0.20),
    target_low=(0.40, -0.20, 0.10),
    target_high=(0.60, 0.20, 0.35),
    workspace=WorkspaceBox((0.20, -0.45, 0.015), (0.80, 0.45, 0.65)),
)

PANDA = ArmDescription(
    spec=ArmSpec(
        name="panda",
        # name, lower, upper (rad), max velocity (rad/s), max torque (N m), max acceleration (rad/s^2)
        joints=(
            JointSpec("joint1", -2.8973, 2.8973, 2.1750, 87.0, 15.0),
            JointSpec("joint2", -1.7628, 1.7628, 2.1750, 87.0, 7.5),
            JointSpec("joint3", -2.8973, 2.8973, 2.1750, 87.0, 10.0),
            JointSpec("joint4", -3.0718, -0.0698, 2.1750, 87.0, 12.5),
            JointSpec("joint5", -2.8973, 2.8973, 2.6100, 12.0, 15.0),
            JointSpec("joint6", -0.0175, 3.7525, 2.6100, 12.0, 20.0),
            JointSpec("joint7", -2.8973, 2.8973, 2.6100, 12.0, 20.0),
        ),
        gripper=GripperSpec(min_width=0.0, max_width=0.08, max_force=70.0),
        base_frame="link0",
        tcp_frame="tcp",
        control_rate_hz=1000.0,
        home=(0.0, -_PI / 4, 0.0, -3 * _PI / 4, 0.0, _PI / 2, _PI / 4),
    ),
    robot_model="panda/panda.xml",
    scenes=MappingProxyType(
        {
            "pick_cube": SceneDescription(model="panda/pick_cube.xml", layout=_PANDA_TABLE),
            # language-conditioned picking (rcs/envs/pick_two_cubes.py): same layout, two cubes
            "pick_two_cubes": SceneDescription(
                model="panda/pick_two_cubes.xml",
                layout=replace(_PANDA_TABLE, objects=("cube_red", "cube_blue")),
            ),
        }
    ),
)

SO101 = ArmDescription(
    spec=ArmSpec(
        name="so101",
        # STS3215: 2.9 N m continuous (conservative), velocity limit 10 rad/s (published description)
        joints=(
            JointSpec("shoulder_pan", -1.91986, 1.91986, 10.0, 2.9),
            JointSpec("shoulder_lift", -1.74533, 1.74533, 10.0, 2.9),
            JointSpec("elbow_flex", -1.69, 1.69, 10.0, 2.9),
            JointSpec("wrist_flex", -1.65806, 1.65806, 10.0, 2.9),
            JointSpec("wrist_roll", -2.79253, 2.79253, 10.0, 2.9),
        ),
        # jaw-pad gap 0 at the lower jaw limit, 0.11 m at the upper; 2.9 N m at the 0.0755 m pad radius
        gripper=GripperSpec(min_width=0.0, max_width=0.11, max_force=38.0),
        base_frame="base",
        tcp_frame="tcp",
        control_rate_hz=30.0,
        # gripper pointing straight down above the middle of the table area
        home=(0.0, -0.25, 0.4, _PI / 2 - 0.15, 0.0),
    ),
    robot_model="so101/so101.xml",
    scenes=MappingProxyType(
        {
            "pick_cube": SceneDescription(
                model="so101/pick_cube.xml",
                # boxes inside the region where a top-down grasp is within the wrist_flex limit
                layout=TableSceneSpec(
                    table_height=0.0,
                    cube_half_size=0.0125,
                    cube_spawn_low=(0.14, -0.08),
                    cube_spawn_high=(0.23, 0.08),
                    target_low=(0.14, -0.07, 0.045),
                    target_high=(0.21, 0.07, 0.085),
                    workspace=WorkspaceBox((0.05, -0.25, 0.01), (0.35, 0.25, 0.30)),
                ),
            ),
        }
    ),
)

_FACTORY_KEYS = ("scene", "physics_dt", "randomization", "limit_policy", "actuation_delay_s", "camera_offsets")


def _make(description: ArmDescription, config: Mapping[str, Any]) -> MujocoArm:
    unknown = sorted(set(config) - set(_FACTORY_KEYS))
    if unknown:
        raise ConfigError(
            f"sim/{description.spec.name}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(_FACTORY_KEYS)}"
        )
    randomization = config.get("randomization")
    if isinstance(randomization, Mapping):
        fields = {f.name for f in dataclass_fields(DomainRandomization)}
        wrong = sorted(set(randomization) - fields)
        if wrong:
            raise ConfigError(f"randomization: unknown field(s) {', '.join(wrong)}; known: {', '.join(sorted(fields))}")
        randomization = DomainRandomization(
            **{
                k: {e: tuple(r) for e, r in dict(v).items()} if k == "extra" else tuple(v)
                for k, v in randomization.items()
            }
        )
    elif randomization is not None and not isinstance(randomization, DomainRandomization):
        raise ConfigError(f"randomization={randomization!r}: expected a DomainRandomization, a dict of ranges or None")
    offsets = config.get("camera_offsets") or {}
    if not isinstance(offsets, Mapping):
        raise ConfigError(f"camera_offsets={offsets!r}: expected a map camera name -> 6 numbers")
    return MujocoArm(
        description,
        scene=str(config.get("scene", "pick_cube")),
        physics_dt=float(config.get("physics_dt", 0.002)),
        randomization=randomization,
        limit_policy=config.get("limit_policy", LimitPolicy.RAISE),
        actuation_delay_s=config.get("actuation_delay_s", 0.0),
        camera_offsets=offsets,
    )


def make_panda(**config: Any) -> MujocoArm:
    """Registry factory ``"sim/panda"``: a simulated Franka Panda with hand.

    Keyword config: ``scene`` (``"pick_cube"``), ``physics_dt`` (s, 0.002), ``randomization``
    (:class:`DomainRandomization`, a dict of its ranges, or ``None``), ``limit_policy`` (``"raise"``/``"clip"``),
    ``actuation_delay_s`` (s, 0), ``camera_offsets`` (camera -> 6 numbers; see :class:`MujocoArm`).
    """
    return _make(PANDA, config)


def make_so101(**config: Any) -> MujocoArm:
    """Registry factory ``"sim/so101"``: a simulated SO-101 follower arm. Same keyword config as :func:`make_panda`."""
    return _make(SO101, config)
