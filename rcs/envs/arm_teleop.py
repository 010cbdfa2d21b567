"""Task-less arm env for teleoperated recording: the arm's state (+ cameras), the pick-cube action modes, no task.

Any :class:`rcs.devices.Arm` works, simulated or physical: unlike pick-cube it needs no object tracker (a real arm
does not know where a cube is), so ``rcs record --robot hw/so101`` records through the same session and recorder
as ``--robot sim/so101``. Positions are in the arm's base frame.

- Observation: ``joint_positions`` (n, rad), ``joint_velocities`` (n, rad/s), ``gripper`` (1, normalized width,
  0 closed; 0 for an arm without a gripper), ``tcp_position`` (3, m), ``tcp_quaternion`` (4, w x y z), plus
  ``image_<camera>`` per camera: the same state keys as pick-cube, so teleop mapping and recording treat both
  alike.
- Action: the modes of :mod:`rcs.envs.arm_actions`. Cartesian modes bound the TCP by a workspace box: the
  config's ``workspace``, else the arm's scene box (simulated arms have one); without either they are refused.
  Joint modes are bounded by the joint limits alone.
- No objects, no reward (always 0), ``is_success`` always False, never terminates: an episode ends at the time
  limit or on the operator's command. The dataset has no ``observation.environment_state``
  (:attr:`ArmTeleopEnv.environment_state_layout` is empty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from gymnasium import spaces

from rcs.devices import Arm
from rcs.envs.arm_actions import ARM_ACTION_MODES, ArmActionLimits
from rcs.envs.arm_state import arm_state_observation, arm_state_spaces
from rcs.envs.base import EnvConfig, RobotEnv, resolve_config
from rcs.errors import ConfigError
from rcs.spec import TableSceneSpec, WorkspaceBox

#: TCP box of joint modes on an arm without a workspace: twist devices' setpoints are not boxed there; the
#: joint limits (checked by the arm before anything reaches it) bound the motion.
UNBOUNDED = WorkspaceBox((-math.inf,) * 3, (math.inf,) * 3, frame="base")


@dataclass(frozen=True)
class ArmWorkspace:
    """The part of a scene that the action modes and the teleop mapping read: the TCP workspace box (m)."""

    workspace: WorkspaceBox


def workspace_box(value: Any) -> WorkspaceBox | None:
    """``value`` as a :class:`WorkspaceBox` (m, base frame): a box, ``None``, or ``[[x, y, z], [x, y, z]]``
    (lower corner, upper corner, e.g. from YAML). Raises a one-line :class:`ConfigError` otherwise."""
    if value is None or isinstance(value, WorkspaceBox):
        return value
    try:
        lower, upper = (tuple(float(v) for v in corner) for corner in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"workspace={value!r}: expected [[x, y, z], [x, y, z]] (lower and upper corner, m, base frame)"
        ) from None
    if len(lower) != 3 or len(upper) != 3:
        raise ConfigError(f"workspace={value!r}: each corner needs 3 values (x, y, z in m)")
    if not all(math.isfinite(v) for v in (*lower, *upper)) or not all(
        lo < hi for lo, hi in zip(lower, upper, strict=True)
    ):
        raise ConfigError(f"workspace={value!r}: corners must be finite with lower < upper on every axis")
    return WorkspaceBox(cast(tuple[float, float, float], lower), cast(tuple[float, float, float], upper), "base")


@dataclass(frozen=True)
class ArmTeleopConfig(EnvConfig):
    """Task-less arm env configuration (see :class:`rcs.envs.base.EnvConfig` for the common fields; ``robot`` is
    required: the env id names none).

    Attributes:
        control_mode: ``"joint"`` or ``"cartesian"``.
        relative: deltas instead of absolute targets.
        workspace: TCP box of the Cartesian modes (m, base frame): a :class:`WorkspaceBox` or
            ``[[x, y, z], [x, y, z]]``; ``None`` takes the arm's scene box if it has one.
        action_limits: speed bounds of relative modes.
    """

    control_mode: str = "joint"
    relative: bool = False
    workspace: WorkspaceBox | Sequence[Sequence[float]] | None = None
    action_limits: ArmActionLimits = field(default_factory=ArmActionLimits)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.control_mode, self.relative) not in ARM_ACTION_MODES:
            raise ConfigError(f"control_mode={self.control_mode!r}: known modes are 'joint', 'cartesian'")
        object.__setattr__(self, "workspace", workspace_box(self.workspace))


class ArmTeleopEnv(RobotEnv):
    """Gymnasium env: observation dict of the arm's state (+ uint8 images), flat float32 action, no task."""

    #: no objects: the dataset has no ``observation.environment_state`` (rcs.recording.features).
    environment_state_layout: tuple[tuple[str, tuple[str, ...]], ...] = ()

    config: ArmTeleopConfig
    observation_space: spaces.Dict

    def __init__(self, config: ArmTeleopConfig | None = None, render_mode: str | None = None, **overrides: Any) -> None:
        if config is None and "robot" not in overrides:
            raise ConfigError("robot: rcs/ArmTeleop-v0 needs the robot's registered name, e.g. robot='hw/so101'")
        config = resolve_config(ArmTeleopConfig, config, overrides)
        super().__init__(config, render_mode)
        try:
            arm = self.robot
            if not isinstance(arm, Arm):
                raise ConfigError(
                    f"robot={config.robot!r}: the arm teleop env needs an arm, not a {type(arm).__name__}"
                )
            self.arm: Arm = arm
            box = cast(WorkspaceBox | None, config.workspace)
            scene = getattr(arm, "scene", None)
            if box is None and isinstance(scene, TableSceneSpec):
                box = scene.workspace
            if box is None and config.control_mode == "cartesian":
                raise ConfigError(
                    f"control_mode='cartesian': robot {config.robot!r} has no scene workspace box; set the env's "
                    "workspace=[[x, y, z], [x, y, z]] (m, base frame) or use control_mode='joint'"
                )
            #: the TCP box of the action modes and of teleop mapping (:class:`rcs.teleop.mapping.ActionMapper`).
            self.scene = ArmWorkspace(box if box is not None else UNBOUNDED)
            # The action modes read only ``scene.workspace``; a physical arm has no table scene to give them.
            self.action_mode = ARM_ACTION_MODES[(config.control_mode, config.relative)](
                arm, cast(TableSceneSpec, self.scene), self.dt, config.action_limits
            )
        except BaseException:
            self.close()  # the device is connected by now: release the bus/port before refusing
            raise
        self.action_space = self.action_mode.space
        self.observation_space = spaces.Dict({**arm_state_spaces(arm.spec), **self._image_spaces()})

    def _action_labels(self) -> tuple[str, ...]:
        if self.config.control_mode == "joint":
            return (*self.arm.spec.joint_names, "gripper")
        return ("x", "y", "z", "rx", "ry", "rz", "gripper")

    def _reset_task(self, options: dict) -> None:
        # Nothing to place: a physical arm stays where it is (a simulated one was reset to home by the base).
        self.action_mode.reset()

    def _apply_action(self, action: np.ndarray) -> None:
        self.action_mode.apply(action)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = arm_state_observation(self._stamped(self.arm.read()))
        if self.cameras:
            obs.update(self._images())
        return obs

    def _task_info(self, obs: dict) -> dict:
        return {"is_success": False}

    def _reward(self, obs: dict, info: dict) -> float:
        return 0.0
