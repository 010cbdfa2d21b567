"""Quadrotor hover and trajectory tracking.

Works with any :class:`rcs.devices.Quadrotor`; in simulation the episode starts in the air near the
reference (``VehicleStateControl``) and the env arms the vehicle; on hardware the episode starts from wherever
the vehicle is, and ``reset()`` refuses to run unless the operator has armed it. The reference is a
:mod:`rcs.flight.trajectories` object sampled at the episode time ``steps * dt``.
Success (per step): position within ``success_threshold`` of the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces

from rcs.devices import Quadrotor, Simulated, VehicleStateControl
from rcs.envs.base import CameraConfig, EnvConfig, RobotEnv, resolve_config
from rcs.envs.quadrotor_actions import QUADROTOR_ACTION_MODES
from rcs.errors import ConfigError, RcsError
from rcs.flight.trajectories import FigureEight, Hover
from rcs.geometry import quat_from_euler_rpy
from rcs.spec import WorkspaceBox


@dataclass(frozen=True)
class QuadrotorConfig(EnvConfig):
    """Quadrotor task configuration (common fields: :class:`rcs.envs.base.EnvConfig`).

    Attributes:
        task: ``"hover"`` (hold ``hover_position``) or ``"track"`` (a figure-eight around it).
        action_mode: ``"motor_thrusts"``, ``"motor_rpms"``, ``"thrust_rates"`` or ``"position"``.
        hover_position: m, world frame; also the figure-eight centre.
        figure_eight: (amplitude x m, amplitude y m, period s) of the figure-eight.
        init_position_noise: m, uniform start offset from the reference in each axis.
        init_tilt_noise: rad, uniform roll/pitch at start.
        geofence: leaving this box terminates the episode.
        success_threshold: m.
    """

    robot: str = "sim/crazyflie"
    control_rate_hz: float = 100.0
    max_episode_steps: int = 1000
    task: str = "hover"
    action_mode: str = "motor_thrusts"
    hover_position: tuple[float, float, float] = (0.0, 0.0, 1.0)
    figure_eight: tuple[float, float, float] = (1.0, 0.5, 8.0)
    init_position_noise: float = 0.1
    init_tilt_noise: float = 0.1
    geofence: WorkspaceBox = field(default_factory=lambda: WorkspaceBox((-3.0, -3.0, 0.0), (3.0, 3.0, 3.0)))
    success_threshold: float = 0.05
    render_camera: CameraConfig = CameraConfig("chase", width=640, height=480)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in ("hover", "track"):
            raise ConfigError(f"task={self.task!r}: known tasks are 'hover', 'track'")
        if self.action_mode not in QUADROTOR_ACTION_MODES:
            raise ConfigError(f"action_mode={self.action_mode!r}: known modes are {sorted(QUADROTOR_ACTION_MODES)}")


def make_reference(config: QuadrotorConfig) -> Hover | FigureEight:
    """The reference trajectory of a task."""
    if config.task == "hover":
        return Hover(np.asarray(config.hover_position, dtype=float))
    ax, ay, period = config.figure_eight
    return FigureEight(
        center=np.asarray(config.hover_position, dtype=float), amplitude_x=ax, amplitude_y=ay, period=period
    )


class QuadrotorEnv(RobotEnv):
    """Gymnasium env for hover / tracking with any of the three quadrotor command interfaces."""

    config: QuadrotorConfig

    def __init__(self, config: QuadrotorConfig | None = None, render_mode: str | None = None, **overrides) -> None:
        config = resolve_config(QuadrotorConfig, config, overrides)
        super().__init__(config, render_mode)
        if not isinstance(self.robot, Quadrotor):
            raise ConfigError(f"robot={config.robot!r} is not a Quadrotor")
        self.vehicle: Quadrotor = self.robot
        self.reference = make_reference(config)
        self.action_mode = QUADROTOR_ACTION_MODES[config.action_mode](self.vehicle, config.geofence)
        self.action_space = self.action_mode.space
        f32 = np.float32
        vec = lambda n: spaces.Box(-np.inf, np.inf, (n,), dtype=f32)  # noqa: E731
        self.observation_space = spaces.Dict(
            {
                "position": vec(3),
                "quaternion": spaces.Box(-1.0, 1.0, (4,), dtype=f32),
                "linear_velocity": vec(3),
                "angular_velocity": vec(3),
                "target_position": vec(3),
                "target_velocity": vec(3),
                **self._image_spaces(),
            }
        )

    def _action_labels(self) -> tuple[str, ...]:
        return self.action_mode.labels

    def _reset_task(self, options: dict) -> None:
        cfg, rng = self.config, self.np_random
        if isinstance(self.vehicle, VehicleStateControl):
            p0, v0, _, yaw0 = self.reference.sample(0.0)
            roll, pitch = rng.uniform(-cfg.init_tilt_noise, cfg.init_tilt_noise, 2)
            hover = np.full(self.vehicle.spec.num_rotors, self.vehicle.spec.hover_thrust / self.vehicle.spec.num_rotors)
            self.vehicle.set_vehicle_state(
                p0 + rng.uniform(-cfg.init_position_noise, cfg.init_position_noise, 3),
                quat_from_euler_rpy(roll, pitch, yaw0),
                v0,
                np.zeros(3),
                hover,
            )
        if isinstance(self.vehicle, Simulated):
            self.vehicle.arm()
        elif not self.vehicle.read().armed:
            # On a physical vehicle arming is the operator's decision, never a side effect of reset().
            raise RcsError(f"{self.config.robot}: the vehicle is disarmed; arm it (operator action) before reset()")

    def _apply_action(self, action: np.ndarray) -> None:
        self.action_mode.apply(action)

    def _observe(self) -> dict[str, np.ndarray]:
        s = self._stamped(self.vehicle.read())
        p_ref, v_ref, _, _ = self.reference.sample(self._steps * self.dt)
        obs = {
            "position": s.position.astype(np.float32),
            "quaternion": s.quaternion.astype(np.float32),
            "linear_velocity": s.linear_velocity.astype(np.float32),
            "angular_velocity": s.angular_velocity.astype(np.float32),
            "target_position": np.asarray(p_ref, dtype=np.float32),
            "target_velocity": np.asarray(v_ref, dtype=np.float32),
        }
        if self.cameras:
            obs.update(self._images())
        return obs

    def _task_info(self, obs: dict) -> dict:
        err = float(np.linalg.norm(obs["position"] - obs["target_position"]))
        return {"is_success": err < self.config.success_threshold, "position_error": err}

    def _reward(self, obs: dict, info: dict) -> float:
        """Negative tracking error (m) with a small velocity-error term; 0 is perfect."""
        dv = float(np.linalg.norm(obs["linear_velocity"] - obs["target_velocity"]))
        return -info["position_error"] - 0.1 * dv

    def failure_reason(self, obs: dict, info: dict) -> str | None:
        """Crash (left the geofence, including the ground) ends the episode."""
        if not self.config.geofence.contains(obs["position"].astype(np.float64)):
            return "left the geofence"
        return "hit the ground" if obs["position"][2] < 0.02 else None
