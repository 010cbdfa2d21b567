"""The step loop shared by every rcs environment, written once against the device API.

An environment owns one device (made by registry name, so the same class runs on a simulator or on
hardware), optional cameras, an action mode and a clock. Subclasses supply the task: observation,
reward, success and termination. Action checking (shape, dtype, NaN/inf, bounds) happens here.

The public task interface (:meth:`RobotEnv.observe`, :meth:`RobotEnv.task_measures`,
:meth:`RobotEnv.failure_reason`, :meth:`RobotEnv.wrong_object_lifted`, :attr:`RobotEnv.instruction`) lets code
that drives the robot by other means than ``step`` (``rcs eval`` runs it under the real-time control loop,
:mod:`rcs.eval`) use the task's own observation, success test and failure reasons.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rcs.clock import clock_for
from rcs.devices import Camera, Device, Simulated
from rcs.errors import ConfigError
from rcs.registry import make_camera, make_robot
from rcs.validation import ClipReport, LimitPolicy, as_vector, enforce_bounds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraConfig:
    """A camera for image observations: registry name + its keyword configuration.

    The observation key is ``image_<name>``. For simulated robots the default backend renders the MJCF
    camera of that name; hardware rigs name their own backend (e.g. a RealSense driver).
    """

    name: str
    width: int = 128
    height: int = 128
    backend: str = "sim/mujoco"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvConfig:
    """Configuration common to all rcs envs. Plain data: picklable, so vector envs work.

    Attributes:
        robot: registry name of the device, e.g. ``"sim/panda"``.
        robot_config: keyword configuration passed to the robot factory.
        control_rate_hz: env steps per second of robot time.
        max_episode_steps: truncation horizon.
        cameras: image observations to add (empty: state only).
        render_camera: the camera behind ``render()`` (videos).
        limit_policy: ``"clip"`` (actions outside the action space are clipped and counted in
            ``info["clipped_actions"]``) or ``"raise"`` (they raise :class:`rcs.errors.ActionError`).
    """

    robot: str
    robot_config: dict[str, Any] = field(default_factory=dict)
    control_rate_hz: float = 20.0
    max_episode_steps: int = 200
    cameras: tuple[CameraConfig, ...] = ()
    limit_policy: str = "clip"
    render_camera: CameraConfig = CameraConfig("front", width=640, height=480)

    def __post_init__(self) -> None:
        if self.control_rate_hz <= 0:
            raise ConfigError(f"control_rate_hz={self.control_rate_hz} must be > 0")
        if self.max_episode_steps <= 0:
            raise ConfigError(f"max_episode_steps={self.max_episode_steps} must be > 0")
        LimitPolicy(self.limit_policy)


def resolve_config[C: EnvConfig](cls: type[C], config: C | None, overrides: dict[str, Any]) -> C:
    """An env's config from either a config object or keyword fields (``gym.make(id, **fields)``).

    ``gym.make`` also passes the env id's registered defaults (e.g. ``robot="sim/so101"``) as keywords; with an
    explicit config those must agree with it, otherwise the mismatch is an error rather than silently lost.
    """
    if config is None:
        return cls(**overrides)
    if not isinstance(config, cls):
        raise ConfigError(f"config={type(config).__name__}: expected {cls.__name__}")
    for key, value in overrides.items():
        if getattr(config, key, value) != value:
            raise ConfigError(
                f"{key}={value!r} (from the env id or keywords) conflicts with config.{key}={getattr(config, key)!r}"
            )
    return config


class _Reading(Protocol):
    """A device state: whatever ``read()`` returns carries its capture time (host monotonic s)."""

    @property
    def timestamp(self) -> float: ...


class RobotEnv(gym.Env, ABC):
    """Base class: device lifecycle, action checking, clocking, cameras, truncation.

    A task subclass implements the task hooks (``_reset_task``, ``_apply_action``, ``_observe``, ``_task_info``,
    ``_reward``) and sets a Box :attr:`action_space`.
    """

    action_space: spaces.Box

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    #: the task text of the current episode for language-conditioned tasks (set on reset), else ``None``.
    instruction: str | None = None

    #: host monotonic time (s) at which the device state in the latest observation was read (``None`` before
    #: the first); a recorder stamps frames with it instead of reading the device again.
    state_time: float | None = None
    #: the latest device reading a task observed (an ``ArmState``...), e.g. for a live view of the run
    last_reading: Any = None

    def __init__(self, config: EnvConfig, render_mode: str | None = None) -> None:
        self.config = config
        self.render_mode = render_mode
        self.dt = 1.0 / config.control_rate_hz
        self.metadata = {**self.metadata, "render_fps": int(round(config.control_rate_hz))}
        # The env's limit policy is the device's default too; robot_config may override it.
        self.robot: Device = make_robot(config.robot, **{"limit_policy": config.limit_policy, **config.robot_config})
        self.robot.connect()
        self.cameras: dict[str, Camera] = {
            c.name: make_camera(c.backend, robot=self.robot, name=c.name, width=c.width, height=c.height, **c.options)
            for c in config.cameras
        }
        for cam in self.cameras.values():
            cam.connect()
        self._render_cam: Camera | None = None
        self._clock = clock_for(self.robot, self.dt)
        self._limit_policy = LimitPolicy(config.limit_policy)
        self._steps = 0
        self.clip_report = ClipReport()

    # -- spaces helpers ------------------------------------------------------------------------------
    def _image_spaces(self) -> dict[str, spaces.Box]:
        return {
            f"image_{c.name}": spaces.Box(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in self.config.cameras
        }

    def _images(self) -> dict[str, np.ndarray]:
        return {f"image_{name}": cam.read().image for name, cam in self.cameras.items()}

    def _stamped[R: _Reading](self, reading: R) -> R:
        """``reading`` (a device state with its capture ``timestamp``), noted as :attr:`state_time`: every task's
        ``_observe`` passes its device reading through here."""
        self.state_time = float(reading.timestamp)
        self.last_reading = reading
        return reading

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if isinstance(self.robot, Simulated):
            # One draw from the env's seeded generator seeds the device (domain randomization).
            self.robot.reset(seed=int(self.np_random.integers(2**31)))
        self._steps = 0
        self.clip_report = ClipReport()
        self._reset_task(options or {})
        self._clock.reset()
        obs = self._observe()
        return obs, self._info(obs)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        a = self._check_action(action)
        self._apply_action(a)
        self._clock.tick()
        self._steps += 1
        obs = self._observe()
        info = self._info(obs)
        reward = self._reward(obs, info)
        terminated = self.failure_reason(obs, info) is not None
        truncated = self._steps >= self.config.max_episode_steps
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """RGB frame of the ``render_camera`` (480x640) when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        if self._render_cam is None:
            c = self.config.render_camera
            self._render_cam = make_camera(
                c.backend, robot=self.robot, name=c.name, width=c.width, height=c.height, **c.options
            )
            self._render_cam.connect()
        return self._render_cam.read().image

    def close(self) -> None:
        for cam in [*self.cameras.values(), *([self._render_cam] if self._render_cam else [])]:
            cam.close()
        self.robot.close()
        sim = getattr(self.robot, "simulation", None)
        if sim is not None:
            sim.close()

    # -- public task interface -----------------------------------------------------------------------
    def observe(self) -> dict[str, np.ndarray]:
        """The task's observation of the current state (what ``reset`` and ``step`` return), without stepping."""
        return self._observe()

    def task_measures(self, obs: dict) -> dict[str, Any]:
        """The task's measures of an observation: ``is_success`` plus the task's own numbers (e.g. distances in
        m) and flags, as ``step`` reports them in ``info`` (without ``clipped_actions``)."""
        return self._task_info(obs)

    def failure_reason(self, obs: dict, info: dict) -> str | None:
        """Why the episode fails early in this state (``step`` then reports ``terminated``), in the task's
        words (e.g. ``"cube off the table"``); ``None`` while it may go on. Tasks override it."""
        return None

    def wrong_object_lifted(self, info: dict) -> bool:
        """Whether the measures ``info`` (:meth:`task_measures`) show a distractor object moved instead of the
        instructed one; tasks without distractors never do."""
        return False

    # -- shared checks -------------------------------------------------------------------------------
    def _check_action(self, action: Any) -> np.ndarray:
        """Shape, dtype and NaN/inf are always errors; bounds raise or clip per ``limit_policy``."""
        space = self.action_space
        a = as_vector("action", action, space.shape[0])
        return enforce_bounds(
            "action", a, space.low, space.high, self._limit_policy, self.clip_report, self._action_labels()
        )

    def _info(self, obs: dict) -> dict:
        info = self._task_info(obs)
        info["clipped_actions"] = self.clip_report.counts.get("action", 0)
        return info

    # -- task hooks ----------------------------------------------------------------------------------
    def _action_labels(self) -> tuple[str, ...] | None:
        return None

    @abstractmethod
    def _reset_task(self, options: dict) -> None:
        """Set up the task's scene for a new episode (after the device reset)."""

    @abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Send one checked action to the device."""

    @abstractmethod
    def _observe(self) -> dict[str, np.ndarray]:
        """The task's observation of the current state."""

    @abstractmethod
    def _task_info(self, obs: dict) -> dict:
        """The task's measures of ``obs`` (see :meth:`task_measures`)."""

    @abstractmethod
    def _reward(self, obs: dict, info: dict) -> float:
        """The reward of the step that produced ``obs`` and ``info``."""
