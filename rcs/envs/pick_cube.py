"""Arm pick-cube: grasp the cube on the table and bring it to a goal point in the air.

Works with any :class:`rcs.devices.Arm` that is also an :class:`rcs.devices.ObjectTracker` (a simulator,
or a real arm with a cube tracker) and exposes its :class:`rcs.spec.TableSceneSpec` as ``robot.scene``.
Positions are in the arm's base frame (the simulated scenes put the base at the world origin).
Success: cube centre within ``success_threshold`` of the goal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from rcs.devices import Arm, ObjectTracker, SceneControl
from rcs.envs.arm_actions import ARM_ACTION_MODES, ArmActionLimits
from rcs.envs.arm_state import arm_state_observation, arm_state_spaces
from rcs.envs.base import EnvConfig, RobotEnv, resolve_config
from rcs.errors import ConfigError
from rcs.geometry import quat_from_euler_rpy
from rcs.recording.features import ENV_STATE_LAYOUT
from rcs.spec import ArmSpec, TableSceneSpec


@dataclass(frozen=True)
class PickCubeConfig(EnvConfig):
    """Pick-cube task configuration (see :class:`rcs.envs.base.EnvConfig` for the common fields).

    Attributes:
        control_mode: ``"joint"`` or ``"cartesian"``.
        relative: deltas instead of absolute targets.
        success_threshold: m, cube-to-goal distance that counts as success.
        action_limits: speed bounds of relative modes.
    """

    robot: str = "sim/panda"
    control_mode: str = "cartesian"
    relative: bool = False
    success_threshold: float = 0.03
    action_limits: ArmActionLimits = field(default_factory=ArmActionLimits)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.control_mode, self.relative) not in ARM_ACTION_MODES:
            raise ConfigError(f"control_mode={self.control_mode!r}: known modes are 'joint', 'cartesian'")


class PickCubeEnv(RobotEnv):
    """Gymnasium env: observation dict of float32 state (+ uint8 images), flat float32 action."""

    #: observation keys (and entry names) of the dataset's ``observation.environment_state`` (rcs.recording.features).
    environment_state_layout: tuple[tuple[str, tuple[str, ...]], ...] = ENV_STATE_LAYOUT

    config: PickCubeConfig
    observation_space: spaces.Dict

    def __init__(self, config: PickCubeConfig | None = None, render_mode: str | None = None, **overrides) -> None:
        config = resolve_config(PickCubeConfig, config, overrides)
        super().__init__(config, render_mode)
        arm = self.robot
        if not isinstance(arm, Arm) or not isinstance(arm, ObjectTracker):
            raise ConfigError(f"robot={config.robot!r}: pick-cube needs an Arm that tracks objects (object_pose)")
        self.arm: Arm = arm
        #: the same device as :attr:`arm`, seen as the tracker of the task's objects.
        self.objects: ObjectTracker = arm
        scene = getattr(arm, "scene", None)
        if not isinstance(scene, TableSceneSpec):
            raise ConfigError(f"robot={config.robot!r}: pick-cube needs an arm with a table scene (scene)")
        self.scene: TableSceneSpec = scene
        self.action_mode = ARM_ACTION_MODES[(config.control_mode, config.relative)](
            arm, self.scene, self.dt, config.action_limits
        )
        self.action_space = self.action_mode.space
        self.observation_space = spaces.Dict({**pick_cube_state_spaces(arm.spec), **self._image_spaces()})
        self._target: np.ndarray = np.zeros(3)

    def _action_labels(self) -> tuple[str, ...]:
        if self.config.control_mode == "joint":
            return (*self.arm.spec.joint_names, "gripper")
        return ("x", "y", "z", "rx", "ry", "rz", "gripper")

    def _reset_task(self, options: dict) -> None:
        sc, rng = self.scene, self.np_random
        if isinstance(self.arm, SceneControl):
            xy = rng.uniform(sc.cube_spawn_low, sc.cube_spawn_high)
            yaw = rng.uniform(-np.pi / 4, np.pi / 4)
            cube = np.array([xy[0], xy[1], sc.table_height + sc.cube_half_size])
            self.arm.set_object_pose("cube", cube, quat_from_euler_rpy(0.0, 0.0, yaw))
        self._target = rng.uniform(sc.target_low, sc.target_high)
        if isinstance(self.arm, SceneControl):
            self.arm.set_marker("target", self._target)
        self.action_mode.reset()

    def _apply_action(self, action: np.ndarray) -> None:
        self.action_mode.apply(action)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = arm_state_observation(self._stamped(self.arm.read()))
        obs.update(self._object_observation())
        obs["target_position"] = self._target.astype(np.float32)
        if self.cameras:
            obs.update(self._images())
        return obs

    def _object_observation(self) -> dict[str, np.ndarray]:
        """Poses of the task's objects (base frame, quaternion w x y z); tasks with more objects override it."""
        cube_p, cube_q = self.objects.object_pose("cube")
        return {"cube_position": cube_p.astype(np.float32), "cube_quaternion": cube_q.astype(np.float32)}

    def _task_info(self, obs: dict) -> dict:
        m = pick_cube_measures(obs, self.config.success_threshold)
        return {"is_success": bool(m["is_success"]), **{k: float(m[k]) for k in ("cube_to_target", "tcp_to_cube")}}

    def _reward(self, obs: dict, info: dict) -> float:
        """Dense shaping (:func:`pick_cube_reward`)."""
        return float(pick_cube_reward(info))

    def failure_reason(self, obs: dict, info: dict) -> str | None:
        """The episode ends early if the cube fell off the table."""
        return "cube off the table" if cube_off_table(obs, self.scene) else None


# -- the task's measures, for one observation or a batch (leading axes) ---------------------------------------
def pick_cube_state_spaces(spec: ArmSpec) -> dict[str, spaces.Box]:
    """The state part of the pick-cube observation (float32): the arm's keys, the cube pose and the goal."""
    f32 = np.float32
    return {
        **arm_state_spaces(spec),
        "cube_position": spaces.Box(-np.inf, np.inf, (3,), dtype=f32),
        "cube_quaternion": spaces.Box(-1.0, 1.0, (4,), dtype=f32),
        "target_position": spaces.Box(-np.inf, np.inf, (3,), dtype=f32),
    }


def pick_cube_measures(obs: Mapping[str, np.ndarray], success_threshold: float) -> dict[str, np.ndarray]:
    """``cube_to_target`` and ``tcp_to_cube`` (m, distances in float64) and ``is_success`` (the cube's centre within
    ``success_threshold`` m of the goal) of an observation, or of a batch (arrays (..., 3) give (...,))."""

    def dist(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(np.asarray(obs[a], np.float64) - np.asarray(obs[b], np.float64), axis=-1)

    d_goal = dist("cube_position", "target_position")
    return {
        "is_success": d_goal < success_threshold,
        "cube_to_target": d_goal,
        "tcp_to_cube": dist("tcp_position", "cube_position"),
    }


def pick_cube_reward(measures: Mapping[str, Any]) -> np.ndarray:
    """Dense shaping: approach the cube, then bring it to the goal; +1 on success:
    ``r = [success] - 0.5 |tcp - cube| - |cube - goal|`` (m)."""
    return (
        np.asarray(measures["is_success"], np.float64)
        - 0.5 * np.asarray(measures["tcp_to_cube"])
        - np.asarray(measures["cube_to_target"])
    )


def cube_off_table(obs: Mapping[str, np.ndarray], scene: TableSceneSpec) -> np.ndarray:
    """Whether the cube fell off the table: its centre more than 5 cm below the table top."""
    return np.asarray(obs["cube_position"])[..., 2] < scene.table_height - 0.05
